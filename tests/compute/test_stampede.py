"""Stampede protection under real concurrency: processes, threads, a real Redis, killed holders."""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from cachewise import get_or_compute, make_key
from cachewise.compute.api import StampedeMode, invalidate
from cachewise.store.choice import get_store
from cachewise.testing import RedisServerInfo
from tests._backends import configured

FORK = multiprocessing.get_context("fork")


def _counting_compute(client: redis.Redis, counter: str, value: Any, delay: float) -> Callable[[], Any]:
    def compute() -> Any:
        client.incr(counter)
        time.sleep(delay)
        return value

    return compute


def _herd(key: str, url: str, counter: str, threads: int, start_at: float, out: Any) -> None:
    """Child process: ``threads`` threads ask for ``key`` at ``start_at``; report latencies."""
    client = redis.Redis.from_url(url)
    compute = _counting_compute(client, counter, "fresh", 0.2)
    latencies: list[float] = []
    values: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        started = time.perf_counter()
        value = get_or_compute(key, compute, 60)
        with lock:
            latencies.append(time.perf_counter() - started)
            values.append(value)

    pool = [threading.Thread(target=one) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=20)
    out.put((latencies, values))


def _commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(data["calls"]) for name, data in stats.items()}


@pytest.mark.slow
def test_herd_of_4_processes_x_50_threads_recomputes_exactly_once(
    redis_client: redis.Redis, cachewise_caches: dict[str, Any]
) -> None:
    url = cachewise_caches["default"]["LOCATION"]
    key = make_key("herd", "front_page")
    counter = f"{cachewise_caches['default']['KEY_PREFIX']}:recomputes"
    get_or_compute(key, lambda: "old", 0.2)
    time.sleep(0.3)  # the value has expired
    before = _commandstats(redis_client)
    out = FORK.Queue()
    start_at = time.time() + 1.5
    children = [FORK.Process(target=_herd, args=(key, url, counter, 50, start_at, out)) for _ in range(4)]
    for child in children:
        child.start()
    results = [out.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)
    after = _commandstats(redis_client)

    latencies = sorted(lat for lats, _ in results for lat in lats)
    values = [v for _, vals in results for v in vals]
    assert len(values) == 200
    assert set(values) == {"fresh"}
    assert int(redis_client.get(counter) or 0) == 1, "exactly one recompute across 200 requesters"
    assert latencies[-1] < 3.0
    # Lock attempts grow with the number of processes (one leader each), not with requesters.
    assert after.get("set", 0) - before.get("set", 0) <= 8


def _holder_that_hangs(key: str, url: str, started: Any) -> None:
    def compute() -> str:
        started.set()
        time.sleep(60)
        return "never"

    get_or_compute(key, compute, 60, lease=1.0)


@pytest.mark.slow
def test_killed_holder_is_replaced_after_its_lease_and_no_waiter_hangs(
    redis_client: redis.Redis, cachewise_caches: dict[str, Any]
) -> None:
    url = cachewise_caches["default"]["LOCATION"]
    key = make_key("herd", "killed")
    counter = f"{cachewise_caches['default']['KEY_PREFIX']}:recomputes"
    started = FORK.Event()
    holder = FORK.Process(target=_holder_that_hangs, args=(key, url, started))
    holder.start()
    assert started.wait(timeout=10)
    time.sleep(1.5)  # longer than the lease: the holder is alive and renewing it

    results: list[tuple[float, Any]] = []
    compute = _counting_compute(redis_client, counter, "replacement", 0.1)

    def waiter() -> None:
        value = get_or_compute(key, compute, 60, lease=1.0)
        results.append((time.monotonic(), value))

    waiters = [threading.Thread(target=waiter) for _ in range(5)]
    for thread in waiters:
        thread.start()
    time.sleep(0.5)
    assert results == [], "the holder is alive: waiters wait for it"
    killed_at = time.monotonic()
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=5)
    for thread in waiters:
        thread.join(timeout=10)

    assert [value for _, value in results] == ["replacement"] * 5
    assert max(done for done, _ in results) - killed_at < 1.0 + 1.0, "waited past the lease"
    assert int(redis_client.get(counter) or 0) == 1


def _waiter_process(key: str, out: Any) -> None:
    value = get_or_compute(key, lambda: "waiter computed", 60)
    out.put((time.time(), value))


