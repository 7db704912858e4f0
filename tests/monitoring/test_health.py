"""Redis health from INFO, the latency probe, big keys, alerts and the Redis-down behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.monitoring.aggregate import aggregator, record_eviction_sample
from cachewise.monitoring.health import big_keys, probe_latency, redis_health
from cachewise.monitoring.metrics import record
from cachewise.monitoring.report import build_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    aggregator.reset()
    yield
    aggregator.reset()


@pytest.fixture
def private_caches(disposable_redis: Any) -> Iterator[dict[str, Any]]:
    """CACHES on a private server whose config and stats the test may change."""
    settings = caches_from_url(disposable_redis.url, key_prefix="mon")
    with override_settings(CACHES=settings):
        yield settings


def _raw(server: Any) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def test_health_reports_info_numbers(disposable_redis: Any, private_caches: Any) -> None:
    raw = _raw(disposable_redis)
    raw.config_set("maxmemory", 64 * 1024 * 1024)
    raw.config_set("maxmemory-policy", "allkeys-lru")
    raw.config_resetstat()
    raw.set("mon:1:a", b"x" * 1000)
    for _ in range(3):
        raw.get("mon:1:a")
    raw.get("mon:1:absent")
    health = redis_health("default", pings=10)
    assert health.reachable
    assert (health.keyspace_hits, health.keyspace_misses) == (3, 1)
    assert health.hit_ratio == 0.75
    assert health.maxmemory == 64 * 1024 * 1024
    assert health.maxmemory_policy == "allkeys-lru"
    assert 0 < health.used_memory < health.maxmemory
    assert health.connected_clients >= 1
    assert health.latency is not None
    assert health.latency.samples == 10
    assert 0 < health.latency.p50_ms <= health.latency.p99_ms <= health.latency.max_ms
    raw.close()


def test_latency_probe_times_every_ping(redis_client: Any) -> None:
    latency = probe_latency(redis_client, samples=25)
    assert latency.samples == 25
    assert latency.p50_ms <= latency.p99_ms


def test_evictions_in_the_last_minutes_and_a_refusing_policy_raise_alerts(
    disposable_redis: Any, private_caches: Any
) -> None:
    raw = _raw(disposable_redis)
    raw.config_set("maxmemory-policy", "allkeys-lru")
    raw.config_set("maxmemory", 2 * 1024 * 1024)
    for index in range(60):
        raw.set(f"mon:1:filler:{index}", b"x" * 100_000)
    # History as the flusher would have left it: 0 evicted two minutes ago (written after the
    # fill, which would have evicted it as the least recently used key).
    record_eviction_sample(raw, "default", 0, now=time.time() - 120)
    report = build_report("default", pings=3)
    assert report.health.evicted_keys > 0
    assert report.health.evictions_recent == report.health.evicted_keys
    assert report.health.evictions_window_minutes in (2, 3)  # 3 if a minute boundary passed
    assert "evictions" in {alert.code for alert in report.alerts}
    raw.config_set("maxmemory-policy", "noeviction")
    codes = {alert.code: alert.level for alert in build_report("default", pings=3).alerts}
    assert codes["eviction_policy"] == "critical"
    raw.close()


def test_latency_and_hit_rate_alerts_follow_the_thresholds() -> None:
    record("hit", "default", "article", 60)
    record("miss", "default", "article", 40)
    with override_settings(CACHEWISE_ALERT_LATENCY_MS=0.0):
        alerts = {alert.code: alert for alert in build_report("default", pings=3).alerts}
    assert alerts["latency"].level == "warning"
    assert alerts["hit_rate"].level == "critical"  # 60% < 70%
    assert "60.0%" in alerts["hit_rate"].message
    record("hit", "default", "article", 100)  # 160 / 200 = 80%: no alert
    assert "hit_rate" not in {alert.code for alert in build_report("default", pings=3).alerts}


def test_bigkeys_lists_the_largest_keys_of_this_prefix_only(redis_client: Any) -> None:
    cache = caches["default"]
    cache.set("blob:big", "x" * 200_000)
    cache.set("blob:medium", "x" * 50_000)
    for index in range(30):
        cache.set(f"small:{index}", index)
    redis_client.set("someone-else:huge", b"x" * 500_000)
    try:
        out = StringIO()
        call_command("cachewise", "bigkeys", "--json", "--top", "2", stdout=out)
        report = json.loads(out.getvalue())
        assert report["complete"] is True
        assert report["scanned"] == 32
        assert [key["key"].rsplit(":", 2)[-2:] for key in report["keys"]] == [
            ["blob", "big"],
            ["blob", "medium"],
        ]
        assert report["keys"][0]["bytes"] > 200_000
        table = StringIO()
        call_command("cachewise", "bigkeys", "--top", "2", stdout=table)
        assert "blob:big" in table.getvalue()
        assert "complete scan" in table.getvalue()
    finally:
        redis_client.delete("someone-else:huge")


def test_bigkeys_stops_at_its_key_budget(redis_client: Any) -> None:
    cache = caches["default"]
    cache.set_many({f"k:{index}": index for index in range(50)})
    prefix = cache.key_prefix
    report = big_keys(redis_client, f"{prefix}:*", max_keys=10, count=5)
    assert not report.complete
    assert 10 <= report.scanned < 50


def test_stats_tables_flag_a_low_hit_rate() -> None:
    record("hit", "default", "article", 10)
    record("miss", "default", "article", 90)
    out = StringIO()
    call_command("cachewise", "stats", "--alias", "default", stdout=out)
    text = out.getvalue()
    assert "article" in text
    assert "10.0%" in text
    assert "CRITICAL [hit_rate]" in text
    assert "maxmemory-policy" in text


def test_stats_watch_is_bounded_by_iterations() -> None:
    out = StringIO()
    call_command(
        "cachewise", "stats", "--json", "--watch", "0.05", "--iterations", "2", "--pings", "1", stdout=out
    )
    documents = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert len(documents) == 2
    assert all(document["ok"] for document in documents)


def _dead_caches(server: Any) -> dict[str, Any]:
    settings = caches_from_url(server.url, key_prefix="down", sessions=False)
    server.kill()
    return settings


def test_stats_exits_non_zero_with_a_clear_message_when_redis_is_down(disposable_redis: Any) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_monitoring",
        "CW_TEST_CACHES": json.dumps(_dead_caches(disposable_redis)),
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
    }
    command = [sys.executable, "-m", "django", "cachewise", "stats", "--pings", "1"]
    result = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "UNREACHABLE" in result.stdout
    assert "Redis unreachable" in result.stderr
    as_json = subprocess.run(
        [*command, "--json"], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert document["ok"] is False
    assert document["aliases"][0]["redis"]["reachable"] is False
    assert document["aliases"][0]["alerts"][0]["code"] == "redis_down"


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_monitoring")
def test_dashboard_still_renders_when_redis_is_down(disposable_redis: Any, admin_client: Any) -> None:
    with override_settings(CACHES=_dead_caches(disposable_redis)):
        with pytest.raises(CommandError, match="Redis unreachable"):
            call_command("cachewise", "stats", "--pings", "1", stdout=StringIO())
        response = admin_client.get("/cache/dashboard/")
    assert response.status_code == 200
    assert b"Redis unreachable" in response.content


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_monitoring")
def test_dashboard_redirects_anonymous_users_and_refuses_non_staff(
    client: Any, django_user_model: Any
) -> None:
    response = client.get("/cache/dashboard/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    user = django_user_model.objects.create_user("reader", password="pw")
    client.force_login(user)
    assert client.get("/cache/dashboard/").status_code == 403


def test_a_non_redis_alias_reports_this_process_and_is_not_an_outage(cachewise_caches: Any) -> None:
    local = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "monitoring-tests"}
    with override_settings(CACHES={**cachewise_caches, "local": local}):
        record("hit", "local", "article", 3)
        out = StringIO()
        call_command("cachewise", "stats", "--json", "--pings", "1", stdout=out)
        document = json.loads(out.getvalue())
    assert document["ok"] is True
    report = {entry["alias"]: entry for entry in document["aliases"]}["local"]
    assert report["source"] == "process"
    assert report["redis"]["is_redis"] is False
    assert report["alerts"] == []
    assert report["total"]["hits"] == 3
