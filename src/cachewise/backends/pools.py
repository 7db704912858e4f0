"""Connection pools shared per process: one per (server URL, connection options), never one per thread.

Django's cache handler builds one backend instance per thread (and per async context), so a pool
owned by the instance would multiply: N threads, N pools, N x ``max_connections`` sockets. Pools
live here instead, keyed by what makes a connection different, and each is bounded: a
:class:`WaitingConnectionPool` of ``max_connections`` that waits at most ``pool_timeout`` for a
free connection and then raises (counted as an outage by the breaker).

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
import time
import weakref
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff

__all__ = ["ConnectionSettings", "async_client", "disconnect_all", "sync_client"]

#: Connection options passed through to redis-py as they are.
PASSTHROUGH_OPTIONS = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "health_check_interval",
        "client_name",
        "username",
        "password",
        "db",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
    }
)


class ConnectionSettings:
    """Everything that shapes a connection to one server; hashable, so it keys the pool registry."""

    def __init__(
        self,
        url: str,
        max_connections: int,
        pool_timeout: float,
        kwargs: dict[str, Any],
        cluster: bool = False,
        sentinel_role: str | None = None,
    ) -> None:
        self.url = url
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.kwargs = dict(kwargs)
        self.cluster = cluster
        #: "master" or "replica" for a redis+sentinel:// URL, else None.
        self.sentinel_role = sentinel_role
        options = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        self.key = (url, max_connections, pool_timeout, options, cluster, sentinel_role)


class PoolExhaustedError(redis.exceptions.ConnectionError):
    """Every connection of a pool is in use (an outage for the breaker once the wait times out)."""


class WaitingConnectionPool(redis.ConnectionPool):
    """A bounded pool that waits up to ``timeout`` seconds for a free connection, then raises.

    redis-py's ``BlockingConnectionPool`` pays a queue round trip on every command; this pool
    keeps ``ConnectionPool``'s cheap list pop on the hit path and only waits when all
    ``max_connections`` are busy (retrying every 50 ms at most, so a missed wake-up costs little).
    """

    def __init__(self, timeout: float = 1.0, **kwargs: Any) -> None:
        self.wait_timeout = timeout
        self._released = threading.Condition(threading.Lock())
        self._waiting = 0
        super().__init__(**kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.wait_timeout
        while True:
            try:
                return super().get_connection(*args, **kwargs)
            except PoolExhaustedError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.exceptions.ConnectionError(
                        f"no free Redis connection within {self.wait_timeout}s "
                        f"(max_connections={self.max_connections}): raise OPTIONS['max_connections'] "
                        "or OPTIONS['pool_timeout'], or find what holds connections"
                    ) from None
                with self._released:
                    self._waiting += 1
                    self._released.wait(min(remaining, 0.05))
                    self._waiting -= 1

    def make_connection(self) -> Any:
        # Called under the pool's lock. Our own error type: redis-py's differs across versions.
        if self._created_connections >= self.max_connections:
            raise PoolExhaustedError("all connections are in use")
        return super().make_connection()

    def release(self, connection: Any) -> None:
        super().release(connection)
        if self._waiting:  # read without the lock: a missed wake-up only costs one 50 ms slice
            with self._released:
                self._released.notify()

    def reset(self) -> None:
        super().reset()
        # After a fork, a condition held by a parent thread would never be released in the child.
        self._released = threading.Condition(threading.Lock())
        self._waiting = 0


_SYNC: dict[tuple[Any, ...], redis.Redis] = {}
_ASYNC: dict[tuple[Any, ...], weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]] = {}
_LOCK = threading.Lock()


def _new_sync(settings: ConnectionSettings) -> redis.Redis:
    if settings.sentinel_role:
        from .sentinel import sync_sentinel_client

        return sync_sentinel_client(settings)
    pool_options: dict[str, Any] = {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout,
        "retry": redis.retry.Retry(NoBackoff(), 0),
        **settings.kwargs,
    }
    if not settings.cluster:
        return redis.Redis(connection_pool=WaitingConnectionPool.from_url(settings.url, **pool_options))
    from redis.cluster import RedisCluster

    cluster = RedisCluster.from_url(settings.url, connection_pool_class=WaitingConnectionPool, **pool_options)
    # RedisCluster has redis.Redis's command API (routing each key to its node) without being a
    # subclass; get_client() callers are typed against redis.Redis.
    return cast("redis.Redis", cluster)


def _new_async(settings: ConnectionSettings) -> aioredis.Redis:
    if settings.sentinel_role:
        from .sentinel import async_sentinel_client

        return async_sentinel_client(settings)
    retry = aioredis.retry.Retry(NoBackoff(), 0)
    if settings.cluster:
        from redis.asyncio.cluster import RedisCluster

        cluster = RedisCluster.from_url(
            settings.url, max_connections=settings.max_connections, retry=retry, **settings.kwargs
        )
        return cast("aioredis.Redis", cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
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
        from .sentinel import aclose

        await aclose(client)
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
            from .sentinel import disconnect

            disconnect(client)
        elif hasattr(client, "disconnect_connection_pools"):  # RedisCluster
            client.disconnect_connection_pools()
        else:
            client.connection_pool.disconnect()
