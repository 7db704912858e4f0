"""The Redis fast path of the store adapter: Lua scripts, token locks, pub/sub wake-ups.

Each operation is one round trip (an ``EVALSHA`` or a single command), so nothing can interleave
between a check and the act that depends on it:

* ``read``: the value, the lock and the fence (``MGET``); ``read_waiting`` gives the lock's
  remaining life instead of its presence.
* ``fill``: store only if the caller still holds its lock token (when it has one) and the fence
  is unchanged since its read; release the lock and ``PUBLISH`` the outcome to waiters.
* ``release`` / ``extend``: compare-and-delete / compare-and-extend on the lock token, so a caller
  whose lease expired can never free or prolong the lock a later caller took over.
* ``invalidate``: delete the value and the lock, advance the fence, wake waiters.

Key layout: the value lives at the key ``cache.get()`` reads (``V``); the lock and fence live at
``cache.make_key("{V}:lock")`` and ``"{V}:fence"``. The braces make them a Redis Cluster hash tag
whose content is ``V`` itself, so all three hash to the same slot, and they keep ``KEY_PREFIX``.
Waiters subscribe to the lock key as a pub/sub channel, all through one connection per process
(:mod:`cachewise.backends.lock_subscriber`).
"""

from __future__ import annotations

import math
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.core.cache import caches

from cachewise.backends.lock_subscriber import SharedSubscriber, Subscription
from cachewise.backends.near import NearCache
from cachewise.exceptions import CacheUnavailableError, SerializationError, UnconfirmedWriteError

from .adapter import (
    FENCE_TTL,
    MISSING,
    NO_FENCE,
    Entry,
    FailOpen,
    Held,
    Missing,
    Read,
    Store,
    Watch,
    _Codec,
    _failed_open,
)
from .fill_budget import FillBudget
from .scripts import Script, items, run, run_many, run_then, versions
from .stamped import StampedEntry, StampedFill, full_keys

__all__ = ["RedisStore"]

