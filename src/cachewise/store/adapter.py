"""The store adapter: what the stampede, version and counter layers need from a cache alias.

One adapter is chosen per alias, once (and again after ``settings.CACHES`` changes):

* :class:`~cachewise.store.redis.RedisStore` when the backend gives access to a raw redis-py
  client (cachewise's backend ``get_client()``, Django's built-in ``RedisCache``, django-redis).
  Locks are ``SET NX PX`` with a random token, release/extend are compare-and-delete /
  compare-and-extend Lua scripts, fills are fenced by a script, waiters are woken by pub/sub.
* :class:`GenericStore` for every other ``BaseCache`` (LocMem, memcached, database): the same
  operations built from ``add``/``get``/``set``/``delete``/``incr``. Weaker: compare-and-delete
  and the fenced fill are check-then-act (a small race window), and waiters poll.

The layers above talk to a :class:`Store` only; they know nothing of Redis commands.

Every item ``key`` (a key from :func:`cachewise.keys.make_key`) owns up to three cache keys:
the value (exactly the key ``cache.get(key)`` reads, so ``cache.delete(key)`` still works), the
lock, and the *fence*: an invalidation counter a fill compares against the value it read before
computing, so a fill that started before an invalidation is never stored.
"""

from __future__ import annotations

import abc
import functools
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

from django.core.cache import BaseCache, caches
from redis.exceptions import RedisError

from cachewise.exceptions import CacheUnavailableError, ConfigurationError, translate_redis_error
from cachewise.missing import MISSING, Missing
from cachewise.resilience import FailurePolicy

from . import stamped
from .fill_budget import FillBudget
from .stamped import StampedEntry, StampedFill

__all__ = [
    "MISSING",
    "NO_FENCE",
    "Entry",
    "GenericStore",
    "Held",
    "Missing",
    "Read",
    "Store",
    "Watch",
    "codec_of",
]

T = TypeVar("T")


#: First item of a stored envelope; plain types only, so JSON and msgpack carry it as well.
ENVELOPE_TAG = "cw:e1"
#: The fence a read reports when the item has none (never invalidated, expired or evicted).
#: A fill is never checked against it: :meth:`Store.settle_fence` creates a real one first.
NO_FENCE: Final = "0"
#: How long the fence (invalidation counter) of an item outlives its last invalidation. A fill
#: that computes for longer than this after an invalidation could be stored; that is 1 hour.
FENCE_TTL = 3600


class Entry(NamedTuple):
    """A value with its metadata, as ``get_or_compute`` stores it (the envelope).

    ``soft_expiry`` is the wall-clock time after which the value is stale (it may still be
    served under ``stale_ttl``/``stale_if_error``); ``compute_seconds`` is how long the last
    computation took, which XFetch uses to decide how early to refresh.
    """

    value: Any
    created: float
    soft_expiry: float
    compute_seconds: float

    def to_wire(self) -> list[Any]:
        """The envelope as a plain list (pickle, JSON and msgpack all keep it)."""
        return [ENVELOPE_TAG, self.value, self.created, self.soft_expiry, self.compute_seconds]

    @classmethod
    def from_wire(cls, raw: Any) -> Entry:
        """Read an envelope; a value stored by plain ``cache.set`` counts as fresh forever."""
        if isinstance(raw, (list, tuple)) and len(raw) == 5 and raw[0] == ENVELOPE_TAG:
            return cls(raw[1], float(raw[2]), float(raw[3]), float(raw[4]))
        return cls(raw, 0.0, float("inf"), 0.0)


class Read(NamedTuple):
    """What a reader learns in one round trip: the entry, the fence, and the lock's remaining life.

    ``lock_ttl`` is 0 when nobody holds the lock, the remaining seconds when known, and
    ``inf`` when the lock may be held but the read did not tell for how long.
    """

    entry: Entry | Missing
    fence: str
    lock_ttl: float


