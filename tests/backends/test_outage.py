"""Outages: a Redis killed mid-test, and a blackholed one (accepts connections, never answers).

What a user must see: reads answer as misses, no exception reaches the caller, the breaker opens
after ``failure_threshold`` failures and then answers without touching the network, and the
backend recovers by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.core.cache import caches

from cachewise.backends.redis import RedisCache
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import CacheServerError, CacheUnavailableError, CircuitOpenError
from cachewise.monitoring.metrics import metrics
from cachewise.resilience import Breaker, State
from cachewise.signals import cache_degraded, circuit_state_changed

FAST_FAIL = {
    "socket_timeout": 0.2,
    "socket_connect_timeout": 0.2,
    "failure_threshold": 3,
    "timeout_threshold": 2,
    "failure_window": 10,
    "cooldown": 0.3,
}


def state_of(breaker: Breaker) -> State:
    """The breaker's state, read afresh: mypy keeps an assert's narrowing of ``.state`` across calls."""
    return breaker.state


def _redis_cache(alias: str) -> RedisCache:
    return cast(RedisCache, caches[alias])  # the cachewise_caches fixture configures RedisCache


def make_cache(url: str, **options: Any) -> RedisCache:
    alias = f"outage-{uuid.uuid4().hex[:8]}"
    return RedisCache(url, {"KEY_PREFIX": alias, "OPTIONS": {**FAST_FAIL, "alias": alias, **options}})


class Blackhole:
    """A loopback server that accepts connections and never answers (a hung or firewalled Redis)."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.accepted:
            conn.close()
        self.listener.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    try:
        yield hole
    finally:
        hole.close()


@pytest.fixture
def state_changes() -> Iterator[list[tuple[str, str, str]]]:
    seen: list[tuple[str, str, str]] = []

    def receiver(sender: Any, alias: str, old: str, new: str, **kwargs: Any) -> None:
        seen.append((alias, old, new))

    circuit_state_changed.connect(receiver)
    try:
        yield seen
    finally:
        circuit_state_changed.disconnect(receiver)