T = TypeVar("T")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore(Store):
    """The store on a Redis-backed cache (see the module docstring)."""

    strong = True

    def __init__(self, alias: str, cache: Any, client: Any, codec: _Codec) -> None:
        super().__init__(alias)
        self.client = client
        self.codec = codec
        # cachewise's RedisCache holds nothing per thread (its pools, format and near cache
        # belong to the alias' shared setup): one object serves every thread, where Django's
        # per-thread lookup (caches[alias]) costs a few microseconds per use on the hot paths.
        self._shared_cache = cache if getattr(cache, "one_for_all_threads", False) is True else None
        self.cluster = type(client).__name__ == "RedisCluster"
        self._resilience = getattr(cache, "resilience", None)
        self._subscriber = _subscriber_for(client)

    @property
    def cache(self) -> Any:
        """The alias' cache object: the shared one for cachewise's backend, else this thread's."""
        shared = self._shared_cache
        return shared if shared is not None else caches[self.alias]

    # Plumbing ---------------------------------------------------------------------------------
    def call(
        self,
        operation: str,
        fn: Callable[[], T],
        *,
        fallback: Callable[[Exception], T] | None = None,
        answered: str | None = None,
    ) -> T:
        """Run one network call through the backend's breaker and policy, else the default policy.

        ``answered``: what the end caller gets when this raises (see ``Resilience.call``)."""
        resilience = self._resilience
        if resilience is None:
            return super().call(operation, fn, fallback=fallback)
        try:
            result: T = resilience.call(operation, fn, fallback=fallback, answered=answered)
        except CacheUnavailableError as error:
            # On Cluster ``fn`` is the generic path: the backend's own calls, which counted and
            # reported the outage already and raise where their policy says (``add``); answer
            # as ``operation``'s policy says, so a read that fails open never raises.
            if fallback is None or resilience.policy.action(operation) == "raise":
                raise
            return fallback(error)
        return result

    def script(
        self, operation: str, script: Script, keys: list[Any], args: list[Any], *, packed: bool = False
    ) -> Any:
        """Run ``script`` (EVALSHA, reloaded on NOSCRIPT: :mod:`.scripts`) as one guarded call.

        ``packed``: hiredis packs the command and it goes straight to a pooled connection
        (:func:`.scripts.packed.execute`), for the calls every page miss makes."""
        client = self.client
        return self.call(operation, lambda: run(client, script, keys, args, packed=packed))

    def _keys(self, key: str) -> tuple[str, str, str]:
        value_key = self.value_key(key)
        cache = self.cache
        return value_key, cache.make_key(f"{{{value_key}}}:lock"), cache.make_key(f"{{{value_key}}}:fence")

    def decode(self, raw: Any) -> Any:
        """A stored payload back to its value (the backend's own format)."""
        return self.codec.decode(raw)

    def encode(self, value: Any) -> Any:
        """A value to the backend's payload format."""
        return self.codec.encode(value)

    # Items ------------------------------------------------------------------------------------
    def _near(self, key: str) -> Any:
        """The alias' near cache if it may hold ``key`` (``OPTIONS["near_cache"]``), else None."""
        near = self.near
        return near if near is not None and near.wants(key) else None

    def _guard_get(self, fn: Callable[[], T]) -> T:
        return self.call("get", fn)

    def _forget(self, key: str, full_keys: Any) -> None:
        """Drop this process' near copies of keys it just wrote (the message may still be on its way)."""
        near = self._near(key)
        if near is not None:
            near.discard(full_keys)

    def _near_int(self, near: Any, full_key: str) -> int | None:
        raws = near.read((full_key,), self._guard_get)
        try:
            return None if not raws or raws[0] is None else int(raws[0])
        except ValueError:
            return None

    def read(self, key: str) -> Read:
        """Value, fence and whether the lock is held, in one MGET (one plain command).

        With a near cache, all three come from process memory while none of them changed.
        """
        keys = self._keys(key)
        client = self.client
        near = self._near(key)
        raws = None if near is None else near.read(keys, self._guard_get)
        if raws is None:
            raw, lock, fence = self.call("get", lambda: client.mget(keys))
        else:
            raw, lock, fence = raws
        entry: Entry | Missing = MISSING if raw is None else self._entry(raw)
        return Read(entry, _text(fence) if fence is not None else NO_FENCE, 0.0 if lock is None else math.inf)

    def read_waiting(self, key: str) -> Read:
        """The value, the fence and the lock's remaining life, in one script call."""
        raw, fence, pttl = self.script("get", items.READ, list(self._keys(key)), [])
        entry: Entry | Missing = MISSING if raw is None else self._entry(raw)
        lock_ttl = pttl / 1000.0 if pttl > 0 else 0.0
        return Read(entry, _text(fence) if fence is not None else NO_FENCE, lock_ttl)

    def _entry(self, raw: Any) -> Entry | Missing:
        try:
            return Entry.from_wire(self.decode(raw))
        except SerializationError as exc:  # tampered or unknown format: a miss, reported
            if self._resilience is not None:
                self._resilience.report_unreadable("get", exc)
            return MISSING

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
        ttl_ms = 0 if ttl is None else _ms(ttl)
        args = [token or "", fence, self.encode(entry.to_wire()), ttl_ms]
        keys = self._keys(key)
        try:
            if budget is None:
                return bool(self.script("fill", items.FILL, list(keys), args, packed=True))
            return self._capped_fill(list(keys), args, budget)
        finally:
            self._forget(key, keys)

    def _capped_fill(self, keys: list[str], args: list[Any], budget: FillBudget) -> bool:
        # Count, compare and store in one script; a Cluster keeps the counter in another slot.
        if self.cluster:
            if not budget.fallback():
                budget.refused = True
                if args[0]:
                    self.script("lock", items.RELEASE_LOCK, [keys[1]], [args[0], "nostore"])
                return False
            return bool(self.script("fill", items.FILL, keys, args))
        keys.append(self.cache.make_and_validate_key(budget.key))
        args += [budget.count, max(1, budget.window) * 1000, budget.limit]
        stored = int(self.script("fill", items.FILL_CAPPED, keys, args, packed=True))
        budget.refused = stored < 0
        return stored > 0

    def settle_fence(self, key: str) -> str:
        return _text(self.script("lock", items.SETTLE_FENCE, [self._keys(key)[2]], [FENCE_TTL * 1000]))

    def invalidate(self, key: str) -> None:
        keys = self._keys(key)
        try:
            self.script("delete", items.INVALIDATE, list(keys), [FENCE_TTL * 1000])
        finally:
            self._forget(key, keys)

    # Leases -----------------------------------------------------------------------------------
    def acquire(self, key: str, lease: float) -> str | None:
        token = uuid.uuid4().hex
        lock_key = self._keys(key)[1]
        acquired = self.call("lock", lambda: self.client.set(lock_key, token, nx=True, px=_ms(lease)))
        return token if acquired else None

    def acquire_read(self, key: str, lease: float) -> tuple[str | None, Read | None]:
        """Lock, re-read and settle the fence in ONE script call (a miss' second round trip)."""
        token = secrets.token_hex(16)
        answer = self.script(
            "lock",
            items.ACQUIRE_READ,
            list(self._keys(key)),
            [token, _ms(lease), FENCE_TTL * 1000],
            packed=True,
        )
        if not answer:
            return None, None
        raw, fence = answer
        entry: Entry | Missing = MISSING if raw is None else self._entry(raw)
        return token, Read(entry, _text(fence), math.inf)

    def release(self, key: str, token: str, *, note: str = "released") -> bool:
        return bool(self.script("lock", items.RELEASE_LOCK, [self._keys(key)[1]], [token, note]))

    def extend(self, key: str, token: str, lease: float) -> bool:
        return bool(self.script("lock", items.EXTEND_LOCK, [self._keys(key)[1]], [token, _ms(lease)]))

    @contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        """Wait on the lock channel through the process' shared subscriber (confirmed first).

        The confirmation matters: the caller re-checks the item after this returns, and a
        notification published between that check and an unconfirmed SUBSCRIBE would be lost
        (the waiter would then sleep until the lease ran out). Waiters take no pool connection
        each: see :mod:`cachewise.backends.lock_subscriber`.
        """
        channel = self._keys(key)[1]
        subscription = self.call("lock", lambda: self._subscriber.join(channel))
        try:
            yield _SharedWatch(subscription)
        finally:
            self._subscriber.leave(subscription)

    # Versions -------------------------------------------------------------------------------
    def version(self, key: str, ttl: float | None) -> int:
        full = self.value_key(key)
        near = self._near(key)
        known = None if near is None else self._near_int(near, full)
        if known is not None:
            return known
        return int(self.script("get", versions.VERSION_GET, [full], [_ttl_arg(ttl)]))

    def bump(self, key: str, ttl: float | None) -> int:
        full = self.value_key(key)
        try:
            return int(self.script("incr", versions.VERSION_BUMP, [full], [_ttl_arg(ttl)]))
        finally:
            self._forget(key, (full,))

    def version_clock(self, key: str, ttl: float | None) -> tuple[int, int | None]:
        """The version and the server clock (TIME, microseconds) in one script call."""
        version, clock = self.script("get", versions.VERSION_CLOCK, [self.value_key(key)], [_ttl_arg(ttl)])
        return int(version), int(clock)

    def versioned_get(self, key: str, ttl: float | None, data_key: Callable[[int], str]) -> tuple[int, Any]:
        """The version and the value stored under it, in one round trip (two on Cluster)."""
        template = data_key(_PLACEHOLDER)
        # The script splices the real version into the key; that is only exact when the key is
        # not hashed (make_key hashes long keys) and is not on a Cluster (undeclared key).
        if self.cluster or len(template) > _SPLICE_MAX_LENGTH:
            return super().versioned_get(key, ttl, data_key)
        near = self._near(key)
        if near is not None:
            found = self._near_versioned(near, key, data_key)
            if found is not None:
                return found
        full = self.value_key(template)
        args = [_ttl_arg(ttl), full, f"v{_PLACEHOLDER}"]
        version, raw = self.script("get", versions.VERSIONED_GET, [self.value_key(key)], args)
        return int(version), MISSING if raw is None else self.decode(raw)

    def _near_versioned(self, near: Any, key: str, data_key: Callable[[int], str]) -> tuple[int, Any] | None:
        """:meth:`versioned_get` from the near cache (None: not both held, read Redis)."""
        version = self._near_int(near, self.value_key(key))
        name = None if version is None else data_key(version)
        if version is None or name is None or not near.wants(name):
            return None
        raws = near.read((self.value_key(name),), self._guard_get)
        if raws is None:
            return None
        return version, MISSING if raws[0] is None else self.decode(raws[0])

    # Stamped entries: one script each, on the server's clock (Cluster: the generic path) ------
    def stamped_read(
        self,
        value_keys: Sequence[str],
        counter_keys: Sequence[str],
        counter_ttl: int,
        *,
        fail_open: FailOpen | None = None,
    ) -> tuple[list[Any], list[int] | None]:
        """MGET of entries and counters plus creation of missing counters, in one script call."""
        if self.cluster:  # a script may only touch keys of one slot
            return super().stamped_read(value_keys, counter_keys, counter_ttl, fail_open=fail_open)
        cache, client, count = self.cache, self.client, len(value_keys)
        keys = full_keys(cache, [*value_keys, *counter_keys])
        near = self._near_raws(cache, [*value_keys, *counter_keys], keys)
        if near is not None and None not in near[count:]:
            return self._decode_all(cache, near[:count]), [int(item) for item in near[count:]]
        args = [count, counter_ttl]
        raw = self.call(
            "get_many",
            lambda: run(client, versions.STAMPED_READ, keys, args, packed=True),
            fallback=_failed_open(fail_open),
        )
        if raw is None:
            return [MISSING] * count, None
        return self._decode_all(cache, raw[:count]), [int(item) for item in raw[count:]]

    def stamped_peek(
        self, value_keys: Sequence[str], counter_keys: Sequence[str]
    ) -> tuple[list[Any], list[int | None]] | None:
        """One plain MGET (cheaper than the script); a missing counter comes back as None."""
        if self.cluster:
            return None
        cache, client, count = self.cache, self.client, len(value_keys)
        keys = full_keys(cache, [*value_keys, *counter_keys])
        raw = self._near_raws(cache, [*value_keys, *counter_keys], keys)
        if raw is not None:  # the page cache never mutates a page: a near hit skips the decode
            near: NearCache = cache.near  # _near_raws found it
            values = near.decoded(raw[:count], lambda raws: self._decode_all(cache, raws), MISSING)
            return values, _versions(raw[count:])
        raw = self.call(  # callers answer from the database when this raises
            "get_many", lambda: client.execute_command("MGET", *keys), answered="fallback"
        )
        values = self._decode_all(cache, raw[:count])  # unreadable (unsigned, tampered): MISSING
        return values, _versions(raw[count:])

    def peek_or_lock(
        self, key: str, counter_keys: Sequence[str], lease: float
    ) -> tuple[Any, list[int | None], Held | None] | None:
        """One script call: the entry and its counters, and the entry's lock when it is missing
        (the page cache's miss then renders at once, instead of a second round trip to lock).
        A hit costs a script call instead of an ``MGET`` (a few us more on the server). Not
        on Cluster (the counters live in other slots), nor where the near cache serves.
        """
        if self.cluster or self._near(key) is not None:
            return None
        cache, client = self.cache, self.client
        value_key, lock_key, fence_key = self._keys(key)
        keys = [value_key, *full_keys(cache, counter_keys), lock_key, fence_key]
        token = secrets.token_hex(16)
        args = [token, _ms(lease), FENCE_TTL * 1000]
        raw = self.call(  # callers answer from the database when this raises
            "get_many",
            lambda: run(client, versions.STAMPED_PEEK_OR_LOCK, keys, args, packed=True),
            answered="fallback",
        )
        count = len(counter_keys) + 1
        held = Held(token, _text(raw[count])) if len(raw) > count and raw[count] else None
        entry = MISSING if raw[0] is None else self._decode_all(cache, raw[:1])[0]
        return entry, _versions(raw[1:count]), held

    def stamped_bump(
        self,
        counter_keys: Sequence[str],
        counter_ttl: int,
        *,
        replicas: int = 0,
        replica_timeout: float = 0.1,
    ) -> None:
        if self.cluster or not counter_keys:
            super().stamped_bump(
                counter_keys, counter_ttl, replicas=replicas, replica_timeout=replica_timeout
            )
            return
        client, keys = self.client, full_keys(self.cache, counter_keys)
        if replicas:  # the bump and WAIT on one connection, one round trip (WAIT is per connection)
            wait = ("WAIT", replicas, _ms(replica_timeout))

            def bump() -> Any:
                return run_then(client, versions.STAMPED_BUMP, keys, [counter_ttl], wait)[1]

        else:

            def bump() -> Any:
                return run(client, versions.STAMPED_BUMP, keys, [counter_ttl], packed=True)

        try:  # a failed ORM bump is recorded and delivered later: the saver sees no error
            acked = self.call("incr", bump, answered="deferred")
        finally:
            _forget_near(self.cache, keys)
        if replicas and int(acked) < replicas:  # outside call(): a slow replica is no outage
            raise UnconfirmedWriteError(
                f"cache {self.alias!r}: the ORM version bump is on the primary but {acked} of "
                f"{replicas} replicas confirmed it within {_ms(replica_timeout)} ms"
            )

    def stamped_fill(self, entries: Sequence[StampedEntry], *, fail_open: FailOpen | None = None) -> None:
        """One pipelined fenced fill per entry: a single round trip."""
        if self.cluster or not entries:
            super().stamped_fill(entries, fail_open=fail_open)
            return
        cache, client, encode = self.cache, self.client, self.codec.encode
        calls = []
        for entry in entries:
            keys = full_keys(cache, [entry.key, *entry.counter_keys])
            calls.append((keys, [entry.ttl, encode([list(entry.stamp), entry.data]), *entry.stamp]))
        try:
            self.call(
                "set_many",
                lambda: run_many(client, versions.STAMPED_FILL, calls),
                fallback=_failed_open(fail_open),
            )
        finally:
            _forget_near(cache, [keys[0] for keys, _ in calls])

    def stamped_fill_batch(
        self,
        fills: Sequence[StampedFill],
        shared_keys: Sequence[str],
        shared_stamp: Sequence[int],
        ttl: int,
        *,
        fail_open: FailOpen | None = None,
    ) -> None:
        """ONE script call for the batch; callers bound it (CachedRows: 500 entries)."""
        if self.cluster or not fills:
            super().stamped_fill_batch(fills, shared_keys, shared_stamp, ttl, fail_open=fail_open)
            return
        cache, client, encode = self.cache, self.client, self.codec.encode
        shared = list(shared_stamp)
        keys = full_keys(cache, shared_keys)
        pairs = full_keys(cache, [key for fill in fills for key in (fill.key, fill.counter_key)])
        args: list[Any] = [ttl, len(keys), *shared]
        for fill in fills:
            args.append(fill.stamp)
            args.append(encode([[fill.stamp, *shared], fill.data]))
        script_keys = [*keys, *pairs]
        self.call(
            "set_many",
            lambda: run(client, versions.STAMPED_FILL_MANY, script_keys, args, packed=True),
            fallback=_failed_open(fail_open),
        )

    def check_incarnation(self, marker_key: str, epoch_key: str, ttl: int) -> bool | None:
        if self.cluster:
            return None
        client, keys = self.client, full_keys(self.cache, [marker_key, epoch_key])
        return bool(
            self.call(  # checked again at the next read on failure: nobody sees the error
                "incr",
                lambda: run(client, versions.INCARNATION, keys, [ttl], packed=True),
                answered="deferred",
            )
        )

    def _near_raws(self, cache: Any, names: Sequence[str], full: list[str]) -> list[Any] | None:
        """The payloads of ``full`` from the alias' near cache (``OPTIONS["near_cache"]``), or None.

        Entries and counters then come from process memory together, all current as of the last
        invalidation this process applied (see :mod:`cachewise.backends.near`).
        """
        near = getattr(cache, "near", None)
        if near is None or not all(map(near.wants, names)):
            return None
        result: list[Any] | None = near.read(full, lambda fn: self.call("get_many", fn))
        return result

    def _decode_all(self, cache: Any, raws: Sequence[Any]) -> list[Any]:
        """Payloads to values (MISSING for absent or unreadable) in one tight loop where the
        backend offers it (cachewise's ``decode_many``)."""
        decode_many = getattr(cache, "decode_many", None)
        if decode_many is not None:
            return list(decode_many(raws, missing=MISSING))
        return [MISSING if raw is None else self._decoded_or_missing(raw) for raw in raws]

    def _decoded_or_missing(self, raw: Any) -> Any:
        try:
            return self.codec.decode(raw)
        except Exception:  # noqa: BLE001 - unpickling (or decompressing) another backend's bytes raises any type
            return MISSING


