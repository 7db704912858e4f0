"""Lock waiters share one pub/sub connection per process instead of taking one each from the pool.

60 waiters on 60 distinct keys used to hold 60 subscriber connections: the pool of 50 ran dry,
the breaker opened on a healthy server, a warm key missed and every waiter recomputed.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest
import redis
from django.core.cache import caches

from cachewise import get_or_compute, make_key
from cachewise.backends.redis import RedisCache
from cachewise.resilience import CLOSED
from cachewise.store.adapter import Entry
from cachewise.store.choice import get_store

WAITERS = 60


def _subscriber_connections(client: redis.Redis) -> int:
    return sum(1 for entry in client.client_list() if int(entry.get("sub", 0)) > 0)


@pytest.mark.slow
def test_sixty_waiters_on_distinct_keys_share_one_connection_and_keep_the_pool(
    redis_client: redis.Redis, cachewise_caches: dict[str, Any]
) -> None:
    cache = cast(RedisCache, caches["default"])  # as the cachewise_caches fixture configures it
    cache.set("warm", "value", timeout=300)
    store = get_store()
    keys = [make_key("waits", index) for index in range(WAITERS)]
    tokens = [store.acquire(key, 30) for key in keys]  # this test holds every lock
    assert all(tokens)
    computed: list[str] = []
    results: dict[str, Any] = {}

    def waiter(key: str) -> None:
        def compute() -> str:
            computed.append(key)
            return "waiter computed"

        results[key] = get_or_compute(key, compute, 60)

    threads = [threading.Thread(target=waiter, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # every waiter is subscribed and asleep
    try:
        assert _subscriber_connections(redis_client) == 1
        hits = sum(cache.get("warm") == "value" for _ in range(80))
        assert hits == 80
        assert cache.resilience.breaker.state == CLOSED
    finally:
        now = time.time()
        for key, token in zip(keys, tokens, strict=True):
            assert token is not None
            fence = store.settle_fence(key)
            store.fill(key, Entry("holder value", now, now + 60, 0.1), 60, token=token, fence=fence)
        for thread in threads:
            thread.join(10)
    assert computed == []
    assert results == dict.fromkeys(keys, "holder value")
    assert cache.resilience.breaker.state == CLOSED


def test_waiters_of_one_channel_are_all_woken_and_unsubscribed_after(
    redis_client: redis.Redis, cachewise_caches: dict[str, Any]
) -> None:
    store = get_store()
    key = make_key("waits", "same")
    token = store.acquire(key, 30)
    assert token is not None
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(get_or_compute(key, lambda: "mine", 60)))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    channel = store._keys(key)[1]  # type: ignore[attr-defined]
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]  # one subscription for 5
    now = time.time()
    assert store.fill(key, Entry("held", now, now + 60, 0.1), 60, token=token, fence=store.settle_fence(key))
    for thread in threads:
        thread.join(5)
    assert results == ["held"] * 5
    deadline = time.monotonic() + 2
    while redis_client.pubsub_numsub(channel)[0][1] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 0)]
