"""The near cache: hot keys served from process memory, kept consistent by Redis tracking.

Opt-in per alias with ``OPTIONS["near_cache"]`` (``True`` or a dict, see :class:`NearSettings`).
It holds *raw payloads* exactly as Redis returned them (signed bytes, raw ints), keyed by the
full Redis key, so a near hit still verifies and decodes like a Redis hit: a caller that mutates
the value it got never changes the cached copy, and nothing unsigned gets in through this path.
Absent keys are remembered too (the lock and fence of ``get_or_compute`` are usually absent).

Consistency (docs/near-cache.md states it; tests/backends/test_near*.py attack it):

* Every change to a key under the cache's prefix, by any process, reaches this process through
  :class:`~cachewise.backends.tracking.Tracker` (``CLIENT TRACKING ... BCAST``), and each read
  applies what already arrived before answering.
* A read that races an invalidation never installs the old value: before fetching, a read
  registers a *ticket* per key; an invalidation (or a flush) removes the tickets of its keys, and
  an answer is installed only under a ticket that survived. A write made by this process drops
  its keys the same way (:meth:`NearCache.discard`), without waiting for the message.
* Nothing is served while tracking is not in force (starting, reconnecting, heartbeat late) or
  the alias' circuit breaker is not closed, and the cache is emptied before it serves again.
* Each entry expires at the key's own TTL (read with ``PTTL`` in the same script as the value)
  or after ``max_age``, whichever is first: the last resort if an invalidation were ever lost.

Memory is bounded by ``max_bytes`` (payload + key + a fixed overhead per entry), least recently
used first; payloads above ``max_entry_bytes`` are never held.

One reader opts out of decoding on every hit: the page cache, which never mutates the page it
reads, asks for :meth:`NearCache.decoded`, a memo of decoded values keyed by the payload bytes
themselves (a changed value is new bytes, so it can never be answered from an old decode), within
a quarter of ``max_bytes`` of its own. It also keeps its verdict on a page (fresh under these
counters) with :meth:`NearCache.derive`: answered again by :meth:`NearCache.recall` only while
no entry of the cache has been removed or replaced since the payloads it was drawn from were
read (:attr:`NearCache.changes`), so a recalled verdict is the one a full read would reach.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cachewise.exceptions import ConfigurationError
from cachewise.monitoring.metrics import record
from cachewise.store.scripts import arun, run
from cachewise.store.scripts.items import READ_WITH_TTL

from .tracking import Tracker

__all__ = ["NEAR_OPTIONS", "NearCache", "NearCacheRefused", "NearSettings"]

_UNKNOWN = object()

#: Memory counted per entry besides its key and payload (the tuple, the dict slot, the str header).
ENTRY_OVERHEAD = 160

#: Keys of ``OPTIONS["near_cache"]`` when it is a dict, with their defaults.
NEAR_OPTIONS: dict[str, Any] = {
    "max_bytes": 32 * 1024 * 1024,
    "max_entry_bytes": 256 * 1024,
    "max_age": 60.0,
    "namespaces": None,
    "heartbeat": 1.0,
}


@dataclass(frozen=True)
class NearSettings:
    """``OPTIONS["near_cache"]``, validated.

    ``max_bytes``: the memory budget per process and alias; ``max_entry_bytes``: larger payloads
    are read from Redis every time; ``max_age``: seconds an entry may be served at most;
    ``namespaces``: only keys starting with one of these (Django keys: ``"flags"`` matches
    ``"flags:on"``; ``"orm"`` every ORM entry and version, ``"page"`` the page cache), ``None``
    for every key; ``heartbeat``: seconds between pings of the tracking connection.
    """

    max_bytes: int
    max_entry_bytes: int
    max_age: float
    namespaces: tuple[str, ...] | None
    heartbeat: float

    @classmethod
    def from_option(cls, value: Any) -> NearSettings | None:
        """The settings of ``OPTIONS["near_cache"]`` (None when off); ConfigurationError if invalid."""
        if value is None or value is False:
            return None
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise ConfigurationError(f"OPTIONS['near_cache']={value!r}: expected True, False or a dict")
        unknown = sorted(set(value) - set(NEAR_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"OPTIONS['near_cache'] has unknown keys {unknown}; allowed: {sorted(NEAR_OPTIONS)}"
            )
        merged = {**NEAR_OPTIONS, **value}
        for name, kinds, what in (
            ("max_bytes", int, "an int > 0"),
            ("max_entry_bytes", int, "an int > 0"),
            ("max_age", (int, float), "seconds > 0"),
            ("heartbeat", (int, float), "seconds > 0"),
        ):
            given = merged[name]
            if isinstance(given, bool) or not isinstance(given, kinds) or given <= 0:
                raise ConfigurationError(f"OPTIONS['near_cache'][{name!r}]={given!r}: expected {what}")
        namespaces = merged["namespaces"]
        if namespaces is not None:
            if isinstance(namespaces, str) or not all(isinstance(n, str) and n for n in namespaces):
                raise ConfigurationError(
                    f"OPTIONS['near_cache']['namespaces']={namespaces!r}: expected a list of key prefixes"
                )
            namespaces = tuple(namespaces)
        age, beat = float(merged["max_age"]), float(merged["heartbeat"])
        return cls(merged["max_bytes"], merged["max_entry_bytes"], age, namespaces, beat)


class NearCacheRefused(ConfigurationError):
    """``near_cache`` on a deployment where tracking cannot keep it consistent (cachewise.E060)."""

    check_id = "cachewise.E060"


_AsyncGuard = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


class _Ticket:
    __slots__ = ()


class NearCache:
    """Raw payloads of one alias in this process; see the module docstring for the rules."""

    def __init__(
        self, alias: str, settings: NearSettings, prefix: str, client: Callable[[], Any], breaker: Any
    ) -> None:
        self.alias = alias
        self.settings = settings
        self.prefix = prefix
        self._client = client
        self._breaker = breaker
        self._namespaces = settings.namespaces
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Any, float, int]] = OrderedDict()
        self._pending: dict[str, _Ticket] = {}
        self.bytes = 0
        self._decoded: dict[bytes, Any] = {}
        self._decoded_bytes = 0
        #: Bumped (under the lock) whenever a held entry is removed or replaced: by an
        #: invalidation, a local write, a flush, an eviction, a re-read. A change to a key not
        #: held leaves it (and so the verdicts of :meth:`derive`) as it was.
        self.changes = 0
        #: name -> (changes when its payloads were read, monotonic deadline, keys held, value).
        self._derived: dict[str, tuple[int, float, int, Any]] = {}
        _NEAR_CACHES.add(self)
        self.tracker = Tracker(
            alias, self._new_connection, prefix, settings.heartbeat, self._invalidated, self.flush
        )

    # -- configuration ---------------------------------------------------------------------------

    def wants(self, name: str) -> bool:
        """Whether the Django key ``name`` may be held (the ``namespaces`` option)."""
        namespaces = self._namespaces
        return namespaces is None or name.startswith(namespaces)

    def _new_connection(self) -> Any:
        pool = self._client().connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})

    # -- reads -----------------------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether the near cache may serve now (tracking in force, breaker closed)."""
        if self._breaker.state != "closed":
            if self._entries or self._pending:
                self.flush("circuit breaker not closed")
            return False
        return self.tracker.ready()

    def lookup(self, keys: Sequence[str]) -> list[Any] | None:
        """The payloads of ``keys`` if every one is held and fresh (None: read Redis)."""
        now = time.monotonic()
        entries = self._entries
        with self._lock:
            out = []
            for key in keys:
                entry = entries.get(key)
                if entry is None or entry[1] <= now:
                    return None
                out.append(entry[0])
            for key in keys:
                entries.move_to_end(key)
        return out

    def held(self, keys: Sequence[str]) -> list[Any] | None:
        """The payloads of ``keys`` when the near cache may serve now and holds every one, all
        as of one check of the tracking socket (counted as near hits); else None, and nothing is
        read from Redis."""
        return self._hit(keys) if self.usable() else None

    def _hit(self, keys: Sequence[str]) -> list[Any] | None:
        """:meth:`lookup`, counted as near hits when every key is held (the caller checked
        :meth:`usable`)."""
        found = self.lookup(keys)
        if found is not None:
            record("near_hit", self.alias, "-", len(keys))
        return found

    def read(
        self, keys: Sequence[str], call: Callable[[Callable[[], Any]], Any], *, drained: bool = False
    ) -> list[Any] | None:
        """Payloads of ``keys`` from memory, or from one Redis round trip that is then installed.

        ``call(fn)`` runs ``fn`` under the caller's failure policy (``None``: the read failed
        open, answered as misses). Returns None when the near cache cannot serve now, or a key
        is not a string value: the caller then reads Redis its own way.

        ``drained``: the caller's previous read of the same operation (a row's pointer, before
        its pack) found the near cache serving, which applied what had arrived. A hit is then
        answered as of that check, without a second look at the socket: still after the
        operation began, which is what the promise asks. A miss checks again before it reads,
        so nothing is installed unless tracking is in force.
        """
        if not drained and not self.usable():
            return None
        found = self._hit(keys)
        if found is not None:
            return found
        if drained and not self.usable():
            return None
        record("near_miss", self.alias, "-", len(keys))
        ticket = self._begin(keys)
        client = self._client()
        try:
            reply = call(lambda: run(client, READ_WITH_TTL, keys, []))
        except BaseException:
            self._abandon(keys, ticket)
            raise
        return self._settle(keys, ticket, reply)

    async def aread(self, keys: Sequence[str], call: _AsyncGuard, aclient: Any) -> list[Any] | None:
        """:meth:`read` for async callers: the miss is one round trip on ``aclient``."""
        if not self.usable():
            return None
        found = self._hit(keys)
        if found is not None:
            return found
        record("near_miss", self.alias, "-", len(keys))
        ticket = self._begin(keys)
        try:
            reply = await call(lambda: arun(aclient, READ_WITH_TTL, keys, []))
        except BaseException:
            self._abandon(keys, ticket)
            raise
        return self._settle(keys, ticket, reply)

    def decoded(
        self, raws: Sequence[Any], decode: Callable[[Sequence[Any]], list[Any]], unreadable: Any
    ) -> list[Any]:
        """``decode(raws)``, remembered per payload: only for callers that never mutate the values
        (they are shared between calls). ``decode`` answers ``unreadable`` for an absent (``None``)
        or unreadable payload; those are never remembered."""
        memo = self._decoded
        todo = [raw for raw in raws if raw is not None and raw not in memo]
        fresh = dict(zip(todo, decode(todo), strict=True)) if todo else {}
        if fresh:
            self._remember(fresh, unreadable)
        out = []
        for raw in raws:
            if raw is None:
                out.append(unreadable)
                continue
            value = fresh.get(raw, _UNKNOWN)
            if value is _UNKNOWN:
                value = memo.get(raw, _UNKNOWN)
            out.append(decode([raw])[0] if value is _UNKNOWN else value)  # cleared meanwhile
        return out

    def _remember(self, fresh: dict[Any, Any], unreadable: Any) -> None:
        budget = self.settings.max_bytes // 4
        with self._lock:
            for raw, value in fresh.items():
                if value is unreadable or not isinstance(raw, bytes):
                    continue
                # The payload may outlive its near entry while remembered here: count it twice.
                size = 2 * len(raw) + ENTRY_OVERHEAD
                if self._decoded_bytes + size > budget:
                    self._decoded.clear()
                    self._derived.clear()
                    self._decoded_bytes = 0
                    if size > budget:
                        continue
                self._decoded[raw] = value
                self._decoded_bytes += size

    def mark(self) -> int:
        """:attr:`changes` after applying every invalidation already received: the ``since`` to
        pass to :meth:`derive` for payloads looked up next. Read before that drain, an
        invalidation already waiting in the socket (a write that finished before this request
        began) would be applied by the lookup's own drain and refuse the verdict for nothing.
        """
        self.tracker.ready()
        return self.changes

    def derive(self, name: str, keys: Sequence[str], since: int, value: Any, for_seconds: float) -> None:
        """Remember ``value``, computed from the payloads of ``keys`` read after :attr:`changes`
        was ``since`` (:meth:`mark`), for :meth:`recall` (at most ``for_seconds``, and never past
        an entry's own expiry). Nothing is remembered when an entry changed since, or a key is
        absent: then the payloads held now may not be the ones ``value`` came from. Only for
        values nobody mutates; counted in the decoded memo's budget (a quarter of ``max_bytes``).
        """
        with self._lock:
            if since != self.changes or for_seconds <= 0:
                return
            entries = self._entries
            until = time.monotonic() + min(for_seconds, self.settings.max_age)
            size = ENTRY_OVERHEAD
            for key in keys:
                entry = entries.get(key)
                if entry is None or entry[0] is None:
                    return
                until = min(until, entry[1])
                size += entry[2]
            if self._decoded_bytes + size > self.settings.max_bytes // 4:
                self._decoded.clear()
                self._derived.clear()
                self._decoded_bytes = 0
            self._derived[name] = (since, until, len(keys), value)
            self._decoded_bytes += size

    def recall(self, name: str) -> Any:
        """What :meth:`derive` remembered under ``name``, or None when it may no longer hold (the
        near cache cannot serve, an entry changed since, or it is past its deadline)."""
        memo = self._derived.get(name)
        if memo is None or not self.usable():
            return None
        since, until, count, value = memo
        if since != self.changes or time.monotonic() >= until:
            return None
        record("near_hit", self.alias, "-", count)
        return value

    def _settle(self, keys: Sequence[str], ticket: _Ticket, reply: Any) -> list[Any] | None:
        if reply is None:  # failed open: misses, nothing installed
            self._abandon(keys, ticket)
            return [None] * len(keys)
        raws, ttls = reply[0::2], reply[1::2]
        self._install(keys, ticket, raws, ttls)
        return None if -3 in ttls else raws

    def _begin(self, keys: Sequence[str]) -> _Ticket:
        ticket = _Ticket()
        with self._lock:
            for key in keys:
                self._pending[key] = ticket
        return ticket

    def _abandon(self, keys: Sequence[str], ticket: _Ticket) -> None:
        with self._lock:
            for key in keys:
                if self._pending.get(key) is ticket:
                    del self._pending[key]

    def _install(
        self, keys: Sequence[str], ticket: _Ticket, raws: Sequence[Any], ttls: Sequence[int]
    ) -> None:
        """Hold each answer whose ticket no invalidation removed meanwhile."""
        settings = self.settings
        now = time.monotonic()
        added = 0
        with self._lock:
            pending, entries = self._pending, self._entries
            for key, raw, ttl in zip(keys, raws, ttls, strict=True):
                if pending.get(key) is not ticket:
                    continue  # invalidated (or re-read) while the answer was on its way
                del pending[key]
                length = 0 if raw is None else len(raw)
                if ttl in (-3, 0) or length > settings.max_entry_bytes:
                    continue
                size = length + len(key) + ENTRY_OVERHEAD
                life = settings.max_age if ttl < 0 else min(ttl / 1000.0, settings.max_age)
                old = entries.pop(key, None)
                if old is not None:
                    added -= old[2]
                    self.changes += 1
                entries[key] = (raw, now + life, size)
                added += size
            self.bytes += added
            added -= self._evict()
        if added:
            record("near_bytes", self.alias, "-", added)

    def _evict(self) -> int:
        """Drop least recently used entries until within budget (lock held); the bytes freed."""
        freed = 0
        entries, budget = self._entries, self.settings.max_bytes
        while self.bytes > budget and entries:
            _, (_, _, size) = entries.popitem(last=False)
            self.bytes -= size
            freed += size
            self.changes += 1
        if freed:
            record("near_eviction", self.alias, "-")
        return freed

    # -- invalidation ----------------------------------------------------------------------------

    def discard(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` (a write by this process), and any read of them still in flight."""
        freed = 0
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)
                old = self._entries.pop(key, None)
                if old is not None:
                    freed += old[2]
                    self.changes += 1
            self.bytes -= freed
        if freed:
            record("near_bytes", self.alias, "-", -freed)

    def flush(self, reason: str = "") -> None:
        """Forget everything, reads in flight included (tracking lost, breaker open, clear)."""
        with self._lock:
            freed, self.bytes = self.bytes, 0
            self.changes += 1
            self._entries.clear()
            self._pending.clear()
            self._decoded.clear()
            self._derived.clear()
            self._decoded_bytes = 0
        if freed:
            record("near_bytes", self.alias, "-", -freed)
            record("near_flush", self.alias, "-")

    def _invalidated(self, keys: list[bytes] | None) -> None:
        """An invalidation message: ``None`` means every key (FLUSHDB, FLUSHALL)."""
        if keys is None:
            self.flush("flushed on the server")
            record("near_invalidation", self.alias, "-")
            return
        names = [key.decode("utf-8", "replace") for key in keys]
        freed = dropped = 0
        with self._lock:
            for name in names:
                self._pending.pop(name, None)
                old = self._entries.pop(name, None)
                if old is not None:
                    freed += old[2]
                    dropped += 1
            self.changes += dropped
            self.bytes -= freed
        if dropped:
            record("near_invalidation", self.alias, "-", dropped)
            record("near_bytes", self.alias, "-", -freed)

    def close(self) -> None:
        """Stop tracking and forget everything (tests)."""
        self.tracker.stop()
        self.flush("closed")

    def _forget_after_fork(self) -> None:
        # The parent's entries were kept consistent by the parent's tracking connection, which
        # the child does not have; another thread may have held the lock at fork time.
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._pending = {}
        self.bytes = 0
        self._decoded = {}
        self._derived = {}
        self._decoded_bytes = 0
        self.changes += 1


_NEAR_CACHES: weakref.WeakSet[NearCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for near in list(_NEAR_CACHES):
        near._forget_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
