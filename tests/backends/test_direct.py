"""The hit path's direct GET (:mod:`cachewise.backends.direct`): same answers, same pool, same errors.

It bypasses redis-py's command machinery, so these tests attack what that machinery did: the
connection goes back to the pool after every read, a dead server is an outage handled by the
policy (a miss, a breaker failure) and leaves no broken connection in the pool, and clients it
cannot stand in for exactly (Cluster, Sentinel, replicas) keep redis-py's own ``get``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from cachewise.backends.direct import SUPPORTED, direct_get
from cachewise.backends.redis import RedisCache
from cachewise.embedded import EmbeddedRedis


def make_cache(url: str, **options: Any) -> RedisCache:
    alias = f"direct-{uuid.uuid4().hex[:8]}"
    return RedisCache(url, {"KEY_PREFIX": alias, "OPTIONS": {"alias": alias, **options}})


def test_hits_and_misses_read_through_the_direct_get_and_return_connections(
    disposable_redis: EmbeddedRedis,
) -> None:
    cache = make_cache(disposable_redis.url)
    value = {"title": "x" * 900, "tags": ["a"]}
    cache.set("k", value)
    assert (cache._client._direct_get is not None) is SUPPORTED  # else redis-py's get, as before
    pool = cache.get_client().connection_pool
    for _ in range(20):
        assert cache.get("k") == value
        assert cache.get("absent", "default") == "default"
    assert len(pool._in_use_connections) == 0
    assert cache.get(b"\xff".decode("latin-1")) is None  # a non-ASCII key is encoded as redis-py does


def test_unsigned_cache_reads_through_the_direct_get(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url, sign=False)
    cache.set("k", [1, 2, 3])
    assert cache.get("k") == [1, 2, 3]
    assert (cache._client._direct_get is not None) is SUPPORTED  # else redis-py's get, as before


def test_a_dead_server_is_a_miss_and_leaves_no_broken_connection(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    cache.set("k", "v", timeout=None)
    assert cache.get("k") == "v"
    disposable_redis.kill()
    assert cache.get("k", "default") == "default"
    assert len(cache.resilience.breaker._failures) == 1
    pool = cache.get_client().connection_pool
    assert len(pool._in_use_connections) == 0
    disposable_redis.restart()
    cache.set("k", "again", timeout=None)
    assert cache.get("k") == "again"


@pytest.mark.skipif(not SUPPORTED, reason="this redis-py release reads through client.get: no direct reader")
def test_a_server_error_is_raised_and_the_connection_reused(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url)
    raw = cache.get_client()
    raw.rpush(cache.make_key("list"), "a")
    reader = cache._client._direct_get
    assert reader is not None
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        reader(cache.make_key("list"))
    assert reader(cache.make_key("absent")) is None  # the connection is still in step


def test_clients_it_cannot_stand_in_for_keep_redis_py_get(disposable_redis: EmbeddedRedis) -> None:
    assert direct_get(redis.Redis.from_url(disposable_redis.url)) is None  # redis-py's own pool
    single = redis.Redis.from_url(disposable_redis.url, single_connection_client=True)
    assert direct_get(single) is None
    single.close()
