"""Pools on a healthy server: waiting for a pooled connection is not an outage.

60 threads share a pool of 50 connections: some of them must wait for a connection now and then.
That wait must neither open the circuit breaker nor turn a present key into a miss.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import redis

from cachewise.backends.connection import PoolTimeoutError, WaitingConnectionPool
from cachewise.backends.redis import RedisCache
from cachewise.embedded import EmbeddedRedis
from cachewise.resilience import CLOSED
from cachewise.signals import circuit_state_changed

THREADS = 60
READS = 60  # with 60 threads on 50 connections, enough for threads to wait for one


def make_cache(url: str, **options: Any) -> RedisCache:
    alias = f"pool-{uuid.uuid4().hex[:8]}"
    return RedisCache(url, {"KEY_PREFIX": alias, "OPTIONS": {"alias": alias, **options}})


@pytest.mark.slow
def test_sixty_threads_on_a_pool_of_fifty_get_no_false_misses(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)  # default OPTIONS: max_connections=50
    cache.set("warm", "value", timeout=300)
    changes: list[Any] = []
    circuit_state_changed.connect(lambda **kw: changes.append(kw["new"]), weak=False, dispatch_uid="pools")
    misses = [0] * THREADS
    start = threading.Barrier(THREADS)

    def reader(index: int) -> None:
        start.wait()
        for _ in range(READS):
            if cache.get("warm") != "value":
                misses[index] += 1
            # Hold connections like a busy view does: a pipeline of a few commands.
            cache.get_many(["warm", "other", "more"])

    try:
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        circuit_state_changed.disconnect(dispatch_uid="pools")
    assert sum(misses) == 0
    assert changes == []
    assert cache.resilience.breaker.state == CLOSED


def test_a_pool_timeout_is_reported_but_leaves_the_breaker_closed(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url, max_connections=1, pool_timeout=0.05, failure_threshold=2)
    cache.set("k", 1)
    pool = cache.get_client().connection_pool
    held = pool.get_connection()  # the only connection: every call must wait, then time out
    try:
        for _ in range(5):
            assert cache.get("k") is None  # degraded per the read policy (a miss)...
        assert cache.resilience.breaker.state == CLOSED  # ...but not an outage
    finally:
        pool.release(held)
    assert cache.get("k") == 1


def test_waiters_are_served_first_come_first_served(disposable_redis: EmbeddedRedis) -> None:
    """A thread that releases and asks again at once must not overtake threads already waiting."""
    pool = WaitingConnectionPool.from_url(disposable_redis.url, max_connections=1, timeout=2.0)
    served: list[str] = []
    first = pool.get_connection()

    def waiter(name: str) -> None:
        connection = pool.get_connection()
        served.append(name)
        time.sleep(0.01)
        pool.release(connection)

    thread = threading.Thread(target=waiter, args=("waiter",))
    thread.start()
    while not pool._queue:
        time.sleep(0.001)
    pool.release(first)
    try:
        again = pool.get_connection()  # queues behind the waiter
        served.append("hog")
        pool.release(again)
    finally:
        thread.join(5)
        pool.disconnect()
    assert served == ["waiter", "hog"]


def test_pool_timeout_error_is_a_connection_error() -> None:
    assert issubclass(PoolTimeoutError, redis.exceptions.ConnectionError)
    assert PoolTimeoutError.counts_as_outage is False
