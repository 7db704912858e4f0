"""Redis Sentinel: clients that find the master (or a replica) of a service through its sentinels.

A ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>[/<db>]`` LOCATION makes
:mod:`cachewise.backends.pools` build its clients here. redis-py's ``Sentinel.master_for()`` gives
a client whose pool asks the sentinels for the master's address each time it opens a connection,
and drops its idle connections when that address changes; a connection still open to a master
that was demoted answers writes with READONLY, which redis-py turns into a ConnectionError and a
reconnect. So a failover costs failed commands for the failover's duration, never a hang: the
circuit breaker counts them and the failure policy answers them (reads are misses); once the
sentinels name a master that answers, a watcher closes the breaker (:mod:`.topology`).

The pools are the same bounded, waiting pools as for one server (``max_connections``,
``pool_timeout``), with redis-py's retries off. The sentinels are contacted with the same socket
timeouts (and ``OPTIONS["sentinel_password"]``, if set); those clients only open a connection while
a data connection is being opened, so they are bounded by ``max_connections`` too.
"""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.backoff import NoBackoff
from redis.sentinel import Sentinel, SentinelConnectionPool

from cachewise.caches_url import SentinelURL, parse_sentinel_url

from .connection import ConnectionSettings, WaitingConnectionPool

__all__ = ["aclose", "async_sentinel_client", "disconnect", "sentinel_arguments", "sync_sentinel_client"]

#: The ``sentinel_role`` of a ConnectionSettings that reads from a replica (the other is "master").
REPLICA = "replica"


class WaitingSentinelPool(SentinelConnectionPool, WaitingConnectionPool):
    """A sentinel-managed pool that is bounded and waits like :class:`WaitingConnectionPool`."""


class BlockingAsyncSentinelPool(AsyncSentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The async sentinel-managed pool, bounded: waits up to ``timeout`` for a free connection."""


def sentinel_arguments(
    url: str, options: dict[str, Any]
) -> tuple[SentinelURL, dict[str, Any], dict[str, Any]]:
    """(parsed ``url``, data-connection kwargs, sentinel-connection kwargs) from connection ``options``.

    The sentinels get the ``socket_*`` options and ``sentinel_password``; the data servers get the
    rest, with the URL's database and credentials.
    """
    parsed = parse_sentinel_url(url)
    kwargs = dict(options)
    sentinel_password = kwargs.pop("sentinel_password", None)
    # As in redis-py's from_url, what the URL says wins over OPTIONS.
    kwargs["db"] = parsed.db
    if parsed.password is not None:
        kwargs["password"] = parsed.password
    if parsed.username is not None:
        kwargs["username"] = parsed.username
    sentinel_kwargs = {name: value for name, value in kwargs.items() if name.startswith("socket_")}
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password
    return parsed, kwargs, sentinel_kwargs


def sync_sentinel_client(settings: ConnectionSettings) -> redis.Redis:
    """A client of the service's master (or, for the replica role, of one of its replicas)."""
    parsed, kwargs, sentinel_kwargs = sentinel_arguments(settings.url, settings.kwargs)
    retry = redis.retry.Retry(NoBackoff(), 0)
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs={**sentinel_kwargs, "retry": retry})  # type: ignore[no-untyped-call, unused-ignore]
    factory = sentinel.slave_for if settings.sentinel_role == REPLICA else sentinel.master_for
    client = factory(  # type: ignore[no-untyped-call, unused-ignore]
        parsed.service,
        connection_pool_class=WaitingSentinelPool,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        retry=retry,
        **kwargs,
    )
    return cast("redis.Redis", client)


def async_sentinel_client(settings: ConnectionSettings) -> aioredis.Redis:
    """The async twin of :func:`sync_sentinel_client` (master only), bound to the running loop."""
    parsed, kwargs, sentinel_kwargs = sentinel_arguments(settings.url, settings.kwargs)
    retry = aioredis.retry.Retry(NoBackoff(), 0)
    sentinel = AsyncSentinel(list(parsed.sentinels), sentinel_kwargs={**sentinel_kwargs, "retry": retry})  # type: ignore[no-untyped-call, unused-ignore]
    factory = sentinel.slave_for if settings.sentinel_role == REPLICA else sentinel.master_for
    client = factory(
        parsed.service,
        connection_pool_class=BlockingAsyncSentinelPool,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        retry=retry,
        **kwargs,
    )
    return cast("aioredis.Redis", client)


def disconnect(client: redis.Redis) -> None:
    """Close the sync client's connections, to the data server and to the sentinels."""
    client.connection_pool.disconnect()
    for node in getattr(client.connection_pool, "sentinel_manager").sentinels:  # noqa: B009
        node.connection_pool.disconnect()


async def aclose(client: aioredis.Redis) -> None:
    """Close the async client's connections, to the data server and to the sentinels."""
    manager = getattr(client.connection_pool, "sentinel_manager")  # noqa: B009
    await client.connection_pool.disconnect()
    for node in manager.sentinels:
        await node.aclose()
