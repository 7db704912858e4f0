"""The cache-hit ``GET`` on a pooled connection, without redis-py's per-command machinery.

``redis.Redis.get`` runs some 130 Python calls per command (option parsing, the retry wrapper,
the HIMPORT check, observability hooks that are off unless configured, response callbacks);
on a 1 KB hit that is most of the client's CPU. :func:`direct_get` takes a connection from the
same pool, sends ``GET``, reads the reply and gives the connection back, with redis-py's own
connection methods (so sockets, timeouts, health checks, RESP2/3 and the hiredis parser are
the same) and redis-py's error handling (a connection or timeout error disconnects the
connection before it goes back to the pool; retries are off in cachewise's pools anyway).

It is used only where it is exactly equivalent: a plain ``redis.Redis`` on cachewise's
:class:`~cachewise.backends.pools.WaitingConnectionPool` (not Cluster, not Sentinel, not a
single-connection client, no client-side caching) and, per call, while redis-py's
OpenTelemetry recorder is off; anything else gets ``client.get``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import WaitingConnectionPool

__all__ = ["SUPPORTED", "direct_get"]

try:  # redis-py >= 7: commands report to an optional OpenTelemetry collector
    from redis.observability import recorder as _imported_recorder
except ImportError:  # pragma: no cover - older redis-py has no recorder
    _imported_recorder = None  # type: ignore[assignment]
_recorder: Any = _imported_recorder

#: True on the redis-py releases whose internals this module stands in for exactly: no
#: OpenTelemetry recorder at all (before 7), or one that says whether it resolved a collector
#: (``_collector_resolved``, 8.2 on), and connections that say when to reconnect. On other
#: releases (8.1's recorder resolves its collector inside each command) every read goes through
#: ``client.get``: slower, never different.
SUPPORTED: bool = (
    _recorder is None
    or (hasattr(_recorder, "_collector_resolved") and hasattr(_recorder, "_metrics_collector"))
) and hasattr(redis.Connection, "should_reconnect")


def direct_get(client: redis.Redis) -> Callable[[str], Any] | None:
    """``key -> GET key`` on ``client``'s pool, or None where only ``client.get`` is equivalent."""
    if not SUPPORTED or type(client) is not redis.Redis:  # Cluster routes per node: no single pool
        return None
    pool = client.connection_pool
    if (
        type(pool) is not WaitingConnectionPool
        or client.connection is not None  # a single-connection client
        or pool.connection_kwargs.get("cache") is not None
        or pool.connection_kwargs.get("cache_config") is not None
    ):
        return None
    get_connection, release, fallback = pool.get_connection, pool.release, client.get
    disconnect_errors = (RedisConnectionError, RedisTimeoutError)

    recorder = _recorder

    def get(key: str) -> Any:
        # _observed(), inlined: this runs on every cache hit.
        observed = recorder is not None and (
            not recorder._collector_resolved or recorder._metrics_collector is not None
        )
        if observed:
            return fallback(key)
        connection = get_connection()
        try:
            connection.send_command("GET", key)
            return connection.read_response()
        except disconnect_errors:
            connection.disconnect()  # as redis-py does: a half-read reply must not be reused
            raise
        finally:
            if connection.should_reconnect():  # a maintenance notification asked for it
                connection.disconnect()
            release(connection)

    return get
