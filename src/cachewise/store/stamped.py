"""Stamped entries: values stored with the version counters they were read under.

An ORM row or list, or a page's dependency stamp, is stored as ``[stamp, data]`` where ``stamp``
lists the counters it depends on *as read before the database query ran*. A reader fetches the
entry and the current counters in one round trip and serves the entry only when the stamp
equals the counters; a fill is *fenced*: stored only if every counter still holds its stamp
value. The operations are the store's (:meth:`cachewise.store.Store.stamped_read` and the
others); this module holds what they exchange.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from cachewise.missing import MISSING

__all__ = [
    "StampedEntry",
    "StampedFill",
    "as_entries",
    "bump_generic",
    "fill_generic",
    "full_keys",
    "read_generic",
    "stamp_matches",
]


@dataclass(frozen=True)
class StampedEntry:
    """One entry to store: its key, data, TTL and the counters (keys, values) it was read under."""

    key: str
    data: Any
    ttl: int
    counter_keys: Sequence[str]
    stamp: Sequence[int]


@dataclass(frozen=True)
class StampedFill:
    """One entry of a batch that shares all its counters but its own (a row and its version)."""

    key: str
    data: Any
    counter_key: str
    stamp: int


def stamp_matches(entry: Any, counters: Sequence[int]) -> bool:
    """True when ``entry`` is a stored ``[stamp, data]`` whose stamp equals ``counters``."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        return False
    stamp = entry[0]
    return isinstance(stamp, (list, tuple)) and list(stamp) == list(counters)


_full_keys: weakref.WeakKeyDictionary[BaseCache, dict[str, str]] = weakref.WeakKeyDictionary()
_FULL_KEYS_MAX = 10_000


def full_keys(cache: BaseCache, keys: Sequence[str]) -> list[str]:
    """``cache.make_and_validate_key`` of each key, memoised per cache object (bounded)."""
    many = getattr(cache, "make_and_validate_keys", None)
    if many is not None:  # cachewise's backend: every key in a few C-level passes
        return list(many(keys))
    memo = _full_keys.get(cache)
    if memo is None or len(memo) > _FULL_KEYS_MAX:
        memo = _full_keys[cache] = {}
    out = []
    for key in keys:
        full = memo.get(key)
        if full is None:
            full = memo[key] = cache.make_and_validate_key(key)
        out.append(full)
    return out


def read_generic(
    cache: BaseCache,
    value_keys: Sequence[str],
    counter_keys: Sequence[str],
    counter_ttl: int,
    now_us: Callable[[], int],
) -> tuple[list[Any], list[int] | None]:
    """:meth:`Store.stamped_read` on any ``BaseCache``: one ``get_many``; when counters are
    missing, an ``add`` each (at ``now_us()``) and one more ``get_many``."""
    found = cache.get_many([*value_keys, *counter_keys])
    values = [found.get(key, MISSING) for key in value_keys]
    counters = {key: _as_int(found.get(key)) for key in counter_keys}
    absent = [key for key, value in counters.items() if value is None]
    if absent:
        now = now_us()
        for key in absent:
            cache.add(key, now, timeout=counter_ttl)
        # Read back: another process may have initialised or bumped it meanwhile.
        again = cache.get_many(absent)
        counters.update({key: _as_int(again.get(key)) for key in absent})
    result = [counters[key] for key in counter_keys]
    if any(value is None for value in result):
        return values, None
    return values, [int(value) for value in result if value is not None]


def bump_generic(
    cache: BaseCache, counter_keys: Sequence[str], counter_ttl: int, now_us: Callable[[], int]
) -> None:
    """:meth:`Store.stamped_bump` on any ``BaseCache``: ``add`` + ``incr`` per counter."""
    now = now_us()
    for key in counter_keys:
        cache.add(key, now, timeout=counter_ttl)
        try:
            cache.incr(key)
        except ValueError:
            # Expired or evicted between add() and incr(): initialise past every old value.
            cache.set(key, now_us() + 1, timeout=counter_ttl)


def fill_generic(cache: BaseCache, entries: Sequence[StampedEntry]) -> None:
    """:meth:`Store.stamped_fill` on any ``BaseCache``: ``set_many`` per TTL, unfenced (the stamp
    check on read keeps it correct)."""
    by_ttl: dict[int, dict[str, Any]] = {}
    for entry in entries:
        by_ttl.setdefault(entry.ttl, {})[entry.key] = [list(entry.stamp), entry.data]
    for ttl, batch in by_ttl.items():
        cache.set_many(batch, timeout=ttl)


def as_entries(
    fills: Sequence[StampedFill], shared_keys: Sequence[str], shared_stamp: Sequence[int], ttl: int
) -> list[StampedEntry]:
    """The :class:`StampedEntry` of each fill of a batch (stamped ``[own, *shared_stamp]``)."""
    return [
        StampedEntry(fill.key, fill.data, ttl, [fill.counter_key, *shared_keys], [fill.stamp, *shared_stamp])
        for fill in fills
    ]


def _as_int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None
