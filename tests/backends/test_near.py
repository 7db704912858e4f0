"""The near cache in one process: what it serves, when it refuses to, and its bounds.

Real Redis (the session's embedded server, or a disposable one to kill), real threads. The
cross-process promises are in tests/backends/test_near_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import override_settings

from cachewise import Namespace, get_or_compute
from cachewise.backends.near import NearCache, NearSettings
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import ConfigurationError
from cachewise.monitoring.metrics import metrics
from cachewise.resilience import reset_breakers
from cachewise.testing import RedisServerInfo, isolated_caches

READY = 5.0  # seconds a tracker may take to connect on a loaded machine


def _alias() -> Any:
    return caches["default"]


def near_entry(entry: dict[str, Any], **near: Any) -> dict[str, Any]:
    """``entry`` with ``OPTIONS["near_cache"]`` on (a dict of ``near``, or True)."""
    return {**entry, "OPTIONS": {**(entry.get("OPTIONS") or {}), "near_cache": near or True}}


@pytest.fixture(autouse=True)
def _no_counts_left_behind() -> Iterator[None]:
    """Leave no near/hit/miss counts for a later test's stats (they would move its hit rate)."""
    yield
    from cachewise.monitoring import aggregate

    aggregate.aggregator.reset()  # metrics too


@pytest.fixture
def near_caches(cachewise_caches: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The test's caches with the near cache on for ``default``; trackers stopped after."""
    configured = {**cachewise_caches, "default": near_entry(cachewise_caches["default"])}
    with override_settings(CACHES=configured):
        yield configured
        near = _alias().near
        if near is not None:
            near.close()


@contextlib.contextmanager
def near_options(cachewise_caches: dict[str, Any], **near: Any) -> Iterator[NearCache]:
    """Only ``default``, with the near cache on under ``near`` options, tracking in force; its
    near cache (stopped after)."""
    with override_settings(CACHES={"default": near_entry(cachewise_caches["default"], **near)}):
        cache = ready_near()
        try:
            yield cache
        finally:
            cache.close()


def ready_near() -> NearCache:
    near: NearCache = _alias().near
    assert near is not None
    assert near.tracker.wait_ready(READY)
    return near


def full(key: str) -> str:
    return str(caches["default"].make_and_validate_key(key))


def held(key: str) -> bool:
    return ready_near().lookup([full(key)]) is not None


def test_get_is_served_from_process_memory_after_the_first_read(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    cache: Any = caches["default"]
    ready_near()
    cache.set("flags:on", {"beta": True})
    assert cache.get("flags:on") == {"beta": True}  # read from Redis, installed
    before = redis_client.info("stats")["total_commands_processed"]
    for _ in range(20):
        assert cache.get("flags:on") == {"beta": True}
    # INFO itself is the only command the server saw: the 20 reads never left the process.
    assert redis_client.info("stats")["total_commands_processed"] == before + 1


def test_a_caller_mutating_its_value_does_not_change_the_near_copy(near_caches: dict[str, Any]) -> None:
    cache: Any = caches["default"]
    ready_near()
    cache.set("k", {"items": [1]})
    cache.get("k")
    cache.get("k")["items"].append(2)
    assert cache.get("k") == {"items": [1]}


def test_get_many_is_served_only_when_every_key_is_held(near_caches: dict[str, Any]) -> None:
    cache: Any = caches["default"]
    ready_near()
    cache.set_many({"a": 1, "b": 2})
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert all(held(key) for key in ("a", "b", "c"))  # "c" is held as absent
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}


def test_a_write_by_another_connection_is_seen_by_the_next_read(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    cache: Any = caches["default"]
    ready_near()
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert held("k")
    redis_client.set(full("k"), b"2")  # a raw int, as INCR leaves it
    assert cache.get("k") == 2
    redis_client.delete(full("k"))
    assert cache.get("k") is None


def test_own_writes_drop_the_near_copy_at_once(near_caches: dict[str, Any]) -> None:
    cache: Any = caches["default"]
    ready_near()
    cache.set("k", 1)
    writes: list[tuple[Callable[[], Any], Any]] = [
        (lambda: cache.set("k", 2), 2),
        (lambda: cache.incr("k"), 3),
        (lambda: cache.delete("k"), None),
        (lambda: cache.add("k", 4), 4),
        (lambda: cache.set_many({"k": 5}), 5),
        (lambda: cache.delete_many(["k"]), None),
        (lambda: cache.get_or_set("k", 6), 6),
    ]
    for write, expected in writes:
        cache.get("k")
        write()
        assert cache.get("k") == expected


def test_clear_and_flushdb_empty_the_near_cache(near_caches: dict[str, Any], redis_client: Any) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("k", 1)
    cache.get("k")
    cache.clear()
    assert near.bytes == 0
    assert cache.get("k") is None
    cache.set("k", 1)
    cache.get("k")
    redis_client.flushdb()  # another process' FLUSHDB: a "every key" invalidation
    # As the promise says (docs/near-cache.md): read 5 ms after the other client's write returned.
    # Redis may answer FLUSHDB before it writes the invalidation to the tracking socket (seen once
    # in the full suite when read at once).
    time.sleep(0.005)
    assert cache.get("k") is None


def test_a_read_racing_an_invalidation_never_installs_the_old_value(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    """Forced interleaving: the reader's answer is on its way while the key changes."""
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("k", "old")
    key = full("k")
    fetched, go_on = threading.Event(), threading.Event()
    got: list[Any] = []

    def slow_guard(fn: Any) -> Any:
        reply = fn()  # the old value, read from Redis
        fetched.set()
        go_on.wait(10)
        return reply

    reader = threading.Thread(target=lambda: got.append(near.read([key], slow_guard)))
    reader.start()
    assert fetched.wait(10)
    redis_client.set(key, cache.encode("new"))  # another writer
    deadline = time.monotonic() + 5
    while key in near._pending and time.monotonic() < deadline:  # the message is applied...
        near.usable()
    go_on.set()  # ... before the stale answer lands
    reader.join(10)
    assert got
    assert got[0] is not None
    assert near.lookup([key]) is None  # but did not install it
    assert cache.get("k") == "new"


def test_a_dropped_tracking_connection_empties_the_cache_before_it_serves_again(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("k", "old")
    cache.get("k")
    assert held("k")
    for client in redis_client.client_list():
        if "invalidate" in client.get("psub", "") or client.get("sub") == "1":
            redis_client.client_kill_filter(_id=client["id"])
    redis_client.set(full("k"), cache.encode("new"))  # written while nobody tracks for us
    assert cache.get("k") == "new"
    assert near.tracker.wait_ready(READY)
    assert near.tracker.connects >= 2
    assert cache.get("k") == "new"


def test_an_open_breaker_empties_the_cache_and_bypasses_it(near_caches: dict[str, Any]) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("k", 1)
    cache.get("k")
    assert near.bytes > 0
    breaker = cache.resilience.breaker
    try:
        breaker.state = "open"
        breaker._opened_at = time.monotonic()
        assert not near.usable()
        assert near.bytes == 0
        assert not near._entries
    finally:
        reset_breakers()
        breaker.reset()
    assert cache.get("k") == 1


def test_entries_live_no_longer_than_max_age_or_the_key_ttl(cachewise_caches: dict[str, Any]) -> None:
    with near_options(cachewise_caches, max_age=0.3):
        cache: Any = caches["default"]
        cache.set("forever", 1, None)
        cache.set("short", 1, 0.15)
        cache.get_many(["forever", "short"])
        assert held("forever")
        assert held("short")
        time.sleep(0.2)
        assert not held("short")
        assert held("forever")
        time.sleep(0.15)
        assert not held("forever")  # max_age: the last resort


def test_memory_stays_within_the_byte_budget_least_recently_used_first(
    cachewise_caches: dict[str, Any],
) -> None:
    with near_options(cachewise_caches, max_bytes=20_000, max_entry_bytes=4_000) as near:
        cache: Any = caches["default"]
        cache.set("big", "x" * 5_000)
        cache.get("big")
        assert not held("big")  # above max_entry_bytes: always read from Redis
        cache.set_many({f"k{i}": "y" * 1_000 for i in range(40)})
        for i in range(40):
            cache.get(f"k{i}")
            cache.get("k0")  # keep k0 recently used
            assert near.bytes <= 20_000
        assert held("k0")
        assert held("k39")
        assert not held("k1")
        assert 0 < near.bytes <= 20_000


def test_namespaces_limit_which_keys_are_held(cachewise_caches: dict[str, Any]) -> None:
    with near_options(cachewise_caches, namespaces=["flags"]):
        cache: Any = caches["default"]
        cache.set_many({"flags:a": 1, "other:a": 2})
        assert cache.get("flags:a") == 1
        assert cache.get("other:a") == 2
        assert held("flags:a")
        assert not held("other:a")


def test_get_or_compute_hits_and_namespace_versions_come_from_memory(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    ready_near()
    calls: list[str] = []

    def compute(value: str) -> Any:
        calls.append(value)
        return value

    assert get_or_compute("report", lambda: compute("v1"), ttl=60) == "v1"
    assert get_or_compute("report", lambda: compute("v2"), ttl=60) == "v1"
    scope = Namespace("near-test")
    version = scope.version(7)
    scope.version(7)
    metrics.reset()
    for _ in range(10):
        assert get_or_compute("report", lambda: compute("v3"), ttl=60) == "v1"
        assert scope.version(7) == version
    counts = {key[0]: value for key, value in metrics.snapshot().items() if key[1] == "default"}
    # value, lock and fence of the item, then the version: 4 keys a round, none read from Redis
    assert counts.get("near_hit") == 40
    assert "near_miss" not in counts
    scope.bump(7)
    assert scope.version(7) > version
    assert calls == ["v1"]


def test_async_reads_use_the_near_cache(near_caches: dict[str, Any], redis_client: Any) -> None:
    cache: Any = caches["default"]
    ready_near()

    async def scenario() -> list[Any]:
        await cache.aset("k", "v")
        first = await cache.aget("k")
        before = redis_client.info("stats")["total_commands_processed"]
        again = [await cache.aget("k"), await cache.aget_many(["k"])]
        after = redis_client.info("stats")["total_commands_processed"]
        redis_client.set(full("k"), cache.encode("w"))
        last = await cache.aget("k")
        await cache.adisconnect()  # this loop's pool: asyncio.run closes the loop next
        return [first, *again, after - before, last]

    assert asyncio.run(scenario()) == ["v", "v", {"k": "v"}, 1, "w"]


def test_counters_are_in_the_metrics(near_caches: dict[str, Any], redis_client: Any) -> None:
    cache: Any = caches["default"]
    ready_near()
    metrics.reset()
    cache.set("k", 1)
    cache.get("k")
    cache.get("k")
    redis_client.set(full("k"), b"2")
    cache.get("k")
    counts = {key[0]: value for key, value in metrics.snapshot().items() if key[1] == "default"}
    assert counts["near_hit"] == 1
    assert counts["near_miss"] == 2
    assert counts["near_invalidation"] == 1
    assert counts["near_bytes"] == _alias().near.bytes > 0


def test_a_forked_child_never_uses_the_parents_tracking_state(near_caches: dict[str, Any]) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("k", "parent")
    cache.get("k")
    connects = near.tracker.connects
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        verdict = b"ok"
        try:
            child = _alias().near
            if child.tracker._conn is not None or child._entries or child.tracker.ready():
                verdict = b"inherited state"
            elif not child.tracker.wait_ready(READY):
                verdict = b"no tracking of its own"
            else:
                client = redis.Redis.from_url(near_caches["default"]["LOCATION"])
                client.set(full("k"), cache.encode("child"))
                if cache.get("k") != "child":
                    verdict = b"stale in child"
        except BaseException as exc:
            verdict = repr(exc).encode()
        os.write(write_end, verdict)
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    verdict = os.read(read_end, 1000)
    os.close(read_end)
    assert verdict == b"ok"
    assert status == 0
    # The child closed only its copy of the socket: the parent's tracking is intact.
    assert near.tracker.ready()
    assert near.tracker.connects == connects
    assert cache.get("k") == "child"


def test_a_redis_restart_empties_the_cache_and_tracking_comes_back(
    disposable_redis: EmbeddedRedis,
) -> None:
    server = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    with isolated_caches(server) as configured:
        entry = near_entry(configured["default"])
        with override_settings(CACHES={"default": entry}):
            cache: Any = caches["default"]
            near = ready_near()
            try:
                cache.set("k", "old")
                cache.get("k")
                disposable_redis.restart()
                client = redis.Redis.from_url(disposable_redis.url)
                client.set(full("k"), cache.encode("new"))
                assert cache.get("k") in ("new", None)  # a pooled socket may fail once: a miss
                assert near.tracker.wait_ready(READY)
                assert cache.get("k") == "new"
            finally:
                near.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "expected True, False or a dict"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_age": -1}, "max_age"),
        ({"namespaces": "flags"}, "namespaces"),
        ({"size": 1}, "unknown keys"),
    ],
)
def test_invalid_options_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NearSettings.from_option(value)


@pytest.mark.parametrize(
    ("location", "options"),
    [
        ("redis+cluster://127.0.0.1:7000/0", {}),
        ("redis+sentinel://127.0.0.1:26379/mymaster", {}),
        ("redis://127.0.0.1:6379/0", {"replica_reads": True}),
    ],
)
def test_e060_refuses_the_near_cache_where_it_cannot_be_consistent(
    location: str, options: dict[str, Any]
) -> None:
    entry = {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": location,
        "OPTIONS": {**options, "near_cache": True},
    }
    if options.get("replica_reads"):
        entry["LOCATION"] = "redis+sentinel://127.0.0.1:26379/mymaster"
    with override_settings(CACHES={"default": entry}):
        ids = [message.id for message in run_checks(tags=["caches"])]
        assert "cachewise.E060" in ids
        assert "cachewise.E004" not in ids
        with pytest.raises(ConfigurationError, match=r"cachewise\.E060"):
            caches["default"].get("k")


@pytest.mark.urls("tests.urls_monitoring")
def test_near_counters_show_in_stats_metrics_and_the_dashboard(
    near_caches: dict[str, Any], redis_client: Any, admin_client: Any
) -> None:
    from cachewise.monitoring import aggregate
    from cachewise.monitoring.console import render_reports, to_text
    from cachewise.monitoring.prometheus import render
    from cachewise.monitoring.report import build_report

    cache: Any = caches["default"]
    near = ready_near()
    aggregate.aggregator.reset()
    metrics.reset()
    cache.set("k", "v")
    cache.get("k")
    cache.get("k")
    redis_client.set(full("k"), b"1")
    cache.get("k")
    report = build_report("default", pings=1)
    assert report.total.near_hits == 1
    assert report.total.near_misses == 2
    assert report.total.near_invalidations == 1
    assert report.total.near_bytes == near.bytes > 0
    assert "near hits" in to_text(render_reports([report]))
    exposition = render(["default"]).decode()
    assert 'cachewise_near_hits_total{alias="default",namespace="-"} 1.0' in exposition
    assert f'cachewise_near_bytes{{alias="default"}} {float(near.bytes)}' in exposition
    page = admin_client.get("/cache/dashboard/").content.decode()
    assert 'data-table="near"' in page
    assert '<td data-field="near_hits">1</td>' in page


def _reads_so_far(redis_client: Any) -> dict[str, int]:
    """Calls so far of the commands a page hit reads with (not the tracking connection's
    heartbeat, INFO itself, or a metrics flush that may fall in the window)."""
    stats = redis_client.info("commandstats")
    reads = ("cmdstat_get", "cmdstat_mget", "cmdstat_evalsha", "cmdstat_eval", "cmdstat_pttl")
    return {name: stat["calls"] for name, stat in stats.items() if name in reads}


@pytest.mark.urls("tests.urls_views")
def test_a_page_hit_is_served_from_memory_with_its_versions(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    from django.test import Client

    ready_near()
    client = Client()
    first = client.get("/hello/")
    assert client.get("/hello/").content == first.content  # a hit read from Redis, installed
    before = _reads_so_far(redis_client)
    for _ in range(10):
        response = client.get("/hello/")
        assert response.content == first.content
    # The page and its version counters came from process memory: no read reached the server.
    assert _reads_so_far(redis_client) == before
    caches["default"].clear()  # a write: the next request renders again
    assert client.get("/hello/").content != first.content


@pytest.mark.urls("tests.urls_views")
def test_near_page_hits_are_counted_once_each_and_never_cross_vary_variants(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    # A page recalled from a kept verdict is answered before the general path. A vary pointer
    # (/echo/ varies on the undeclared X-Custom) keeps no verdict: it is read from memory and
    # then its variant, which is recalled. A page request is one hit, an /echo/ request two
    # (pointer and variant), and a variant is served only to its own value.
    from django.test import Client

    ready_near()
    client = Client()
    hello = client.get("/hello/").content
    one = client.get("/echo/", HTTP_X_CUSTOM="one").content
    two = client.get("/echo/", HTTP_X_CUSTOM="two").content
    assert one != two
    for _ in range(2):  # read from Redis and installed, then from the kept verdicts
        client.get("/hello/")
        client.get("/echo/", HTTP_X_CUSTOM="one")
        client.get("/echo/", HTTP_X_CUSTOM="two")
    metrics.reset()
    before = _reads_so_far(redis_client)
    for _ in range(5):
        assert client.get("/hello/").content == hello
        assert client.get("/echo/", HTTP_X_CUSTOM="one").content == one
        assert client.get("/echo/", HTTP_X_CUSTOM="two").content == two
    assert _reads_so_far(redis_client) == before  # all from memory
    counts = metrics.snapshot()
    assert counts[("hit", "default", "page")] == 15 + 10  # /echo/: the pointer, then its variant
    assert counts.get(("miss", "default", "page"), 0) == 0


def test_a_drained_read_serves_what_is_held_and_installs_nothing_without_tracking(
    near_caches: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second read of one operation (a row's pack after its pointer) skips the socket check
    # its first read made, for hits only: a miss must find tracking in force before it reads.
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("held", "one")
    cache.set("other", "two")
    assert cache.get("held") == "one"  # installed
    assert full("held") in near._entries
    reads: list[int] = []

    def call(fn: Callable[[], Any]) -> Any:
        reads.append(1)
        return fn()

    monkeypatch.setattr(near, "usable", lambda: False)  # tracking lost since the first read
    assert near.read([full("held")], call, drained=True) == [near._entries[full("held")][0]]
    assert near.read([full("other")], call, drained=True) is None
    assert near.read([full("held")], call) is None  # not drained: checked, and refused
    assert reads == []
    assert full("other") not in near._entries


def test_a_decoded_payload_is_remembered_by_its_bytes_within_a_quarter_of_the_budget(
    cachewise_caches: dict[str, Any],
) -> None:
    with near_options(cachewise_caches, max_bytes=40_000) as near:
        decoded: list[bytes] = []
        unreadable = object()

        def decode(raws: Any) -> list[Any]:
            decoded.extend(raws)
            return [unreadable if raw is None or raw == b"bad" else raw.decode() for raw in raws]

        assert near.decoded([b"one", None, b"two"], decode, unreadable) == ["one", unreadable, "two"]
        assert near.decoded([b"two", b"one"], decode, unreadable) == ["two", "one"]
        assert decoded == [b"one", b"two"]  # each payload decoded once
        assert near.decoded([b"three"], decode, unreadable) == ["three"]  # new bytes: decoded
        for _ in range(2):
            assert near.decoded([b"bad"], decode, unreadable) == [unreadable]
        assert decoded.count(b"bad") == 2  # an unreadable payload is never remembered
        for i in range(100):
            near.decoded([b"x" * 1_000 + str(i).encode()], decode, unreadable)
            assert near._decoded_bytes <= 10_000
        near.flush()
        assert near._decoded_bytes == 0
        assert near.decoded([b"one"], decode, unreadable) == ["one"]
        assert decoded.count(b"one") == 2  # forgotten with the flush


def test_a_verdict_is_recalled_only_while_the_entries_it_came_from_are_held_unchanged(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set_many({"page": "p", "v1": 1, "v2": 2, "other": 0})
    assert cache.get_many(["page", "v1", "v2"]) == {"page": "p", "v1": 1, "v2": 2}
    keys = [full(name) for name in ("page", "v1", "v2")]

    def kept() -> Any:
        since = near.changes
        near.derive("verdict", keys, since, "fresh", 60.0)
        return near.recall("verdict")

    assert kept() == "fresh"
    assert near.recall("verdict") == "fresh"
    redis_client.set(full("other"), b"5")  # another process writes a key this process does not hold
    assert cache.get("other") == 5
    assert near.recall("verdict") == "fresh"
    redis_client.set(full("other"), b"6")  # now held: any held entry that changes forgets verdicts
    assert near.recall("verdict") is None
    assert kept() == "fresh"
    redis_client.set(full("v2"), b"3")  # ... as one it read does
    assert near.recall("verdict") is None
    assert cache.get_many(["page", "v1", "v2"]) == {"page": "p", "v1": 1, "v2": 3}
    assert kept() == "fresh"
    cache.set("v1", 4)  # a write by this process
    assert near.recall("verdict") is None
    assert cache.get_many(["page", "v1", "v2"]) == {"page": "p", "v1": 4, "v2": 3}
    assert kept() == "fresh"
    near.flush()
    assert near.recall("verdict") is None


def test_a_verdict_is_never_kept_from_payloads_that_changed_or_are_not_held(
    near_caches: dict[str, Any],
) -> None:
    cache: Any = caches["default"]
    near = ready_near()
    cache.set_many({"page": "p", "v1": 1})
    assert cache.get_many(["page", "v1"]) == {"page": "p", "v1": 1}
    since = near.mark()  # read before the payloads, as check() does
    cache.set("v1", 2)  # changed after they were read
    near.derive("verdict", [full("page"), full("v1")], since, "fresh", 60.0)
    assert near.recall("verdict") is None
    assert cache.get("missing") is None  # held, as absent
    near.derive("verdict", [full("page"), full("missing")], near.changes, "fresh", 60.0)
    assert near.recall("verdict") is None
    near.derive("verdict", [full("page"), full("never-read")], near.changes, "fresh", 60.0)
    assert near.recall("verdict") is None


def test_a_mark_includes_every_write_that_finished_before_it(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    # A write another process finished before this request began must not refuse the verdict
    # of the payloads read after it: mark() applies its invalidation before counting.
    cache: Any = caches["default"]
    near = ready_near()
    cache.set("page", "p")
    assert cache.get("page") == "p"  # held
    before = near.changes
    for attempt in range(50):  # the reader thread, when it wins the race, applies it the same
        redis_client.set(full("page"), redis_client.get(full("page")))  # the same payload, rewritten
        since = near.mark()
        assert since > before, "an invalidation already in the socket was not applied"
        assert cache.get("page") == "p"  # read again from Redis, held again
        near.derive("verdict", [full("page")], since, "fresh", 60.0)
        assert near.recall("verdict") == "fresh", f"verdict refused on attempt {attempt}"
        before = near.changes


def test_a_verdict_lives_no_longer_than_asked_nor_than_its_entries(cachewise_caches: dict[str, Any]) -> None:
    # Windows of 0.5 s and more: a loaded machine may stall a test thread for a few 100 ms.
    with near_options(cachewise_caches, max_age=1.5) as near:
        cache: Any = caches["default"]
        cache.set("page", "p")
        assert cache.get("page") == "p"  # held until at most 1.5 s from now
        held_until = time.monotonic() + 1.5
        near.derive("short", [full("page")], near.changes, "fresh", 0.5)
        near.derive("long", [full("page")], near.changes, "fresh", 60.0)
        assert near.recall("short") == near.recall("long") == "fresh"
        time.sleep(0.6)
        assert near.recall("short") is None
        assert near.recall("long") == "fresh"
        time.sleep(max(0.0, held_until + 0.1 - time.monotonic()))  # the entry's max_age passed
        assert near.recall("long") is None


@pytest.mark.urls("tests.urls_views")
def test_a_near_page_hit_is_answered_again_until_one_of_its_counters_moves(
    near_caches: dict[str, Any], redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.test import Client

    from cachewise.orm.generations import GLOBAL_EPOCH
    from cachewise.pagecache import stamp

    ready_near()
    client = Client()
    first = client.get("/hello/")
    assert client.get("/hello/").content == first.content
    reads: list[str] = []
    read = stamp._read

    def counted(alias: str, key: str, deps: Any, *rest: Any) -> Any:
        reads.append(key)
        return read(alias, key, deps, *rest)

    monkeypatch.setattr(stamp, "_read", counted)
    for _ in range(5):
        assert client.get("/hello/").content == first.content
    assert reads == []  # the kept verdict: no read of the page or its counters, even from memory
    redis_client.incr(full(GLOBAL_EPOCH))  # a counter of every page moves, in "another process"
    again = client.get("/hello/")
    assert again.content != first.content  # rendered again, not the kept verdict
    assert len(reads) >= 1
    assert client.get("/hello/").content == again.content


@pytest.mark.urls("tests.urls_views")
def test_a_kept_page_verdict_is_not_served_after_the_tracking_connection_was_killed(
    near_caches: dict[str, Any], redis_client: Any
) -> None:
    from django.test import Client

    from cachewise.orm.generations import GLOBAL_EPOCH

    near = ready_near()
    client = Client()
    first = client.get("/hello/")
    assert client.get("/hello/").content == first.content
    assert near._derived, "the page's verdict was not kept"
    for tracked in redis_client.client_list():
        if "invalidate" in tracked.get("psub", "") or tracked.get("sub") == "1":
            redis_client.client_kill_filter(_id=tracked["id"])
    redis_client.incr(full(GLOBAL_EPOCH))  # moved while nobody tracks for this process
    assert client.get("/hello/").content != first.content  # not the kept verdict
    assert near.tracker.wait_ready(READY)
    assert near.tracker.connects >= 2
