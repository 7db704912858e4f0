"""A cap a fill is stored under: the entry counts against a shared window counter first.

The page cache bounds the entries one view may add per window (:mod:`cachewise.pagecache.budget`).
Counting before the fill cost a round trip of its own on every miss; passed to
:meth:`~cachewise.store.adapter.Store.fill`, the count, the comparison and the store happen in
one script on Redis (one round trip, and an entry refused by the budget is never written).
Stores that cannot run it atomically (other backends, a Redis Cluster, where the counter lives
in another slot) count through ``fallback`` before filling, as before.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FillBudget"]


class FillBudget:
    """Count ``count`` entries against the window counter ``key`` (a cache key, unprefixed)
    that lives ``window`` seconds; store only while the window holds at most ``limit``.

    ``fallback()`` does the counting on stores without the script and answers whether the
    entries may be stored. ``refused`` is set by the fill that the budget refused.
    """

    __slots__ = ("count", "fallback", "key", "limit", "refused", "window")

    def __init__(self, key: str, count: int, window: int, limit: int, fallback: Callable[[], bool]) -> None:
        self.key, self.count, self.window, self.limit = key, count, window, limit
        self.fallback = fallback
        self.refused = False