def fast(durations: list[float]) -> bool:
    """True if calls were answered locally: median under 2 ms, none near a socket timeout.

    The median, not a high percentile: on a loaded 2-core host one call in twenty can be
    descheduled for 10-20 ms, while a call that waited on the network costs a whole socket timeout
    (300 ms here), which the maximum still catches.
    """
    ordered = sorted(durations)
    return ordered[len(ordered) // 2] < 0.002 and ordered[-1] < 0.05


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def test_killed_server_reads_are_misses_and_breaker_opens(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    cache.set("key", "value")
    assert cache.get("key") == "value"
    disposable_redis.kill()
    for _ in range(3):
        assert cache.get("key", "default") == "default"
    assert state_of(cache.resilience.breaker) == "open"
    durations = [timed(lambda: cache.get("key", "default"))[1] for _ in range(200)]
    assert fast(durations)  # answered without touching the network
    assert cache.get_many(["key", "other"]) == {}
    assert cache.has_key("key") is False
    assert cache.get_or_set("key", lambda: "computed") == "computed"
    cache.set("key", "value")  # writes fail open
    assert cache.set_many({"a": 1}) == ["a"]  # reported as not stored, as Django's contract says
    assert cache.delete("key") is False
    cache.delete_many(["a"])
    cache.clear()


def test_add_and_incr_raise_by_default_during_an_outage(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    disposable_redis.kill()
    with pytest.raises(CacheUnavailableError):
        cache.add("lock", "token")
    with pytest.raises(CacheUnavailableError):
        cache.incr("counter")
    for _ in range(3):
        cache.get("key")
    with pytest.raises(CircuitOpenError):
        cache.add("lock", "token")


def test_policy_is_configurable_per_operation(disposable_redis: EmbeddedRedis) -> None:
    strict = make_cache(disposable_redis.url, on_read_error="raise")
    lenient = make_cache(disposable_redis.url, on_add_error="miss", on_incr_error="miss")
    disposable_redis.kill()
    with pytest.raises(CacheUnavailableError):
        strict.get("key")
    assert lenient.add("lock", "token") is False
    with pytest.raises(ValueError, match="not found"):  # fail-open incr: the key reads as missing
        lenient.incr("counter")


def test_backend_recovers_by_itself_after_restart(
    disposable_redis: EmbeddedRedis, state_changes: list[tuple[str, str, str]]
) -> None:
    cache = make_cache(disposable_redis.url)
    disposable_redis.kill()
    for _ in range(3):
        cache.get("key")
    assert state_of(cache.resilience.breaker) == "open"
    disposable_redis.restart()
    time.sleep(0.35)  # the cool-down
    cache.set("key", "back")
    assert cache.get("key") == "back"
    assert state_of(cache.resilience.breaker) == "closed"
    transitions = [(old, new) for alias, old, new in state_changes if alias == cache.alias]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_failed_probe_reopens_the_breaker(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    disposable_redis.kill()
    for _ in range(3):
        cache.get("key")
    time.sleep(0.35)
    assert cache.get("key", "default") == "default"  # the probe fails
    assert state_of(cache.resilience.breaker) == "open"
    assert fast([timed(lambda: cache.get("key"))[1] for _ in range(20)])


def test_blackholed_server_slow_reads_are_bounded_by_the_threshold(blackhole: Blackhole) -> None:
    cache = make_cache(blackhole.url)
    durations = []
    for _ in range(20):
        value, elapsed = timed(lambda: cache.get("key", "default"))
        assert value == "default"
        durations.append(elapsed)
    slow = [d for d in durations if d > 0.1]
    # timeout_threshold: each timeout cost a whole socket_timeout, so two of them open the
    # breaker (a refused connection costs nothing and needs failure_threshold); however many
    # requests follow.
    assert len(slow) == FAST_FAIL["timeout_threshold"]
    assert fast(durations[3:])
    assert state_of(cache.resilience.breaker) == "open"


def test_blackholed_server_with_concurrent_threads(blackhole: Blackhole) -> None:
    cache = make_cache(blackhole.url)
    threads_count, reads = 6, 15
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(reads):
            try:
                _, elapsed = timed(lambda: cache.get("key"))
            except BaseException as exc:  # any exception reaching a caller fails the test
                errors.append(exc)
                return
            with lock:
                durations.append(elapsed)

    workers = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=15)
    assert errors == []
    assert len(durations) == threads_count * reads
    slow = [d for d in durations if d > 0.1]
    # In-flight calls when the breaker opens still wait out their timeout: at most one per thread.
    assert len(slow) <= FAST_FAIL["timeout_threshold"] + threads_count - 1


def test_recovers_after_a_blackhole_is_replaced_by_a_real_server(blackhole: Blackhole) -> None:
    cache = make_cache(blackhole.url)
    for _ in range(3):
        cache.get("key")
    assert state_of(cache.resilience.breaker) == "open"
    port = blackhole.port
    blackhole.close()
    with EmbeddedRedis(port=port):
        time.sleep(0.35)
        cache.set("key", "value")
        assert cache.get("key") == "value"
        assert state_of(cache.resilience.breaker) == "closed"
        cache.get_client().connection_pool.disconnect()


def test_server_errors_are_never_swallowed(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    client = cache.get_client()
    client.lpush(cache.make_and_validate_key("list"), "x")
    for _ in range(5):
        with pytest.raises(CacheServerError, match="WRONGTYPE"):
            cache.get("list")
    with pytest.raises(CacheServerError):
        cache.incr("list")
    assert state_of(cache.resilience.breaker) == "closed"  # the server answered: not an outage


def test_degradation_is_counted_signalled_and_logged_once_per_window(
    disposable_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(disposable_redis.url, failure_threshold=100)
    disposable_redis.kill()
    signals: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        signals.append(kwargs)

    cache_degraded.connect(receiver)
    before = metrics.snapshot().get(("error", cache.alias, "-"), 0.0)
    try:
        with caplog.at_level(logging.WARNING, logger="cachewise.resilience"):
            for _ in range(10):
                cache.get("key")
    finally:
        cache_degraded.disconnect(receiver)
    after = metrics.snapshot().get(("error", cache.alias, "-"), 0.0)
    assert after - before == 10
    assert len(signals) == 10
    assert {(s["alias"], s["operation"], s["action"]) for s in signals} == {(cache.alias, "get", "miss")}
    assert all(isinstance(s["error"], CacheUnavailableError) for s in signals)
    degraded_logs = [r for r in caplog.records if "get failed" in r.getMessage()]
    assert len(degraded_logs) == 1


def test_raw_calls_route_through_the_same_breaker(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    client = cache.get_client()
    assert cache.resilience.call("lock", lambda: client.set("raw", "1", nx=True)) is True
    disposable_redis.kill()
    for _ in range(3):
        cache.get("key")
    with pytest.raises(CircuitOpenError):
        cache.resilience.call("lock", lambda: client.set("raw", "1", nx=True))
    assert (
        cache.resilience.call("get", lambda: client.get("raw"), fallback=lambda error: "fell back")
        == "fell back"
    )


def test_async_reads_fail_open_on_a_killed_server(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)

    async def scenario() -> None:
        await cache.aset("key", "value")
        assert await cache.aget("key") == "value"
        disposable_redis.kill()
        for _ in range(5):
            assert await cache.aget("key", "default") == "default"
        assert await cache.aget_many(["key"]) == {}
        assert state_of(cache.resilience.breaker) == "open"
        with pytest.raises(CircuitOpenError):
            await cache.aadd("key", "value")
        await cache.adisconnect()

    asyncio.run(scenario())


def test_half_open_breaker_lets_exactly_one_probe_through() -> None:
    breaker = Breaker("probe-test", failure_threshold=1, failure_window=10, cooldown=0.05)
    breaker.record_failure()
    assert state_of(breaker) == "open"
    assert breaker.allow() is False
    time.sleep(0.06)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(breaker.allow())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(results) == [False] * 7 + [True]
    breaker.record_success()
    assert state_of(breaker) == "closed"
    assert breaker.allow() is True


def test_failures_outside_the_window_do_not_open_the_breaker() -> None:
    breaker = Breaker("window-test", failure_threshold=2, failure_window=0.05, cooldown=1)
    breaker.record_failure()
    time.sleep(0.06)
    breaker.record_failure()
    assert state_of(breaker) == "closed"
    breaker.record_failure()
    assert state_of(breaker) == "open"


def test_threads_share_the_breaker_of_an_alias(cachewise_caches: dict[str, Any]) -> None:
    """Django builds one backend per thread; the breaker must be per process and alias."""
    breakers: list[Any] = []

    def worker() -> None:
        breakers.append(_redis_cache("default").resilience.breaker)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(breakers) == 4
    assert all(breaker is breakers[0] for breaker in breakers)
    assert breakers[0].alias == "default"
    assert _redis_cache("sessions").resilience.breaker is not breakers[0]
    assert _redis_cache("sessions").resilience.alias == "sessions"


def test_timeouts_open_the_breaker_sooner_than_refused_connections() -> None:
    refused = Breaker("refused", failure_threshold=5, timeout_threshold=2)
    refused.record_failure()
    refused.record_failure()
    assert state_of(refused) == "closed"  # cheap failures: wait for failure_threshold
    for _ in range(3):
        refused.record_failure()
    assert state_of(refused) == "open"

    hung = Breaker("hung", failure_threshold=5, timeout_threshold=2)
    hung.record_failure(timeout=True)
    assert state_of(hung) == "closed"
    hung.record_failure(timeout=True)
    assert state_of(hung) == "open"  # two callers each lost a socket_timeout: enough