class Held(NamedTuple):
    """An item's lock taken by the read that found the item missing (:meth:`Store.peek_or_lock`):
    the holder's token and the fence its fill is checked against."""

    token: str
    fence: str


class Watch:
    """A subscription to an item's notifications, opened before the reader re-checks the item.

    :meth:`wait` returns the notification (``"filled"``, ``"released"``, ``"nostore"``,
    ``"invalidated"``) or ``None`` when ``timeout`` passed. The generic path has no
    notifications: it sleeps one poll interval.
    """

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval

    def wait(self, timeout: float) -> str | None:
        time.sleep(max(0.0, min(timeout, self.poll_interval)))
        return None


class Store(abc.ABC):
    """Operations on items of one cache alias; see the module docstring for the key layout."""

    #: True when locks, fills and wake-ups are atomic and pushed (Redis), False when polled.
    strong: bool = False
    #: How often a waiter re-checks when the store cannot push notifications.
    poll_interval = 0.05

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def cache(self) -> BaseCache:
        """This thread's cache object for the alias (Django keeps one per thread)."""
        return caches[self.alias]

    @functools.cached_property
    def near(self) -> Any:
        """The alias' near cache (``OPTIONS["near_cache"]``; one per process, whichever thread
        asks), or None: found once, where :attr:`cache` costs a thread-local lookup per call."""
        return getattr(self.cache, "near", None)

    # Keys -------------------------------------------------------------------------------------
    def value_key(self, key: str) -> str:
        """The full key of the value (prefix and cache version applied), validated."""
        return self.cache.make_and_validate_key(key)

    # Items (entries and fences) -----------------------------------------------------------------
    @abc.abstractmethod
    def read(self, key: str) -> Read:
        """The entry, fence and lock state of ``key``, in one round trip where the store can."""

    def read_waiting(self, key: str) -> Read:
        """:meth:`read` with an exact ``lock_ttl``, for callers waiting on a holder."""
        return self.read(key)

    @abc.abstractmethod
    def fill(
        self,
        key: str,
        entry: Entry,
        ttl: float | None,
        *,
        token: str | None,
        fence: str,
        budget: FillBudget | None = None,
    ) -> bool:
        """Store ``entry`` unless the item was invalidated since ``fence`` was read, or the lock
        ``token`` was lost, or ``budget`` refuses it (then ``budget.refused`` is set and waiters
        are told ``nostore``); release the lock and wake waiters either way. True when stored."""

    @abc.abstractmethod
    def settle_fence(self, key: str) -> str:
        """The item's fence, created at the clock in microseconds when missing.

        Fences start at the clock and only grow (an invalidation sets ``max(fence + 1, now)``),
        so a fence recreated after eviction never equals one a running fill read before.
        """

    @abc.abstractmethod
    def invalidate(self, key: str) -> None:
        """Delete the value, break any lock and advance the fence, so in-flight fills are dropped."""

    # Leases -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire(self, key: str, lease: float) -> str | None:
        """Take the item's lock for ``lease`` seconds; return its random token, or None if held."""

    def acquire_read(self, key: str, lease: float) -> tuple[str | None, Read | None]:
        """:meth:`acquire`, and when taken the item as read right after (fence settled).

        The holder must re-check the item once it holds the lock (another caller may have filled
        it between the miss and the lock); stores that can do both in one round trip do.
        """
        token = self.acquire(key, lease)
        return (token, self.read(key)) if token is not None else (None, None)

    @abc.abstractmethod
    def release(self, key: str, token: str, *, note: str = "released") -> bool:
        """Delete the lock only if it still holds ``token``; wake waiters with ``note``."""

    @abc.abstractmethod
    def extend(self, key: str, token: str, lease: float) -> bool:
        """Reset the lock's life to ``lease`` only if it still holds ``token``."""

    @contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        """Subscribe to the item's notifications for the duration of the block."""
        yield Watch(self.poll_interval)

    # Version counters -------------------------------------------------------------------------
    @abc.abstractmethod
    def version(self, key: str, ttl: float | None) -> int:
        """The version counter at ``key``, created at the clock in microseconds when missing."""

    @abc.abstractmethod
    def bump(self, key: str, ttl: float | None) -> int:
        """Atomically advance the version counter at ``key``; return the new version."""

    def version_clock(self, key: str, ttl: float | None) -> tuple[int, int | None]:
        """The version at ``key`` and the store's clock in microseconds as it was read.

        The clock is None when the store's versions do not follow a clock (here: bumps are plain
        increments), so callers cannot tell *when* the last bump happened.
        """
        return self.version(key, ttl), None

    def versioned_get(self, key: str, ttl: float | None, data_key: Callable[[int], str]) -> tuple[int, Any]:
        """The version at ``key`` and the value at ``data_key(version)`` (MISSING when absent)."""
        version = self.version(key, ttl)
        return version, self.cache.get(data_key(version), MISSING)

    # Stamped entries (ORM rows and lists, page stamps: :mod:`cachewise.store.stamped`) ------------------
    # Here on any BaseCache (its add/incr/get_many, the clock of this process); the Redis store
    # does each in one script on the server's clock.
    def stamped_read(
        self,
        value_keys: Sequence[str],
        counter_keys: Sequence[str],
        counter_ttl: int,
        *,
        fail_open: FailOpen | None = None,
    ) -> tuple[list[Any], list[int] | None]:
        """The entries (MISSING where absent) and the counters at one instant; missing counters
        are created at the clock. Counters are None when they could not be established (then
        nothing may be stored).

        On an outage the alias' read policy decides: with ``fail_open``, a "miss" calls it and
        answers every entry MISSING and the counters None; otherwise the error is raised. A
        server error (WRONGTYPE, OOM, a script error) always raises.
        """
        cache = self.cache
        found = self.call(
            "get_many",
            lambda: stamped.read_generic(cache, value_keys, counter_keys, counter_ttl, now_us),
            fallback=_failed_open(fail_open),
        )
        return ([MISSING] * len(value_keys), None) if found is None else found

    def stamped_peek(
        self, value_keys: Sequence[str], counter_keys: Sequence[str]
    ) -> tuple[list[Any], list[int | None]] | None:
        """:meth:`stamped_read` without creating counters (a missing one is None), where that is
        cheaper than the read; None when it is not (then call :meth:`stamped_read`).

        The values may be shared with other calls (a near-cache hit answers the same decoded
        object each time): callers must not mutate them. Its one caller, the page cache, does not.
        """
        return None

    def peek_or_lock(
        self, key: str, counter_keys: Sequence[str], lease: float
    ) -> tuple[Any, list[int | None], Held | None] | None:
        """:meth:`stamped_peek` of the entry ``key`` that also takes the entry's lock (for
        ``lease`` seconds) when it finds the entry missing, in the same round trip: the entry
        (``MISSING`` when absent), the counters, and the lock when this call took it. A caller
        given a lock owns it: it fills (which releases it) or releases it. None where this is
        not one call (then use :meth:`stamped_peek`).
        """
        return None

    def stamped_bump(
        self,
        counter_keys: Sequence[str],
        counter_ttl: int,
        *,
        replicas: int = 0,
        replica_timeout: float = 0.1,
    ) -> None:
        """Advance every counter (creating missing ones above every old value) in one round trip
        where the store can. Raises on any failure: a lost bump must be handled by the caller.

        ``replicas``: also wait (``WAIT``, in the same round trip) until that many replicas have
        the bump; :class:`~cachewise.exceptions.UnconfirmedWriteError` when they did not within
        ``replica_timeout`` seconds (the bump is on the primary). Only a single Redis server or
        Sentinel can: elsewhere :class:`~cachewise.exceptions.ConfigurationError`.
        """
        if replicas:
            raise ConfigurationError(
                f"cache {self.alias!r}: CACHEWISE_ORM_REPLICAS={replicas} needs a single Redis server "
                "or Sentinel (WAIT on the connection that bumped); this cache cannot wait for replicas"
            )
        if counter_keys:
            cache = self.cache
            self.call("incr", lambda: stamped.bump_generic(cache, counter_keys, counter_ttl, now_us))

    def stamped_fill(self, entries: Sequence[StampedEntry], *, fail_open: FailOpen | None = None) -> None:
        """Store entries in one round trip, where the store can only those whose stamp is still
        current (a fill that read its counters before a bump is then not stored at all).

        An outage follows the write policy as :meth:`stamped_read` follows the read policy."""
        if entries:
            cache = self.cache
            self.call(
                "set_many", lambda: stamped.fill_generic(cache, entries), fallback=_failed_open(fail_open)
            )

    def stamped_fill_batch(
        self,
        fills: Sequence[StampedFill],
        shared_keys: Sequence[str],
        shared_stamp: Sequence[int],
        ttl: int,
        *,
        fail_open: FailOpen | None = None,
    ) -> None:
        """Store ``fills`` stamped ``[own, *shared_stamp]``, each only while its own counter and
        the shared ones hold their stamp (the shared ones compared once for the batch)."""
        self.stamped_fill(stamped.as_entries(fills, shared_keys, shared_stamp, ttl), fail_open=fail_open)

    def check_incarnation(self, marker_key: str, epoch_key: str, ttl: int) -> bool | None:
        """Bump ``epoch_key`` if the server is a new process since ``marker_key`` was written
        (restarted, maybe from an older snapshot, or a promoted replica); True when it did.
        None when the store cannot tell (not a single Redis server)."""
        return None

    # Failure policy -----------------------------------------------------------------------------
    def call(
        self, operation: str, fn: Callable[[], T], *, fallback: Callable[[Exception], T] | None = None
    ) -> T:
        """Run ``fn`` (calls on the cache) under the failure policy of ``operation``.

        An outage (a connection error or timeout, or a backend's own ``CacheUnavailableError``)
        answers ``fallback(error)`` when one is given and the default policy of ``operation`` is
        to fail open (reads and writes, not ``add``/``incr``); anything else raises, translated to
        cachewise's errors. A server error is never swallowed.
        """
        try:
            return fn()
        except _OUTAGE_SOURCES as exc:
            error = translate_redis_error(exc)
            fails_open = (
                isinstance(error, CacheUnavailableError) and _DEFAULT_POLICY.action(operation) == "miss"
            )
            if fallback is not None and fails_open:
                return fallback(error)
            if error is exc:
                raise
            raise error from exc


