"""Version counters of ORM data and stamped entries: their keys, and reads and bumps through the store.

Every cached ORM entry is stored as ``[stamp, data]`` where ``stamp`` lists the counters it
depends on (a row's own version, model generations, the global ORM epoch), *as read before the
database query ran*. A reader fetches the entry and the current counters in ONE round trip and
serves the entry only when the stamp equals the counters. That closes the stale-refill race:

    reader: reads counters (v=5), misses, queries the old row
    writer: commits, bumps v to 6, returns
    reader: stores the old row stamped 5  -> never served: every later read sees v=6

Counters are never reset to a value that makes an old stamp current again: a missing counter
(never written, expired or evicted) is created at the clock in microseconds, and a bump sets
``max(current + 1, now)``, so a recreated counter is larger than any value it held before.
Counters may therefore carry a TTL and may be evicted: that costs misses, never correctness.

The operations are the store's (:meth:`cachewise.store.Store.stamped_read` and the others): on
Redis each is one script on the server's clock, and fills are fenced (stored only if the stamp
is still current, so a late stale fill does not even overwrite a fresh one); on any other
backend they are built from ``get_many``/``add``/``incr``/``set_many`` and the stamp check on
read keeps that path correct.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from cachewise.keys import make_key
from cachewise.missing import MISSING
from cachewise.store import packs
from cachewise.store.adapter import FailOpen
from cachewise.store.choice import get_store
from cachewise.store.stamped import StampedEntry, StampedFill, stamp_matches

__all__ = [
    "GLOBAL_EPOCH",
    "MISSING",
    "StampedEntry",
    "StampedFill",
    "bump",
    "counter_key",
    "namespace_for",
    "peek",
    "read",
    "read_known",
    "read_packed",
    "read_pointers",
    "send_packs",
    "stamp_matches",
    "store",
    "store_batch",
    "store_packs",
]

#: Counter in every stamp: bumped when an invalidation could not be delivered (escalation).
GLOBAL_EPOCH = make_key("orm", "all")


def namespace_for(label: str) -> str:
    """``orm.<app_label>.<model>``: the key namespace and metrics namespace of one model."""
    name = f"orm.{label}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{name[:55]}-{digest}"


def counter_key(label: str, kind: str, *parts: Any) -> str:
    """Key of a counter: ``gen`` (any write), ``epoch`` (writes without row identity), ``rv``."""
    return make_key(namespace_for(label), kind, *parts)


def read(
    alias: str,
    value_keys: Sequence[str],
    counter_keys: Sequence[str],
    counter_ttl: int,
    *,
    fail_open: FailOpen | None = None,
) -> tuple[list[Any], list[int] | None]:
    """Fetch entries and counters at one instant; initialise missing counters.

    Returns the decoded entries (``MISSING`` where absent) and the counter values in order, or
    ``None`` for the counters when they could not be established (then nothing may be stored).
    An outage answers that way after ``fail_open(error)`` when the alias' read policy fails
    open and ``fail_open`` is given; otherwise errors propagate (server errors always).
    """
    return get_store(alias).stamped_read(value_keys, counter_keys, counter_ttl, fail_open=fail_open)


def peek(
    alias: str, value_keys: Sequence[str], counter_keys: Sequence[str]
) -> tuple[list[Any], list[int | None]] | None:
    """:func:`read` without initialising: one plain ``MGET`` on Redis (cheaper than the script).

    A missing counter comes back as ``None``; a caller that needs it established calls
    :func:`read`. None on other backends: call :func:`read` (its ``get_many`` is one call too).
    """
    return get_store(alias).stamped_peek(value_keys, counter_keys)


def store(alias: str, entries: Sequence[StampedEntry], *, fail_open: FailOpen | None = None) -> None:
    """Store entries in one round trip; on Redis only those whose stamp is still current."""
    get_store(alias).stamped_fill(entries, fail_open=fail_open)


def store_batch(
    alias: str,
    fills: Sequence[StampedFill],
    shared_keys: Sequence[str],
    shared_stamp: Sequence[int],
    ttl: int,
    *,
    fail_open: FailOpen | None = None,
) -> None:
    """Store ``fills`` (stamped ``[own, *shared_stamp]``) in ONE script call on Redis.

    Each entry is stored only if its own counter and every shared counter still hold the values
    read before the query; the shared ones are compared once for the batch, not per entry.
    """
    get_store(alias).stamped_fill_batch(fills, shared_keys, shared_stamp, ttl, fail_open=fail_open)


def read_packed(
    alias: str,
    pointer_keys: Sequence[str],
    counter_keys: Sequence[str],
    counter_ttl: int,
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
    share: bool = False,
) -> packs.PackedRead:
    """:func:`read` for packed entries (:mod:`cachewise.store.packs`): the pointers and the counters
    at one instant, and the packs the pointers name under ``pack_head`` (write-once keys, read
    right after)."""
    return packs.read(
        get_store(alias),
        pointer_keys,
        counter_keys,
        counter_ttl,
        pack_head=pack_head,
        fail_open=fail_open,
        share=share,
    )


def read_known(
    alias: str,
    refs: Sequence[str],
    counter_keys: Sequence[str],
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
    share: bool = False,
) -> packs.PackedRead | None:
    """:func:`read_packed` without the pointers, for rows whose packs a caller remembers
    (:func:`cachewise.store.packs.read_known`); None: read the pointers."""
    store = get_store(alias)
    return packs.read_known(store, refs, counter_keys, pack_head=pack_head, fail_open=fail_open, share=share)


def read_pointers(
    alias: str,
    pointer_keys: Sequence[str],
    counters: list[int],
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
) -> packs.PackedRead:
    """The pointers and packs of the rows :func:`read_known` did not serve, under its counters."""
    store = get_store(alias)
    return packs.read_pointers(store, pointer_keys, counters, pack_head=pack_head, fail_open=fail_open)


def store_packs(
    alias: str,
    batch: Sequence[packs.Pack],
    shared_keys: Sequence[str],
    shared_stamp: Sequence[int],
    ttl: int,
    *,
    fail_open: FailOpen | None = None,
) -> list[bool] | None:
    """Store packs read under ``shared_stamp`` in ONE round trip; on Redis, a row's pointer only
    while its own counter holds its stamp, nothing while a shared counter moved. Returns which
    pointers were written (None: the store failed open)."""
    return packs.fill(get_store(alias), batch, shared_keys, shared_stamp, ttl, fail_open=fail_open)


def bump(
    alias: str,
    counter_keys: Sequence[str],
    counter_ttl: int,
    *,
    replicas: int = 0,
    replica_timeout: float = 0.1,
) -> None:
    """Increment every counter (initialising missing ones) in one round trip on Redis; raises
    on any failure (the caller records and escalates a lost invalidation).

    ``replicas``: wait until that many replicas have the bump (``WAIT``, same round trip), else
    raise :class:`~cachewise.exceptions.UnconfirmedWriteError` (the bump is on the primary).
    """
    get_store(alias).stamped_bump(
        counter_keys, counter_ttl, replicas=replicas, replica_timeout=replica_timeout
    )


def send_packs(
    alias: str, fills: Sequence[packs.Fill], ttl: int, *, fail_open: FailOpen | None = None
) -> packs.SentFills | None:
    """:func:`store_packs` of each fill, sent without waiting for the answers
    (:func:`cachewise.store.packs.send_fills`); None: call :func:`store_packs`."""
    return packs.send_fills(get_store(alias), fills, ttl, fail_open=fail_open)