@pytest.mark.slow
def test_waiters_in_other_processes_are_woken_when_the_value_lands(
    redis_client: redis.Redis, cachewise_caches: dict[str, Any]
) -> None:
    key = make_key("herd", "wake")
    store = get_store()
    token = store.acquire(key, 5)  # this test is the holder
    assert token is not None
    out = FORK.Queue()
    children = [FORK.Process(target=_waiter_process, args=(key, out)) for _ in range(4)]
    for child in children:
        child.start()
    time.sleep(1.0)  # let every waiter subscribe
    before = _commandstats(redis_client)
    time.sleep(0.5)
    after = _commandstats(redis_client)
    reads = sum(after.get(name, 0) - before.get(name, 0) for name in ("mget", "get", "pttl"))
    # Waiters sleep on their subscription: polling every 100 ms would be ~20 reads here.
    assert reads == 0, f"waiters read {reads} times while waiting"

    from cachewise.store.adapter import Entry

    now = time.time()
    fence = store.settle_fence(key)
    assert store.fill(key, Entry("holder value", now, now + 60, 0.3), 60, token=token, fence=fence)
    filled_at = time.time()
    results = [out.get(timeout=10) for _ in children]
    for child in children:
        child.join(timeout=5)

    assert {value for _, value in results} == {"holder value"}
    delays = [done - filled_at for done, _ in results]
    assert statistics.median(delays) < 0.05, f"waiters were not woken promptly: {delays}"
    assert max(delays) < 0.5


@pytest.mark.parametrize("mode", ["lock", "none", "xfetch"])
@pytest.mark.parametrize("kind", ["cachewise", "locmem"])
def test_fill_started_before_invalidation_is_not_stored(
    kind: str, mode: StampedeMode, redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    with configured(kind, redis_server, cachewise_caches):
        key = make_key("article", 42)
        computing = threading.Event()
        result: list[Any] = []

        def slow_compute() -> str:
            computing.set()
            time.sleep(0.4)
            return "stale title"  # read from the database before the write below

        filler = threading.Thread(
            target=lambda: result.append(get_or_compute(key, slow_compute, 60, stampede=mode))
        )
        filler.start()
        assert computing.wait(timeout=5)
        invalidate(key)  # the article was saved while the fill ran
        filler.join(timeout=5)

        assert result == ["stale title"], "the caller still gets its value"
        assert get_or_compute(key, lambda: "fresh title", 60, stampede=mode) == "fresh title"


@pytest.mark.parametrize("kind", ["cachewise", "django-redis-builtin", "locmem"])
def test_expired_holder_cannot_release_or_extend_the_next_holders_lock(
    kind: str, redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    with configured(kind, redis_server, cachewise_caches):
        from cachewise.store.adapter import Entry

        store = get_store()
        key = make_key("lock", "owner")
        first = store.acquire(key, 0.2)
        assert first is not None
        assert store.acquire(key, 5) is None
        time.sleep(0.35)  # the first holder's lease ran out while it was still computing
        second = store.acquire(key, 5)
        assert second is not None

        assert store.release(key, first) is False
        assert store.extend(key, first, 5) is False
        now = time.time()
        assert store.fill(key, Entry("late", now, now + 60, 0.1), 60, token=first, fence="0") is False
        assert store.acquire(key, 5) is None, "the second holder still owns the lock"
        assert store.extend(key, second, 5) is True
        assert store.release(key, second) is True
        assert store.acquire(key, 5) is not None


def test_threads_of_one_process_on_locmem_recompute_once(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    with configured("locmem", redis_server, cachewise_caches):
        calls: list[int] = []
        lock = threading.Lock()

        def compute() -> str:
            with lock:
                calls.append(1)
            time.sleep(0.2)
            return "v"

        key = make_key("locmem", "herd")
        values: list[str] = []
        threads = [
            threading.Thread(target=lambda: values.append(get_or_compute(key, compute, 60)))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert values == ["v"] * 20
        assert len(calls) == 1


def test_nostore_holder_lets_waiters_compute_for_themselves(cachewise_caches: dict[str, Any]) -> None:
    from cachewise import NoStore

    key = make_key("nostore", "herd")
    calls: list[int] = []
    lock = threading.Lock()

    def compute() -> NoStore[str]:
        with lock:
            calls.append(1)
        time.sleep(0.1)
        return NoStore("partial")

    values: list[str] = []
    threads = [
        threading.Thread(target=lambda: values.append(get_or_compute(key, compute, 60))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert values == ["partial"] * 5
    assert len(calls) == 5, "nothing was stored, so each caller computed its own"
