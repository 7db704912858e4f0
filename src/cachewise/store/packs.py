"""Packed stamped entries: many rows stored as ONE value, found through a pointer per row.

``CachedRows`` stores the rows of one fill together: the *pack* is its caller's value (for
``CachedRows``: ``[shared stamp, own stamps, rows, ids]``) under its own key, ``<head><ref>``
with a random ``ref``, and each row's key holds a *pointer*: the ref (18 bytes, where the whole
key made a pointer four times longer, slower to store on Redis 6.2 and to read everywhere). A
reader knows the head, and finds a row in its pack by the row's id (a pointer holds no
position: every pointer of a pack is the same string, and a pointer moved to another pack finds
no row there). A read of N rows then decodes (and, when signing is on, verifies) one value per
pack instead of one per row: that per-row work was most of a hit's cost.

The guarantees are those of stamped entries (:mod:`.stamped`): a row is served only when its own
counter and the shared ones equal the stamps it was stored with, read at one instant with the
pointers and the packs; a fill is fenced (on Redis: no pointer is written for a row whose own
counter moved since it was read, nothing at all when a shared counter moved). A pack outlives
its pointers until its TTL: a row filled again, or invalidated and refilled, leaves its old copy
in the old pack, unread (memory, never staleness).

On a single Redis server a read is two ``MGET`` (the pointers and counters at one instant, then
the packs; :data:`.scripts.versions.PACKED_READ` when a counter must be created), or one
(:func:`read_known`: the counters and the packs a caller remembers), and a fill one
script (:data:`~.scripts.versions.PACKED_FILL`), waited for (:func:`fill`) or sent with its
answers read later (:func:`send_fills`); elsewhere (another backend, Cluster, where a script may
not follow a pointer to a key of another slot) they are built from ``get_many``/``set_many`` and
the stamp check on read keeps that path correct (fills there are not fenced).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import NoScriptError

from cachewise.exceptions import translate_redis_error

from .adapter import MISSING, FailOpen, Store, _failed_open, now_us
from .redis import RedisStore
from .scripts import run, versions
from .scripts.packed import execute, packer, replies, send
from .stamped import full_keys, read_generic

__all__ = [
    "Fill",
    "Pack",
    "PackedRead",
    "SentFills",
    "fill",
    "read",
    "read_known",
    "read_pointers",
    "send_fills",
]

#: Longest pack ref (a pointer): under the 44 bytes Redis stores in one allocation.
MAX_REF = 40


@dataclass(frozen=True)
class PackedRead:
    """What :func:`read` found: per pointer, its pack (``slots``, 1-based; 0: none); the decoded
    packs (``MISSING`` where absent or unreadable); the counters (None when they could not be
    established: then nothing may be stored)."""

    slots: list[int]
    packs: list[Any]
    counters: list[int] | None
    #: The packs are shared with other reads (decoded once per payload by the near cache): a
    #: caller must copy what it hands out.
    shared: bool = False
    #: The ref of each slot's pack (``refs[slot - 1]``): what a caller may remember per pointer.
    refs: Sequence[Any] = ()


@dataclass(frozen=True)
class Pack:
    """One pack to store under ``head + ref``: ``data`` holds its rows in the order of
    ``pointer_keys`` / ``own_keys`` / ``own_stamps``. ``ref`` is what pointers hold: random
    (a pack is written once) and short (at most :data:`MAX_REF` characters)."""

    head: str
    ref: str
    data: Any
    pointer_keys: Sequence[str]
    own_keys: Sequence[str]
    own_stamps: Sequence[int]

    @property
    def key(self) -> str:
        return self.head + self.ref


def read(
    store: Store,
    pointer_keys: Sequence[str],
    counter_keys: Sequence[str],
    counter_ttl: int,
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
    share: bool = False,
) -> PackedRead:
    """The pointers and the counters at one instant (missing counters created), and the packs
    the pointers name, under ``pack_head``.

    Two ``MGET`` on a single Redis server. An outage follows the read policy as
    :meth:`Store.stamped_read` does (with ``fail_open``: nothing found, counters None).
    ``share``: packs found in the near cache may be decoded once and shared between reads
    (``PackedRead.shared``), for a caller that copies the rows it hands out.
    """
    if _scripted(store):
        return _read_redis(store, pointer_keys, counter_keys, counter_ttl, pack_head, fail_open, share)
    cache = store.cache
    found = store.call(
        "get_many",
        lambda: _read_generic(cache, pointer_keys, counter_keys, counter_ttl, pack_head),
        fallback=_failed_open(fail_open),
    )
    return _nothing(len(pointer_keys)) if found is None else found


def read_known(
    store: Store,
    refs: Sequence[str],
    counter_keys: Sequence[str],
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
    share: bool = False,
) -> PackedRead | None:
    """The counters and the packs of ``refs`` (one per row, remembered from pointers read
    before) in ONE ``MGET``, without reading the pointers; None where this read does not apply
    (not a single Redis server, a counter missing): read the pointers. With a near cache in
    front, from memory only, all as of one check of the tracking socket (None when memory does
    not hold them all); with ``share`` as well, each pack decoded once (see :func:`read`).
    An outage follows the read policy as :func:`read` does (nothing found, counters None).

    Rows found this way are exactly as safe as through their pointers: a row is served on its
    stamps alone (its own counter and the shared ones, read at the same instant as the pack),
    and callers remember only packs a pointer named (read, or written by their own fill), so only
    packs whose row passed the fill's fence. A remembered pack
    that was refilled, invalidated, evicted or expired is a miss here; the caller then reads
    the pointers of those rows.
    """
    if not _scripted(store):
        return None
    cache = store.cache
    near = getattr(cache, "near", None)
    slots, distinct = _resolve(refs)
    count = len(counter_keys)
    names = [*counter_keys, *(pack_head + ref for ref in distinct)]
    keys = full_keys(cache, names)
    if near is not None:
        raw = _held(near, names, keys)
        if raw is None:
            return None
    else:
        client = store.client  # type: ignore[attr-defined]
        guard = _failed_open(fail_open)
        raw = store.call("get_many", lambda: execute(client, "MGET", *keys), fallback=guard)
        if raw is None:
            return _nothing(len(refs))
    if None in raw[:count]:
        return None
    counters = list(map(int, raw[:count]))
    if near is not None and share:
        decoded = near.decoded(raw[count:], lambda raws: store._decode_all(cache, raws), MISSING)  # type: ignore[attr-defined]
        return PackedRead(slots, decoded, counters, shared=True, refs=distinct)
    decoded = store._decode_all(cache, raw[count:])  # type: ignore[attr-defined]
    return PackedRead(slots, decoded, counters, refs=distinct)


def _held(near: Any, names: Sequence[str], keys: Sequence[str]) -> list[Any] | None:
    """The payloads of ``keys`` when the near cache may serve and holds every one (all as of one
    check of the tracking socket), else None: the caller reads the pointers, which go to Redis
    for what memory does not hold."""
    if not all(map(near.wants, names)):
        return None
    found: list[Any] | None = near.held(keys)
    return found


def read_pointers(
    store: Store,
    pointer_keys: Sequence[str],
    counters: list[int],
    *,
    pack_head: str,
    fail_open: FailOpen | None = None,
) -> PackedRead:
    """The pointers and their packs, under ``counters`` read before (by :func:`read_known`, for
    the rows it did not serve): one ``MGET`` of the pointers, one of the packs.

    Comparing packs read now with counters read a moment earlier serves nothing stale: a pack
    filled in between holds stamps read after those counters, which equal them only when no
    write came in between. Single Redis server only (where :func:`read_known` applies).
    """
    client, guard = store.client, _failed_open(fail_open)  # type: ignore[attr-defined]
    keys = full_keys(store.cache, pointer_keys)
    raw = store.call("get_many", lambda: execute(client, "MGET", *keys), fallback=guard)
    if raw is None:
        return _nothing(len(pointer_keys))
    return _packs_named(store, raw, counters, pack_head, guard)


def fill(
    store: Store,
    packs: Sequence[Pack],
    shared_keys: Sequence[str],
    shared_stamp: Sequence[int],
    ttl: int,
    *,
    fail_open: FailOpen | None = None,
) -> list[bool] | None:
    """Store ``packs`` (read under ``shared_stamp``) and their pointers for ``ttl`` seconds in one
    round trip; on Redis fenced, in one script call (callers bound its size).

    Returns whether each pointer was written (the pointers of every pack, in order), or None when
    the store failed open: a caller may remember the refs of the rows that passed the fence.
    """
    packs = _fillable(packs)
    if not packs:
        return []
    if _scripted(store):
        return _fill_redis(store, packs, shared_keys, shared_stamp, ttl, fail_open)
    cache = store.cache
    done = store.call("set_many", lambda: _fill_generic(cache, packs, ttl), fallback=_failed_open(fail_open))
    return None if done is None else [True] * sum(len(pack.pointer_keys) for pack in packs)


def _fillable(packs: Sequence[Pack]) -> list[Pack]:
    """The packs of ``packs`` that have rows to point to; refuses a ref that is not one."""
    packs = [pack for pack in packs if pack.pointer_keys]
    if not all(_is_ref(pack.ref) for pack in packs):
        raise ValueError(f"a pack's ref is 1 to {MAX_REF} ASCII letters and digits")
    return packs


def _scripted(store: Store) -> bool:
    return isinstance(store, RedisStore) and not store.cluster


def _nothing(count: int) -> PackedRead:
    return PackedRead([0] * count, [], None)


def _read_redis(
    store: Any,
    pointer_keys: Sequence[str],
    counter_keys: Sequence[str],
    counter_ttl: int,
    pack_head: str,
    fail_open: FailOpen | None,
    share: bool = False,
) -> PackedRead:
    """Pointers and counters in one ``MGET``, then the packs they name in another.

    The packs need not be read at the same instant: a pack key is random and written once, so a
    pointer names one content for as long as it can be read. The script (:data:`PACKED_READ`)
    runs only when a counter is missing (it creates it): Lua's per-key work cost more than a
    plain ``MGET``.
    """
    cache, client, count = store.cache, store.client, len(pointer_keys)
    names = [*pointer_keys, *counter_keys]
    keys = full_keys(cache, names)
    near = store._near_raws(cache, names, keys)
    if near is not None and None not in near[count:]:
        counters = list(map(int, near[count:]))
        served = _from_near(store, cache, near[:count], counters, pack_head, share)
        if served is not None:
            return served
    guard = _failed_open(fail_open)
    raw = store.call("get_many", lambda: execute(client, "MGET", *keys), fallback=guard)
    if raw is not None and None in raw[count:]:
        args = [count, counter_ttl]
        script = store.call(
            "get_many", lambda: run(client, versions.PACKED_READ, keys, args, packed=True), fallback=guard
        )
        raw = None if script is None else [*script[0], *script[1]]
    if raw is None:
        return _nothing(count)
    return _packs_named(store, raw[:count], list(map(int, raw[count:])), pack_head, guard)


def _packs_named(
    store: Any, pointers: list[Any], counters: list[int], pack_head: str, guard: Any
) -> PackedRead:
    """The packs ``pointers`` (as Redis answered them) name, in one ``MGET``, read under
    ``counters``: the second step of :func:`read` and of :func:`read_pointers`."""
    cache, client = store.cache, store.client
    slots, found = _resolve(pointers)
    refs = [_text(ref) for ref in found]
    payloads: list[Any] | None = []
    if refs:
        packs = _pack_keys(cache, pack_head, refs)
        payloads = store.call("get_many", lambda: execute(client, "MGET", *packs), fallback=guard)
    if payloads is None:
        return _nothing(len(pointers))
    return PackedRead(slots, store._decode_all(cache, payloads), counters, refs=refs)


def _pack_keys(cache: Any, head: str, refs: Sequence[str]) -> list[str]:
    """The full keys of the packs named by ``refs``."""
    return full_keys(cache, [head + ref for ref in refs])


def _from_near(
    store: Any, cache: Any, pointers: list[Any], counters: list[int], pack_head: str, share: bool
) -> PackedRead | None:
    """:func:`read` from the alias' near cache: the pointers there, then their packs (which live
    in the pointers' namespace), the packs as of the pointers' check of the tracking socket
    (``drained``). None when the near cache stopped serving in between.

    With ``share`` each pack payload is decoded once (:meth:`NearCache.decoded`, keyed by its
    bytes: a pack is written once under a random key, so its bytes never name other rows).
    """
    near = cache.near
    slots, refs = _resolve([None if raw is None else _text(raw) for raw in pointers])
    names = _pack_keys(cache, pack_head, refs)
    payloads = near.read(names, lambda fn: store.call("get_many", fn), drained=True) if names else []
    if payloads is None:
        return None
    if not share:
        return PackedRead(slots, store._decode_all(cache, payloads), counters, refs=refs)
    decoded = near.decoded(payloads, lambda raws: store._decode_all(cache, raws), MISSING)
    return PackedRead(slots, decoded, counters, shared=True, refs=refs)


def _fill_redis(
    store: Any,
    packs: Sequence[Pack],
    shared_keys: Sequence[str],
    shared_stamp: Sequence[int],
    ttl: int,
    fail_open: FailOpen | None,
) -> list[bool] | None:
    cache, client = store.cache, store.client
    keys, args, written = _fill_command(store, packs, shared_keys, shared_stamp, ttl)
    try:
        reply: Any = store.call(
            "set_many", functools.partial(_run_fill, client, keys, args), fallback=_failed_open(fail_open)
        )
        return None if reply is None else _written(reply, packs)
    finally:
        near = getattr(cache, "near", None)
        if near is not None:
            near.discard(written)


def _fill_command(
    store: Any, packs: Sequence[Pack], shared_keys: Sequence[str], shared_stamp: Sequence[int], ttl: int
) -> tuple[list[Any], list[Any], list[str]]:
    """The keys and arguments of one :data:`PACKED_FILL` call, and the keys it may write."""
    cache, encode = store.cache, store.codec.encode
    shared = full_keys(cache, shared_keys)
    keys: list[Any] = list(shared)
    args: list[Any] = [ttl, len(shared), *shared_stamp]
    written: list[str] = []
    for pack in packs:
        if len(pack.pointer_keys) != len(pack.own_keys):
            raise ValueError("a pack needs one own counter per pointer")
        count = len(pack.pointer_keys)
        full = full_keys(cache, [pack.key, *pack.pointer_keys, *pack.own_keys])
        keys += full
        written += full[: 1 + count]  # the pack and its pointers
        args += [count, encode(pack.data), pack.ref, *pack.own_stamps]
    return keys, args, written


def _written(reply: Any, packs: Sequence[Pack]) -> list[bool]:
    """Which pointers :data:`PACKED_FILL` wrote, from its reply (a ``'1'``/``'0'`` per pointer,
    or ``0`` when a shared counter had moved and it wrote nothing)."""
    if not isinstance(reply, bytes):
        return [False] * sum(len(pack.pointer_keys) for pack in packs)
    return [flag == 49 for flag in reply]  # b"1"


@dataclass(frozen=True)
class Fill:
    """The arguments of one :func:`fill`: its packs, read under ``shared_stamp``."""

    packs: Sequence[Pack]
    shared_keys: Sequence[str]
    shared_stamp: Sequence[int]


class SentFills:
    """Fills sent by :func:`send_fills` and not answered yet: :meth:`written` reads the answers
    (on any thread; once)."""

    def __init__(
        self, store: Any, sent: Any, calls: list[tuple[list[Any], list[Any], Sequence[Pack]]], fail_open: Any
    ) -> None:
        self._store, self._sent, self._calls, self._fail_open = store, sent, calls, fail_open

    def written(self) -> list[list[bool] | None]:
        """:func:`fill`'s answer for each fill, in order (None: the store failed open).

        The replies are read under the alias' failure policy, as a :func:`fill` would read them:
        a server that stopped answering counts against the breaker. A fill answered
        ``NOSCRIPT`` (Redis restarted since the script was loaded) runs again, waited for here.
        """
        store, calls, guard, sent = self._store, self._calls, _failed_open(self._fail_open), self._sent
        if sent is None:  # the send failed open: nothing ran
            return [None] * len(calls)
        answers = store.call("set_many", lambda: replies(sent), fallback=guard)
        if answers is None:
            return [None] * len(calls)
        result: list[list[bool] | None] = []
        for answer, (keys, args, packs) in zip(answers, calls, strict=True):
            reply = answer
            if isinstance(answer, NoScriptError):
                reply = store.call(
                    "set_many", functools.partial(_run_fill, store.client, keys, args), fallback=guard
                )
            elif isinstance(answer, Exception):
                raise translate_redis_error(answer) from answer  # never swallowed, as in fill()
            result.append(None if reply is None else _written(reply, packs))
        return result


def _run_fill(client: Any, keys: list[Any], args: list[Any]) -> Any:
    return run(client, versions.PACKED_FILL, keys, args, packed=True)


def send_fills(
    store: Store, fills: Sequence[Fill], ttl: int, *, fail_open: FailOpen | None = None
) -> SentFills | None:
    """Send the :func:`fill` of each of ``fills`` in one write, without waiting for the answers:
    :meth:`SentFills.written` reads them later. The fills run on Redis exactly as :func:`fill`
    runs them (fenced, one script each), in order.

    None where fills cannot be sent this way (not a single Redis server, a near cache in front,
    hiredis missing): call :func:`fill`. A send that fails open is not retried: its
    :meth:`SentFills.written` answers None for every fill, as :func:`fill` would. A near cache is
    excluded because :func:`fill` drops the keys it writes from it after the answer.
    """
    if not _scripted(store) or getattr(store.cache, "near", None) is not None:
        return None
    client = store.client  # type: ignore[attr-defined]
    if packer(client) is None:  # checked before the packs are encoded: fill() would encode again
        return None
    fills = [replace(each, packs=_fillable(each.packs)) for each in fills]
    calls: list[tuple[list[Any], list[Any], Sequence[Pack]]] = []
    for each in fills:
        keys, args, _ = _fill_command(store, each.packs, each.shared_keys, each.shared_stamp, ttl)
        calls.append((keys, args, each.packs))
    commands = [("EVALSHA", versions.PACKED_FILL.sha, len(keys), *keys, *args) for keys, args, _ in calls]
    sent = store.call("set_many", lambda: send(client, commands), fallback=_failed_open(fail_open))
    return SentFills(store, sent, calls, fail_open)  # a failed send answers None: not retried


def _read_generic(
    cache: Any, pointer_keys: Sequence[str], counter_keys: Sequence[str], counter_ttl: int, pack_head: str
) -> PackedRead:
    pointers, counters = read_generic(cache, pointer_keys, counter_keys, counter_ttl, now_us)
    slots, refs = _resolve([pointer if isinstance(pointer, str) else None for pointer in pointers])
    names = [pack_head + ref for ref in refs]
    found = cache.get_many(names) if names else {}
    return PackedRead(slots, [found.get(name, MISSING) for name in names], counters, refs=refs)


def _fill_generic(cache: Any, packs: Sequence[Pack], ttl: int) -> bool:
    """``set_many`` of the packs and every pointer, unfenced (the stamp check on read)."""
    batch: dict[str, Any] = {}
    for pack in packs:
        batch[pack.key] = pack.data
        batch.update(dict.fromkeys(pack.pointer_keys, pack.ref))
    cache.set_many(batch, timeout=ttl)
    return True


def _resolve(pointers: Sequence[Any]) -> tuple[list[int], list[Any]]:
    """The slot of each of ``pointers`` (str or bytes as Redis answers them, None: absent) and
    the refs of the distinct packs they name, in C-level passes. A pointer that is not a ref
    (absent, or anything but 1-40 ASCII letters and digits) gets slot 0: no pack."""
    order: dict[Any, int] = dict.fromkeys(pointers, 0)
    refs = [ref for ref in order if ref is not None and _is_ref(ref)]
    order.update(zip(refs, range(1, len(refs) + 1), strict=True))
    return list(map(order.__getitem__, pointers)), refs


def _is_ref(ref: str | bytes) -> bool:
    """A pack ref: 1 to :data:`MAX_REF` ASCII letters and digits (a valid end of any key)."""
    return 0 < len(ref) <= MAX_REF and ref.isascii() and ref.isalnum()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
