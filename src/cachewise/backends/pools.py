"""Connection pools shared per process: one per (server URL, connection options), never one per thread.

Django's cache handler builds one backend instance per thread (and per async context), so a pool
owned by the instance would multiply: N threads, N pools, N x ``max_connections`` sockets. Pools
live here instead, keyed by what makes a connection different, and each is bounded: a
:class:`WaitingConnectionPool` of ``max_connections`` that waits at most ``pool_timeout`` for a
free connection and then raises :class:`PoolTimeoutError`: reported and handled by the failure
policy, but not an outage for the breaker (a busy process is no reason to stop using a healthy
server).

redis-py's own retries are switched off (``Retry(NoBackoff(), 0)``): redis-py 8 retries a failed
command three times by default, which turns one blackholed read into four socket timeouts. The
circuit breaker decides what to do about failures instead.

Async clients (``redis.asyncio``) are bound to the event loop that created their connections, so
there is one pool per running loop, held in a ``WeakKeyDictionary`` that forgets a loop when it is
garbage collected, or closed (checked whenever a new loop makes its pool). Process forks are
handled by redis-py (a pool resets itself in a new pid).

With ``cluster`` set, the client is a ``redis.cluster.RedisCluster`` (a bounded blocking pool per
node, cluster retries off too): it routes each key to its node, groups MGET and DEL by slot, and
runs SCAN on every primary. With ``sentinel_role`` set (a ``redis+sentinel://`` URL), the client
finds its server through Redis Sentinel: see :mod:`cachewise.backends.sentinel`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster

from . import sentinel
from .connection import AsyncWaitingConnectionPool, ConnectionSettings, WaitingConnectionPool
from .topology import cluster_domains_for

__all__ = ["async_client", "close_async_client", "disconnect_all", "sync_client"]

_SYNC: dict[tuple[Any, ...], redis.Redis] = {}
_ASYNC: dict[tuple[Any, ...], weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]] = {}
_LOCK = threading.Lock()


def _new_sync(settings: ConnectionSettings) -> redis.Redis:
    if settings.sentinel_role:
        return sentinel.sync_sentinel_client(settings)
    pool_options: dict[str, Any] = {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout,
        "retry": redis.retry.Retry(NoBackoff(), 0),
        **settings.kwargs,
    }
    if not settings.cluster:
        return redis.Redis(connection_pool=WaitingConnectionPool.from_url(settings.url, **pool_options))
    domains = cluster_domains_for(settings)  # per-node breakers: one dead master stops its slots only
    pool_class = WaitingConnectionPool if domains is None else domains.pool_class()
    cluster = RedisCluster.from_url(settings.url, connection_pool_class=pool_class, **pool_options)
    if domains is not None:
        domains.client = cluster
    # RedisCluster has redis.Redis's command API (routing each key to its node) without being a
    # subclass; get_client() callers are typed against redis.Redis.
    return cast("redis.Redis", cluster)


def _new_async(settings: ConnectionSettings) -> aioredis.Redis:
    if settings.sentinel_role:
        return sentinel.async_sentinel_client(settings)
    retry = aioredis.retry.Retry(NoBackoff(), 0)
    if settings.cluster:
        cluster = AsyncRedisCluster.from_url(
            settings.url, max_connections=settings.max_connections, retry=retry, **settings.kwargs
        )
        return cast("aioredis.Redis", cluster)
    pool = AsyncWaitingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        retry=retry,
        **settings.kwargs,
    )
    return aioredis.Redis(connection_pool=pool)


def sync_client(settings: ConnectionSettings) -> redis.Redis:
    """The process-wide client for ``settings`` (thread-safe; its pool is created lazily)."""
    client = _SYNC.get(settings.key)
    if client is not None:
        return client
    with _LOCK:
        client = _SYNC.get(settings.key)
        if client is None:
            client = _SYNC[settings.key] = _new_sync(settings)
        return client


def async_client(settings: ConnectionSettings) -> aioredis.Redis:
    """The client for ``settings`` bound to the running event loop (one pool per loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _ASYNC.get(settings.key)
    client = per_loop.get(loop) if per_loop is not None else None
    if client is not None:
        return client
    with _LOCK:
        per_loop = _ASYNC.setdefault(settings.key, weakref.WeakKeyDictionary())
        client = per_loop.get(loop)
        if client is None:
            _forget_closed_loops(per_loop)
            client = per_loop[loop] = _new_async(settings)
        return client


def _forget_closed_loops(per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]) -> None:
    """Drop the pools of loops that were closed without ``adisconnect()``.

    A pool's open connections reference their loop, so the weak key alone would never let go:
    code that runs a fresh loop per call (``async_to_sync`` under WSGI, ``asyncio.run`` in a
    command) would keep one pool per call. Dropped connections are closed when collected.
    """
    for old_loop in list(per_loop.keys()):
        if old_loop.is_closed():
            del per_loop[old_loop]


async def close_async_client(settings: ConnectionSettings) -> None:
    """Disconnect and forget the running loop's pool for ``settings`` (before the loop closes)."""
    loop = asyncio.get_running_loop()
    with _LOCK:
        per_loop = _ASYNC.get(settings.key)
        client = per_loop.pop(loop, None) if per_loop is not None else None
    if client is not None and settings.sentinel_role:
        await sentinel.aclose(client)
    elif client is not None and settings.cluster:
        await client.aclose()
    elif client is not None:
        await client.connection_pool.disconnect()


def disconnect_all() -> None:
    """Close every sync connection of this process (tests, or after a fork you manage yourself)."""
    with _LOCK:
        clients = list(_SYNC.values())
    for client in clients:
        if hasattr(getattr(client, "connection_pool", None), "sentinel_manager"):
            sentinel.disconnect(client)
        elif hasattr(client, "disconnect_connection_pools"):  # RedisCluster
            client.disconnect_connection_pools()
        else:
            client.connection_pool.disconnect()
