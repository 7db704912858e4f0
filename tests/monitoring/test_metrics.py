"""Counters: cheap in-process recording, exactly-once aggregation across processes, exports."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from cachewise.monitoring import aggregate
from cachewise.monitoring.aggregate import aggregator, read_series, read_totals, totals_key
from cachewise.monitoring.metrics import OTHER, Metrics, metrics, record
from cachewise.store.raw_client import get_redis_client

ROOT = Path(__file__).resolve().parents[2]
TRAFFIC = {"article": [7, 3], "user": [4, 5]}  # per process: [hits, misses]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Any:
    """Start from zero: other tests of this process recorded under other key prefixes."""
    aggregator.reset()
    yield
    aggregator.reset()


def test_drain_hands_over_each_recorded_value_exactly_once() -> None:
    registry = Metrics(max_namespaces=10)
    drained: list[float] = []
    stop = threading.Event()

    def drain_loop() -> None:
        while not stop.is_set():
            drained.append(sum(registry.drain("default").values()))

    drainer = threading.Thread(target=drain_loop)
    drainer.start()

    def hits() -> None:
        for _ in range(5000):
            registry.record("hit", "default", "a")

    workers = [threading.Thread(target=hits) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)
    stop.set()
    drainer.join(timeout=20)
    drained.append(sum(registry.drain("default").values()))
    assert sum(drained) == 20000
    assert registry.snapshot()[("hit", "default", "a")] == 20000  # snapshot stays cumulative


def test_namespaces_beyond_the_cap_are_counted_as_other() -> None:
    registry = Metrics(max_namespaces=2)
    for namespace in ("a", "b", "c", "d"):
        registry.record("miss", "default", namespace)
    assert registry.snapshot() == {
        ("miss", "default", "a"): 1,
        ("miss", "default", "b"): 1,
        ("miss", "default", OTHER): 2,
    }


def test_disabled_metrics_record_nothing() -> None:
    with override_settings(CACHEWISE_METRICS_ENABLED=False):
        record("hit", "default", "article")
        assert metrics.snapshot() == {}
    record("hit", "default", "article")
    assert metrics.snapshot() == {("hit", "default", "article"): 1}


def test_flush_writes_totals_and_a_resent_batch_is_not_counted_twice(redis_client: Any) -> None:
    record("hit", "default", "article", 3)
    record("compute_seconds", "default", "article", 0.25)
    assert aggregate.flush("default")
    client = get_redis_client("default")
    # A batch whose reply was lost is resent with the same number: the script skips it.
    aggregator._send(client, "default", aggregator._seq, {("hit", "article"): 3.0}, 0)
    totals = read_totals("default")
    assert totals.source == "redis"
    assert totals.values == {("hit", "article"): 3.0, ("compute_seconds", "article"): 0.25}
    assert redis_client.hget(totals_key("default"), "hit|article") == b"3"


def test_deltas_survive_a_redis_outage_and_are_sent_once_it_is_back(disposable_redis: Any) -> None:
    from cachewise.testing import delete_prefixed

    location = disposable_redis.url
    cache_settings = {
        "default": {
            "BACKEND": "cachewise.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": "outage",
            "OPTIONS": {"socket_timeout": 0.3, "socket_connect_timeout": 0.3},
        }
    }
    with override_settings(CACHES=cache_settings):
        record("miss", "default", "article", 2)
        assert aggregate.flush("default")
        record("miss", "default", "article", 5)
        disposable_redis.kill()
        assert not aggregate.flush("default")  # kept for retry
        record("miss", "default", "article", 1)
        disposable_redis.restart()
        assert aggregate.flush("default")
        # The 2 flushed before the outage died with the (unpersisted) server; none of the rest
        # was lost or sent twice.
        assert read_totals("default").values == {("miss", "article"): 6.0}
        delete_prefixed(location, "outage")


def _fork_child_records_and_flushes() -> None:
    record("hit", "default", "forked", 3)
    aggregate.flush("default")


def test_a_forked_child_does_not_resend_its_parents_counts() -> None:
    record("hit", "default", "forked", 5)
    child = multiprocessing.get_context("fork").Process(target=_fork_child_records_and_flushes)
    child.start()
    child.join(timeout=20)
    assert child.exitcode == 0
    assert read_totals("default").values == {("hit", "forked"): 8.0}


def _run_traffic(
    cache_settings: dict[str, Any], traffics: list[dict[str, Any]] | None = None, **extra: Any
) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.monitoring_traffic", json.dumps(spec)], cwd=ROOT, env=env
        )
        for spec in (
            {"caches": cache_settings, "traffic": traffic, "settings": extra}
            for traffic in (traffics or [TRAFFIC, TRAFFIC])
        )
    ]
    for child in children:
        assert child.wait(timeout=60) == 0


@pytest.fixture
def two_process_traffic(cachewise_caches: dict[str, Any]) -> dict[str, Any]:
    cache = caches["default"]
    for namespace in TRAFFIC:
        cache.set(f"{namespace}:hot", {"value": namespace}, 300)
    aggregator.reset()  # the parent's own sets must not count
    _run_traffic(cachewise_caches)
    return cachewise_caches


EXPECTED = {"article": (14, 6), "user": (8, 10)}


def test_the_namespace_cap_holds_across_processes(cachewise_caches: dict[str, Any]) -> None:
    """Five workers, 30 new namespaces each, cap 50: at most 50 (+ other) reach the totals."""
    aggregator.reset()
    traffics = [{f"w{worker}ns{index}": [0, 1] for index in range(30)} for worker in range(5)]
    _run_traffic(cachewise_caches, traffics, CACHEWISE_METRICS_MAX_NAMESPACES=50)
    totals = read_totals("default").values
    namespaces = {namespace for (event, namespace) in totals if event == "miss"}
    assert len(namespaces - {"other"}) == 50
    assert "other" in namespaces
    assert sum(value for (event, _), value in totals.items() if event == "miss") == 150  # none lost
    # A later process with a namespace never seen still lands on "other": the cap is global.
    _run_traffic(cachewise_caches, [{"latecomer": [0, 2]}], CACHEWISE_METRICS_MAX_NAMESPACES=50)
    totals = read_totals("default").values
    assert ("miss", "latecomer") not in totals
    assert totals[("miss", "other")] == 100 + 2


def test_stats_json_shows_the_exact_sums_of_two_processes(two_process_traffic: Any) -> None:
    out = StringIO()
    call_command("cachewise", "stats", "--json", "--alias", "default", stdout=out)
    document = json.loads(out.getvalue())
    report = document["aliases"][0]
    assert report["alias"] == "default"
    assert report["source"] == "redis"
    rows = {row["namespace"]: (row["hits"], row["misses"]) for row in report["namespaces"]}
    assert rows == EXPECTED
    assert (report["total"]["hits"], report["total"]["misses"]) == (22, 16)
    assert report["total"]["hit_rate"] == pytest.approx(22 / 38)
    minutes = read_series("default", 5)
    assert sum(p.hits for p in minutes) == 22
    assert sum(p.misses for p in minutes) == 16


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_monitoring")
def test_metrics_endpoint_shows_the_exact_sums(two_process_traffic: Any, admin_client: Any) -> None:
    response = admin_client.get("/cache/metrics/")
    assert response.status_code == 200
    samples = {
        (sample.name, sample.labels.get("alias"), sample.labels.get("namespace")): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
    for namespace, (hits, misses) in EXPECTED.items():
        assert samples[("cachewise_hits_total", "default", namespace)] == hits
        assert samples[("cachewise_misses_total", "default", namespace)] == misses
    assert samples[("cachewise_redis_up", "default", None)] == 1
    assert samples[("cachewise_aggregated", "default", None)] == 1


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_monitoring")
def test_dashboard_shows_the_exact_sums(two_process_traffic: Any, admin_client: Any) -> None:
    response = admin_client.get("/cache/dashboard/?alias=default")
    assert response.status_code == 200
    html = response.content.decode()
    for namespace, (hits, misses) in EXPECTED.items():
        row = re.search(rf'<tr data-namespace="{namespace}">(.*?)</tr>', html, re.S)
        assert row is not None, namespace
        assert f'<td data-field="hits">{hits}</td>' in row.group(1)
        assert f'<td data-field="misses">{misses}</td>' in row.group(1)
    assert "57.9%" in html  # 22 / 38
    assert "counts from every worker process" in html


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_monitoring")
def test_metrics_endpoint_refuses_anonymous_and_accepts_the_bearer_token(client: Any) -> None:
    assert client.get("/cache/metrics/").status_code == 403
    with override_settings(CACHEWISE_METRICS_TOKEN="s3cret"):
        assert client.get("/cache/metrics/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        response = client.get("/cache/metrics/", HTTP_AUTHORIZATION="Bearer s3cret")
        assert response.status_code == 200
        assert b"cachewise_redis_up" in response.content
    with override_settings(CACHEWISE_METRICS_ALLOWED_IPS=["127.0.0.1"]):
        assert client.get("/cache/metrics/", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_collected_deltas_are_sent_as_a_signal_exactly_once() -> None:
    from cachewise.signals import cache_metrics_collected

    batches: list[dict[tuple[str, str], float]] = []

    def receiver(alias: str, deltas: dict[tuple[str, str], float], **kwargs: Any) -> None:
        batches.append(deltas)

    cache_metrics_collected.connect(receiver)
    try:
        record("hit", "default", "article", 2)
        record("bypass:authenticated", "default", "page", 1)
        assert aggregate.flush("default")
        assert aggregate.flush("default")  # nothing new: no second batch
    finally:
        cache_metrics_collected.disconnect(receiver)
    assert batches == [{("hit", "article"): 2.0, ("bypass:authenticated", "page"): 1.0}]


def test_prometheus_multiprocess_mode_adds_the_projects_metrics_without_duplicating_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cachewise.monitoring.prometheus import render

    record("hit", "default", "article", 4)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = render(["default"]).decode()
    hits = [line for line in text.splitlines() if line.startswith("cachewise_hits_total{")]
    assert hits == ['cachewise_hits_total{alias="default",namespace="article"} 4.0']


def test_backend_counts_every_key_of_get_many_per_namespace() -> None:
    cache = caches["default"]
    cache.set_many({"article:1": 1, "user:1": 1})
    aggregator.reset()
    cache.get_many(["article:1", "article:2", "user:1"])  # mixed namespaces
    cache.get_many(["article:1", "article:3", "article:1"])  # one namespace, a repeated key
    cache.get_many(["article:1"])
    assert metrics.snapshot() == {
        ("hit", "default", "article"): 4,
        ("miss", "default", "article"): 2,
        ("hit", "default", "user"): 1,
    }


def test_keys_without_a_namespace_count_under_a_dash() -> None:
    from cachewise.monitoring.metrics import namespace_of

    assert namespace_of("article:1:v2") == "article"
    assert namespace_of("django.contrib.sessions.cacheabc123") == "-"
    assert namespace_of(":x") == "-"
    assert namespace_of(42) == "-"  # type: ignore[arg-type]
    cache = caches["default"]
    cache.set("plain", 1)
    aggregator.reset()
    cache.get_many(["plain", "other-plain"])
    cache.get("plain")
    assert metrics.snapshot() == {("hit", "default", "-"): 2, ("miss", "default", "-"): 1}


def test_the_timer_thread_flushes_without_any_reader(redis_client: Any) -> None:
    import time

    try:
        with override_settings(CACHEWISE_METRICS_FLUSH_INTERVAL=0.1):
            record("hit", "default", "timer", 5)  # the first record after a settings change starts it
            deadline = time.monotonic() + 10
            while redis_client.hget(totals_key("default"), "hit|timer") is None:
                assert time.monotonic() < deadline, "the flush thread never flushed"
                time.sleep(0.05)
            assert redis_client.hget(totals_key("default"), "hit|timer") == b"5"
    finally:
        aggregator.stop()
