"""The entry budget: how many pages one view (or the site-wide middleware) may have cached at once.

Whatever goes into the key (path, declared query parameters, Vary headers), an anonymous client
can send values nobody sent before, and each would otherwise become one more entry in Redis. The
budget bounds that: a view may store at most ``max_entries // 2`` new entries per window of
``timeout`` seconds. Every entry lives at most ``timeout`` seconds, so an entry alive now was
stored in the current window or the previous one: at most ``max_entries`` entries of a view
exist at any moment, whatever is requested. An entry the budget refuses is not stored (the view
rendered it; the response says ``bypass; reason=entry-cap``); pages already cached keep being
served.

The window is a counter in the cache that expires with the window, so every process and server
shares one budget per view, with no clocks to agree on. On Redis the page's own fill counts it:
the fenced fill script (``FILL_CAPPED``, :mod:`cachewise.store.fill_budget`) increments the window,
compares and stores in one round trip, so the budget costs no round trip of its own; a pointer
and its variant (two entries written apart) and other backends count first with :func:`admit`
(one script on Redis; ``add`` then ``incr`` elsewhere). None on a hit.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from typing import Any

from django.core.cache import caches
from redis.cluster import RedisCluster

from cachewise.compute.background import io_pool
from cachewise.keys import make_key
from cachewise.store.raw_client import redis_client_of
from cachewise.store.scripts import run
from cachewise.store.scripts.counts import BUDGET_ADMIT

__all__ = ["aadmit", "admit", "budget_key", "per_window"]


def budget_key(source: str, name: str) -> str:
    """The key of the window counter of view ``name`` (``source``: "view" or "site")."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return make_key("page", "budget", source, digest)


def per_window(max_entries: int) -> int:
    """Entries admitted per window so that at most ``max_entries`` are alive (two windows)."""
    return max(1, max_entries // 2)


_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _client(cache: Any) -> Any | None:
    """The raw client to run the admit script on (one round trip), or None on other backends."""
    if cache not in _clients:
        client: Any = redis_client_of(cache)
        _clients[cache] = client if client is not None and not isinstance(client, RedisCluster) else None
    return _clients[cache]


def admit(alias: str, key: str, count: int, window: int, max_entries: int) -> bool:
    """Count ``count`` new entries against the budget; True when they may be stored."""
    cache = caches[alias]
    client = _client(cache)
    if client is not None:
        full = cache.make_and_validate_key(key)
        return _admitted(cache, client, full, count, window, max_entries)
    cache.add(key, 0, timeout=window)
    try:
        used = cache.incr(key, count)
    except ValueError:  # the window expired between add() and incr(): this opens the next one
        cache.add(key, 0, timeout=window)
        used = cache.incr(key, count)
    return int(used) <= per_window(max_entries)


def _admitted(cache: Any, client: Any, full: str, count: int, window: int, max_entries: int) -> bool:
    def call() -> Any:
        return run(client, BUDGET_ADMIT, [full], [count, max(1, window) * 1000])

    resilience = getattr(cache, "resilience", None)
    used = resilience.call("incr", call) if resilience is not None else call()
    return int(used) <= per_window(max_entries)


async def aadmit(alias: str, key: str, count: int, window: int, max_entries: int) -> bool:
    """Async :func:`admit`, on cachewise's I/O threads like the rest of an async fill.

    Not the backend's native async client: its connections belong to the running event loop,
    and one opened during a request would outlive a loop made for that request.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(io_pool.executor(), admit, alias, key, count, window, max_entries)