#: Called with the error when an outage was answered by failing open (metrics, recovery checks).
FailOpen = Callable[[Exception], None]
_DEFAULT_POLICY = FailurePolicy()
#: What may signal an outage: redis-py's errors and socket errors (translated, then classified),
#: and a backend's own CacheUnavailableError (cachewise's backend used as a generic cache).
_OUTAGE_SOURCES: tuple[type[BaseException], ...] = (RedisError, OSError, CacheUnavailableError)


def _failed_open(fail_open: FailOpen | None) -> Callable[[Exception], None] | None:
    """The fallback that reports an outage to ``fail_open`` and answers None (no result)."""
    if fail_open is None:
        return None

    def fallback(error: Exception) -> None:
        fail_open(error)

    return fallback


def now_us() -> int:
    """The wall clock in microseconds: where a missing version counter (re)starts."""
    return time.time_ns() // 1000


def _new_token() -> str:
    return uuid.uuid4().hex


class GenericStore(Store):
    """The store on any ``BaseCache``: add-based locks, check-then-act fences, polling waiters."""

    def _aux(self, key: str, suffix: str) -> str:
        return f"{key}:~{suffix}"

    def read(self, key: str) -> Read:
        lock_key, fence_key = self._aux(key, "lock"), self._aux(key, "fence")
        found = self.cache.get_many([key, lock_key, fence_key])
        entry = Entry.from_wire(found[key]) if key in found else MISSING
        lock_ttl = float("inf") if lock_key in found else 0.0
        return Read(entry, str(found.get(fence_key, NO_FENCE)), lock_ttl)

    def fill(
        self,
        key: str,
        entry: Entry,
        ttl: float | None,
        *,
        token: str | None,
        fence: str,
        budget: FillBudget | None = None,
    ) -> bool:
        lock_key, fence_key = self._aux(key, "lock"), self._aux(key, "fence")
        # Check-then-act: an invalidation landing between these reads and the set is missed.
        # This is the documented weaker guarantee of non-Redis backends.
        current = self.cache.get_many([lock_key, fence_key])
        if token is not None and current.get(lock_key) != token:
            return False
        stored = fence != NO_FENCE and str(current.get(fence_key, NO_FENCE)) == fence
        if stored and budget is not None and not budget.fallback():
            budget.refused = True
            if token is not None:
                self.release(key, token, note="nostore")
            return False
        if stored:
            self.cache.set(key, entry.to_wire(), timeout=ttl)
            self.cache.delete(fence_key)  # as on Redis: the next miss settles a new, higher one
        if token is not None:
            self.release(key, token)
        return stored

    def settle_fence(self, key: str) -> str:
        fence_key = self._aux(key, "fence")
        self.cache.add(fence_key, now_us(), timeout=FENCE_TTL)
        return str(self.cache.get(fence_key, NO_FENCE))

    def invalidate(self, key: str) -> None:
        fence_key = self._aux(key, "fence")
        # A missing fence restarts at the clock, above every value it held before eviction.
        if not self.cache.add(fence_key, now_us(), timeout=FENCE_TTL):
            try:
                self.cache.incr(fence_key)
            except ValueError:  # expired between add() and incr(): restart at the clock
                self.cache.add(fence_key, now_us(), timeout=FENCE_TTL)
        self.cache.delete_many([key, self._aux(key, "lock")])

    def acquire(self, key: str, lease: float) -> str | None:
        token = _new_token()
        return token if self.cache.add(self._aux(key, "lock"), token, timeout=lease) else None

    def release(self, key: str, token: str, *, note: str = "released") -> bool:
        lock_key = self._aux(key, "lock")
        if self.cache.get(lock_key) != token:
            return False
        return bool(self.cache.delete(lock_key))

    def extend(self, key: str, token: str, lease: float) -> bool:
        lock_key = self._aux(key, "lock")
        return self.cache.get(lock_key) == token and bool(self.cache.touch(lock_key, lease))

    def version(self, key: str, ttl: float | None) -> int:
        value = self.cache.get(key)
        if value is None:
            # add(): of two first readers, one creates the counter and both read the same value.
            self.cache.add(key, now_us(), timeout=ttl)
            value = self.cache.get(key, now_us())
        return int(value)

    def bump(self, key: str, ttl: float | None) -> int:
        try:
            return int(self.cache.incr(key))
        except ValueError:  # missing (never read, or evicted): restart above every old version
            self.cache.add(key, now_us(), timeout=ttl)
            return int(self.cache.incr(key))


@dataclass(frozen=True)
class _Codec:
    """The value format of a Redis-backed cache: how its backend encodes and decodes values."""

    encode: Any
    decode: Any


def codec_of(cache: BaseCache) -> _Codec:
    """The backend's own value format, so values we write are readable by ``cache.get``."""
    if callable(getattr(cache, "encode", None)) and callable(getattr(cache, "decode", None)):
        return _Codec(getattr(cache, "encode"), getattr(cache, "decode"))  # noqa: B009 - Any-typed
    client = getattr(cache, "client", None)
    if client is not None and callable(getattr(client, "encode", None)):
        return _Codec(client.encode, client.decode)
    serializer = cache._cache._serializer  # type: ignore[attr-defined]
    return _Codec(serializer.dumps, serializer.loads)
