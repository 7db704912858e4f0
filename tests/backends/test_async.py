"""Native async: redis.asyncio on the running loop, one pool per loop, no thread hop."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.base import BaseCache

from cachewise.backends import connection, pools
from cachewise.backends.redis import RedisCache
from cachewise.testing import RedisServerInfo, delete_prefixed

ASYNC_METHODS = [
    "aadd", "aget", "aset", "atouch", "adelete", "aget_many", "aget_or_set", "ahas_key",
    "aincr", "aset_many", "adelete_many", "aclear", "aclose",
]  # fmt: skip


@pytest.fixture
def cache(redis_server: RedisServerInfo) -> Iterator[RedisCache]:
    prefix = f"a{uuid.uuid4().hex[:10]}"
    yield RedisCache(redis_server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"max_connections": 5}})
    delete_prefixed(redis_server.url, prefix)


@pytest.mark.parametrize("name", ASYNC_METHODS)
def test_async_methods_are_our_own_coroutines(name: str) -> None:
    method = getattr(RedisCache, name)
    assert method is not getattr(BaseCache, name)
    assert asyncio.iscoroutinefunction(method)


def test_async_api_never_hops_to_a_thread(cache: RedisCache, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.cache.backends import base

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("sync_to_async used")

    monkeypatch.setattr(base, "sync_to_async", forbidden)
    loop_thread: list[int] = []

    async def scenario() -> None:
        loop_thread.append(threading.get_ident())
        await cache.aset("k", "v")
        assert await cache.aget("k") == "v"
        assert await cache.aadd("k2", 1) is True
        assert await cache.aincr("k2") == 2
        assert await cache.adecr("k2") == 1  # BaseCache.adecr awaits our aincr
        assert await cache.aincr_version("k") == 2  # BaseCache helpers built on our a* methods
        assert await cache.aget("k", version=2) == "v"
        await cache.adisconnect()

    asyncio.run(scenario())
    assert loop_thread == [threading.get_ident()]


def test_one_pool_per_event_loop(cache: RedisCache) -> None:
    async def client_of_this_loop() -> tuple[int, int]:
        first, second = cache.get_async_client(), cache.get_async_client()
        await cache.aset("k", 1)
        identity = (id(first), id(first.connection_pool))
        assert second is first
        await cache.adisconnect()
        return identity

    async def same_loop_twice() -> bool:
        a = cache.get_async_client()
        b = cache.get_async_client()
        return a is b

    assert asyncio.run(same_loop_twice())
    loop_a = asyncio.new_event_loop()
    loop_b = asyncio.new_event_loop()
    try:
        client_a = loop_a.run_until_complete(_client(cache))
        client_b = loop_b.run_until_complete(_client(cache))
        assert client_a is not client_b
        assert client_a.connection_pool is not client_b.connection_pool
        loop_a.run_until_complete(cache.adisconnect())
        loop_b.run_until_complete(cache.adisconnect())
    finally:
        loop_a.close()
        loop_b.close()


async def _client(cache: RedisCache) -> Any:
    client = cache.get_async_client()
    await cache.aset("k", 1)
    return client


def test_pools_of_dead_loops_are_forgotten(cache: RedisCache) -> None:
    settings_key = cache.options.servers[0].key

    async def use() -> None:
        await cache.aset("k", 1)
        await cache.adisconnect()
        cache.get_async_client()  # a fresh, unused client left behind on purpose

    loop = asyncio.new_event_loop()
    loop.run_until_complete(use())
    assert len(pools._ASYNC[settings_key]) >= 1
    loop.close()
    del loop
    gc.collect()
    assert len(pools._ASYNC[settings_key]) == 0


def test_concurrent_coroutines_share_a_bounded_pool(redis_server: RedisServerInfo) -> None:
    prefix = f"a{uuid.uuid4().hex[:10]}"
    cache = RedisCache(
        redis_server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"max_connections": 5, "client_name": prefix}}
    )

    async def scenario() -> None:
        await cache.aset_many({f"k{i}": i for i in range(50)})
        values = await asyncio.gather(*(cache.aget(f"k{i}") for i in range(50)))
        assert values == list(range(50))
        clients = await cache.get_async_client().client_list()
        assert 1 <= sum(1 for c in clients if c["name"] == prefix) <= 5  # max_connections
        await cache.adisconnect()

    asyncio.run(scenario())
    delete_prefixed(redis_server.url, prefix)


def test_sync_use_creates_no_async_pool(redis_server: RedisServerInfo) -> None:
    prefix = f"a{uuid.uuid4().hex[:10]}"
    cache = RedisCache(redis_server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"client_name": prefix}})
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.options.servers[0].key not in pools._ASYNC
    delete_prefixed(redis_server.url, prefix)


def test_threads_share_one_sync_pool(redis_server: RedisServerInfo) -> None:
    """Django builds one backend per thread; they must not build one pool each."""
    prefix = f"a{uuid.uuid4().hex[:10]}"
    params = {"KEY_PREFIX": prefix, "OPTIONS": {"max_connections": 4}}
    clients: list[Any] = []

    def worker() -> None:
        cache = RedisCache(redis_server.url, params)
        cache.set("k", 1)
        clients.append(cache.get_client())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(clients) == 6
    assert len({id(client) for client in clients}) == 1
    delete_prefixed(redis_server.url, prefix)


def test_sync_pool_waits_for_a_free_connection_then_fails_clearly(redis_server: RedisServerInfo) -> None:
    pool = connection.WaitingConnectionPool.from_url(redis_server.url, max_connections=2, timeout=0.3)
    try:
        held = [pool.get_connection(), pool.get_connection()]
        got: list[Any] = []

        def waiter() -> None:
            got.append(pool.get_connection())

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(timeout=0.05)
        assert got == []  # blocked: both connections are in use
        pool.release(held.pop())
        thread.join(timeout=2)
        assert len(got) == 1  # woken by the release
        start = time.monotonic()
        with pytest.raises(redis.exceptions.ConnectionError, match="max_connections=2"):
            pool.get_connection()
        assert 0.25 < time.monotonic() - start < 1.0
        pool.release(got[0])
        pool.release(held[0])
        assert len({id(pool.get_connection()), id(pool.get_connection())}) == 2
    finally:
        pool.disconnect()


def test_a_fresh_loop_per_call_does_not_accumulate_pools(cache: RedisCache) -> None:
    """async_to_sync under WSGI runs each call on a new loop: old loops' pools must go."""
    settings_key = cache.options.servers[0].key

    async def use(i: int) -> None:
        await cache.aset("k", i)  # leaves a connected pool behind, as careless code would
        assert await cache.aget("k") == i

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # sockets of dropped pools, closed by GC
        for i in range(4):
            asyncio.run(use(i))
        gc.collect()
        assert len(pools._ASYNC[settings_key]) <= 1
        asyncio.run(cache.adisconnect())
        gc.collect()


def test_instances_of_one_configuration_share_their_setup(redis_server: RedisServerInfo) -> None:
    """Django builds an instance per thread (per request context under ASGI): keep that cheap."""
    options = {"socket_timeout": 0.4}
    params = {"KEY_PREFIX": "shared", "OPTIONS": options}
    first, second = RedisCache(redis_server.url, params), RedisCache(redis_server.url, dict(params))
    assert second._client is first._client
    assert second.resilience is first.resilience
    other = RedisCache(redis_server.url, {"KEY_PREFIX": "shared", "OPTIONS": {"socket_timeout": 0.3}})
    assert other._client is not first._client
