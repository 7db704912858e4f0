"""The store adapter: what the stampede, version and counter layers need from a cache alias.

One adapter is chosen per alias, once (and again after ``settings.CACHES`` changes):

* :class:`~cachewise.redis_store.RedisStore` when the backend gives access to a raw redis-py
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
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed

__all__ = [
    "MISSING",
    "Entry",
    "GenericStore",
    "Missing",
    "Read",
    "Store",
    "Watch",
    "get_store",
    "redis_client_of",
]


class Missing:
    """Type of :data:`MISSING`: "no value", distinct from a cached ``None``."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


#: The "no value" sentinel: ``None`` is a cacheable value, so absence needs its own marker.
MISSING: Final = Missing()

#: First item of a stored envelope; plain types only, so JSON and msgpack carry it as well.
ENVELOPE_TAG = "cw:e1"
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
    def fill(self, key: str, entry: Entry, ttl: float | None, *, token: str | None, fence: str) -> bool:
        """Store ``entry`` unless the item was invalidated since ``fence`` was read, or the lock
        ``token`` was lost; release the lock and wake waiters either way. True when stored."""

    @abc.abstractmethod
    def invalidate(self, key: str) -> None:
        """Delete the value, break any lock and advance the fence, so in-flight fills are dropped."""

    # Leases -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire(self, key: str, lease: float) -> str | None:
        """Take the item's lock for ``lease`` seconds; return its random token, or None if held."""

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

    def versioned_get(self, key: str, ttl: float | None, data_key: Callable[[int], str]) -> tuple[int, Any]:
        """The version at ``key`` and the value at ``data_key(version)`` (MISSING when absent)."""
        version = self.version(key, ttl)
        return version, self.cache.get(data_key(version), MISSING)


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
        return Read(entry, str(found.get(fence_key, 0)), lock_ttl)

    def fill(self, key: str, entry: Entry, ttl: float | None, *, token: str | None, fence: str) -> bool:
        lock_key, fence_key = self._aux(key, "lock"), self._aux(key, "fence")
        # Check-then-act: an invalidation landing between these reads and the set is missed.
        # This is the documented weaker guarantee of non-Redis backends.
        current = self.cache.get_many([lock_key, fence_key])
        if token is not None and current.get(lock_key) != token:
            return False
        stored = str(current.get(fence_key, 0)) == fence
        if stored:
            self.cache.set(key, entry.to_wire(), timeout=ttl)
        if token is not None:
            self.release(key, token)
        return stored

    def invalidate(self, key: str) -> None:
        fence_key = self._aux(key, "fence")
        if not self.cache.add(fence_key, 1, timeout=FENCE_TTL):
            try:
                self.cache.incr(fence_key)
            except ValueError:  # expired between add() and incr(): start a new count
                self.cache.add(fence_key, 1, timeout=FENCE_TTL)
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


def redis_client_of(cache: BaseCache) -> Any | None:
    """The raw redis-py client behind ``cache``, or None when it is not Redis-backed.

    Django's built-in backend builds a new ``redis.Redis`` per call; build one on its pool
    instead, once, and reuse it (the pool is thread-safe).
    """
    from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

    get_client = getattr(cache, "get_client", None)
    if callable(get_client):
        return get_client(write=True)
    if isinstance(cache, DjangoRedisCache):
        import redis

        pool = cache._cache._get_connection_pool(write=True)  # type: ignore[attr-defined]
        return redis.Redis(connection_pool=pool)
    client = getattr(cache, "client", None)
    if client is not None and callable(getattr(client, "get_client", None)):
        return client.get_client(write=True)
    return None


def codec_of(cache: BaseCache) -> _Codec:
    """The backend's own value format, so values we write are readable by ``cache.get``."""
    if callable(getattr(cache, "encode", None)) and callable(getattr(cache, "decode", None)):
        return _Codec(getattr(cache, "encode"), getattr(cache, "decode"))  # noqa: B009 - Any-typed
    client = getattr(cache, "client", None)
    if client is not None and callable(getattr(client, "encode", None)):
        return _Codec(client.encode, client.decode)
    serializer = cache._cache._serializer  # type: ignore[attr-defined]
    return _Codec(serializer.dumps, serializer.loads)


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(alias: str = "default") -> Store:
    """The store adapter of ``alias``, chosen on first use and kept until CACHES changes."""
    store = _stores.get(alias)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(alias)
        if store is None:
            store = _make_store(alias)
            _stores[alias] = store
        return store


def _make_store(alias: str) -> Store:
    from .conf import conf

    cache = caches[alias]
    client = redis_client_of(cache) if conf.get("STORE", "auto") != "generic" else None
    if client is None:
        return GenericStore(alias)
    from .redis_store import RedisStore

    return RedisStore(alias, cache, client, codec_of(cache))


def _reset_stores(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CACHES", "CACHEWISE_STORE"):
        with _stores_lock:
            _stores.clear()


setting_changed.connect(_reset_stores, dispatch_uid="cachewise.store.reset")
if hasattr(os, "register_at_fork"):
    # A child forked while another thread held the lock would deadlock on its first get_store().
    os.register_at_fork(after_in_child=lambda: globals().__setitem__("_stores_lock", threading.Lock()))
