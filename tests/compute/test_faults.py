"""Fault cases of get_or_compute: values that cannot be stored, fences the cache evicted.

Each test attacks one promise of docs/guarantees.md with a real Redis and real processes.
"""

from __future__ import annotations

import datetime
import multiprocessing
import time
from typing import Any

import pytest
import redis

from cachewise import get_or_compute, make_key
from cachewise.compute.api import invalidate
from cachewise.store.choice import get_store
from cachewise.testing import RedisServerInfo, isolated_caches

FORK = multiprocessing.get_context("fork")
LEASE = 30.0


def _time_to_get(key: str, out: Any) -> None:
    """Child process: how long get_or_compute takes while the parent's lock would still be held."""
    started = time.monotonic()
    value = get_or_compute(key, lambda: "computed by the child", 60, lease=LEASE)
    out.put((value, time.monotonic() - started))


def _child_waits(key: str) -> tuple[Any, float]:
    out = FORK.Queue()
    child = FORK.Process(target=_time_to_get, args=(key, out))
    child.start()
    try:
        result: tuple[Any, float] = out.get(timeout=LEASE)
        return result
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


@pytest.mark.parametrize(
    ("serializer", "unstorable", "error"),
    [
        ("pickle", lambda: lambda: None, Exception),  # a lambda cannot be pickled
        ("json", lambda: datetime.datetime(2026, 1, 1), TypeError),  # JSON has no datetime
    ],
)
def test_unserialisable_result_raises_and_frees_the_lock_at_once(
    redis_server: RedisServerInfo, serializer: str, unstorable: Any, error: type[Exception]
) -> None:
    with isolated_caches(redis_server, options={"serializer": serializer}):
        key = make_key("faults", "unserialisable", serializer)
        with pytest.raises(error):
            get_or_compute(key, unstorable, 60, stampede="lock", lease=LEASE)
        # Another process takes the lock at once instead of waiting out the 30 s lease.
        value, seconds = _child_waits(key)
        assert value == "computed by the child"
        assert seconds < 5.0


def _fence_key(key: str) -> str:
    from django.core.cache import caches

    cache = caches["default"]
    return cache.make_key(f"{{{cache.make_and_validate_key(key)}}}:fence")


@pytest.mark.parametrize("evicted_before_first_read", [False, True])
def test_fill_started_before_invalidation_is_not_stored_when_the_fence_is_evicted(
    redis_client: redis.Redis, evicted_before_first_read: bool
) -> None:
    key = make_key("faults", "evicted-fence", evicted_before_first_read)
    if not evicted_before_first_read:
        invalidate(key)  # the item has a fence from an earlier invalidation

    def compute() -> str:
        # While this (old) value is computed, another process invalidates the item and the cache
        # then evicts the fence key (allkeys-lru can pick any key): deleting it is the same.
        invalidate(key)
        assert redis_client.delete(_fence_key(key)) == 1
        return "computed before the invalidation"

    assert get_or_compute(key, compute, 60, stampede="none") == "computed before the invalidation"
    assert get_or_compute(key, lambda: "fresh", 60, stampede="none") == "fresh"


def test_an_evicted_fence_restarts_above_every_fence_given_out(redis_client: redis.Redis) -> None:
    key = make_key("faults", "fence-aba")
    store = get_store()
    invalidate(key)
    seen = store.settle_fence(key)
    redis_client.delete(_fence_key(key))
    invalidate(key)  # recreated: never the value a fill read before
    assert int(store.settle_fence(key)) > int(seen)
