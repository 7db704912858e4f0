"""What shapes a connection to one server, and the bounded pools that hold those connections.

:class:`ConnectionSettings` keys the per-process registry of :mod:`cachewise.backends.pools`;
:class:`WaitingConnectionPool` (sync) and :class:`AsyncWaitingConnectionPool` wait at most
``pool_timeout`` for a free connection and then raise :class:`PoolTimeoutError`, which the failure
policy reports but never counts as an outage. The sentinel and cluster pools
(:mod:`.sentinel`, :mod:`.topology`) build on these classes, so they live apart from the registry
that picks among them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import redis
import redis.asyncio as aioredis

__all__ = [
    "PASSTHROUGH_OPTIONS",
    "AsyncWaitingConnectionPool",
    "ConnectionSettings",
    "PoolExhaustedError",
    "PoolTimeoutError",
    "WaitingConnectionPool",
]

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
    """Every connection of a pool is in use right now (internal: the pool then waits)."""


class PoolTimeoutError(redis.exceptions.ConnectionError):
    """No pooled connection became free within ``pool_timeout``.

    The server may be perfectly healthy (the process is just busier than its pool), so this is
    *not* an outage: :class:`~cachewise.resilience.Resilience` reports it and applies the policy
    of the operation, but never feeds it to the breaker (``counts_as_outage``).
    """

    counts_as_outage = False


class WaitingConnectionPool(redis.ConnectionPool):
    """A bounded, first-come first-served pool that waits up to ``timeout`` s for a connection.

    redis-py's ``BlockingConnectionPool`` pays a queue round trip on every command; this pool
    keeps ``ConnectionPool``'s cheap list pop on the hit path while nobody waits. Once callers
    wait, they queue: a newcomer never takes a released connection ahead of them (a thread
    that releases and immediately asks again would otherwise starve waiters past their
    timeout), and each release wakes the queue (every 50 ms at most if a wake-up is missed).
    """

    def __init__(self, timeout: float = 1.0, **kwargs: Any) -> None:
        self.wait_timeout = timeout
        self._released = threading.Condition(threading.Lock())
        self._queue: deque[object] = deque()
        super().__init__(**kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self._queue:  # the hit path: nobody waits
            try:
                return super().get_connection(*args, **kwargs)
            except PoolExhaustedError:
                pass
        return self._wait_for_connection(args, kwargs)

    def _wait_for_connection(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        deadline = time.monotonic() + self.wait_timeout
        ticket = object()
        with self._released:
            self._queue.append(ticket)
        try:
            while True:
                if self._queue and self._queue[0] is ticket:
                    try:
                        return super().get_connection(*args, **kwargs)
                    except PoolExhaustedError:
                        pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolTimeoutError(
                        f"no free Redis connection within {self.wait_timeout}s "
                        f"(max_connections={self.max_connections}): raise OPTIONS['max_connections'] "
                        "or OPTIONS['pool_timeout'], or find what holds connections"
                    ) from None
                with self._released:
                    self._released.wait(min(remaining, 0.05))
        finally:
            with self._released:
                self._queue.remove(ticket)
                self._released.notify_all()  # the next in line may take a free connection now

    def make_connection(self) -> Any:
        # Called under the pool's lock. Our own error type: redis-py's differs across versions.
        if self._created_connections >= self.max_connections:
            raise PoolExhaustedError("all connections are in use")
        return super().make_connection()

    def release(self, connection: Any) -> None:
        super().release(connection)
        if self._queue:  # read without the lock: a missed wake-up only costs one 50 ms slice
            with self._released:
                self._released.notify_all()

    def reset(self) -> None:
        super().reset()
        # After a fork, a condition held by a parent thread would never be released in the child.
        self._released = threading.Condition(threading.Lock())
        self._queue = deque()


class AsyncWaitingConnectionPool(aioredis.BlockingConnectionPool):
    """redis-py's async blocking pool, whose wait timeout raises :class:`PoolTimeoutError`."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.ConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise PoolTimeoutError(
                    f"no free Redis connection within {self.timeout}s "
                    f"(max_connections={self.max_connections}) on this event loop"
                ) from exc
            raise