def _forget_near(cache: Any, full: Sequence[str]) -> None:
    """Drop this process' near copies of keys it just wrote (before the message arrives)."""
    near = getattr(cache, "near", None)
    if near is not None:
        near.discard(full)


_SUBSCRIBERS: dict[int, tuple[Any, SharedSubscriber]] = {}
_SUBSCRIBERS_LOCK = threading.Lock()


def _subscriber_for(client: Any) -> SharedSubscriber:
    """The one shared subscriber of ``client`` in this process (stores are rebuilt per settings)."""
    with _SUBSCRIBERS_LOCK:
        known = _SUBSCRIBERS.get(id(client))
        if known is None or known[0] is not client:
            if len(_SUBSCRIBERS) >= 64:  # clients are few; tests build many
                _SUBSCRIBERS.clear()
            known = _SUBSCRIBERS[id(client)] = (client, SharedSubscriber(client))
        return known[1]


_PLACEHOLDER = 987654321987654321
_SPLICE_MAX_LENGTH = 150


def _ttl_arg(ttl: float | None) -> int:
    return 0 if ttl is None else _ms(ttl)


class _SharedWatch(Watch):
    def __init__(self, subscription: Subscription) -> None:
        super().__init__(poll_interval=0.0)
        self.subscription = subscription

    def wait(self, timeout: float) -> str | None:
        return self.subscription.wait(timeout)


def _versions(raws: Sequence[Any]) -> list[int | None]:
    """Counter payloads as ints, None where a counter is missing."""
    return [None if item is None else int(item) for item in raws]


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
