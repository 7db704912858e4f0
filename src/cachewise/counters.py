"""Counter: atomic increments in the cache, drained losslessly into the database.

::

    views = Counter("article:views", ttl=86400)
    views.incr(article_id)                # one round trip, atomic, sets the TTL on first increment
    views.get_many(ids)                   # pending (not yet flushed) counts, one round trip
    views.flush(lambda pk, delta: Article.objects.filter(pk=pk).update(views=F("views") + delta))

On Redis, ``incr`` is one Lua call (``INCRBY``; on the increment that creates the key, ``PEXPIRE``
and adding the id to the counter's index set). ``flush`` drains in batches: one call picks ids
from the index, one atomic script moves their counts into a *pending batch* in Redis (an
increment lands either before the move, in this flush, or after, in the next one), then the
batch is applied in one database transaction together with a ``CounterBatch`` row, then deleted
from Redis. A flusher killed at any point leaves the batch pending; the next flush (any process)
recovers it once its lease expired and applies it unless its row says it was committed. So every
increment reaches the database exactly once, across concurrent flushes and crashes
(:mod:`cachewise.counter_batches`). ``apply`` must therefore write only to the database the
``CounterBatch`` row goes to (the default one unless a router says otherwise). If ``apply``
raises, the batch is rolled back and put back before the error propagates. Flush more often than
``ttl``, or counts expire unflushed. Without the cachewise app in ``INSTALLED_APPS`` the flush
falls back to at-most-once across crashes (logged as a warning).

On other backends (LocMem, memcached) ``incr`` is ``add`` then ``incr`` and the flush reads each
count and *decrements* it by what it read, which is exact where the backend's ``incr``/``decr``
are atomic (LocMem, memcached; not the database cache). See ``docs/counters.md``.

Ids are ints or strings. ``manage.py cachewise flush-counters`` flushes the counters listed in
``CACHEWISE_COUNTERS`` (dotted paths to Counter instances created with ``apply=``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from redis.exceptions import NoScriptError

from .keys import encode_part, validate_namespace
from .store import GenericStore, Store, get_store

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = ["Counter", "decode_id"]

logger = logging.getLogger("cachewise.counters")

CounterId = int | str
Apply = Callable[[Any, int], Any]
Batch = list[tuple[str, int]]
KeyOf = Callable[[str], str]

_INT = re.compile(r"-?\d+\Z")
_MAX_ID_LENGTH = 120


def _encode_id(counter_id: CounterId) -> str:
    if not isinstance(counter_id, (int, str)) or isinstance(counter_id, bool):
        raise TypeError(f"counter ids are int or str, got {type(counter_id).__name__} {counter_id!r:.40}")
    member = encode_part(counter_id)
    if len(member) > _MAX_ID_LENGTH:
        raise ValueError(f"counter id {counter_id!r:.40} is too long: keep ids under 100 characters")
    return member


def decode_id(member: str | bytes) -> CounterId:
    """The id an index member stands for (the inverse of make_key's int/str encoding)."""
    text = member.decode() if isinstance(member, bytes) else member
    if text.startswith("'"):
        return unquote(text[1:])
    return int(text) if _INT.match(text) else text


class Counter:
    """Counts per id under ``name`` on cache ``alias``; see the module docstring.

    ``ttl``: seconds a count lives after its first increment (None: until flushed).
    ``apply``: the default ``flush`` target, which ``manage.py cachewise flush-counters`` uses.
    ``lease``: seconds a flusher owns a pending batch; a batch left by a dead flusher is recovered
    by the first flush after its lease expired. Keep it above the time one batch takes to apply.
    """

    def __init__(
        self,
        name: str,
        ttl: float | None = None,
        *,
        alias: str = "default",
        apply: Apply | None = None,
        batch_size: int = 500,
        lease: float = 60.0,
    ) -> None:
        self.name = validate_namespace(name)
        self.ttl = ttl
        self.alias = alias
        self.apply = apply
        self.batch_size = batch_size
        self.lease = lease
        self._warned = False
        self._ops_cache: _RedisOps | _GenericOps | None = None

    def __repr__(self) -> str:
        return f"Counter({self.name!r}, ttl={self.ttl!r}, alias={self.alias!r})"

    # Keys: "{name}" is a Redis Cluster hash tag, so a counter's keys and index share a slot.
    def _key(self, member: str) -> str:
        return f"{{{self.name}}}:{member}"

    def _index(self) -> str:
        return f"{{{self.name}}}:~ids"

    def _ops(self) -> _RedisOps | _GenericOps:
        store = get_store(self.alias)
        ops = self._ops_cache
        if ops is None or ops.store is not store:  # first use, or CACHES changed
            ops = _GenericOps(store) if isinstance(store, GenericStore) else _RedisOps(store)
            self._ops_cache = ops
        return ops

    def incr(self, counter_id: CounterId, amount: int = 1) -> int:
        """Add ``amount`` to ``counter_id``'s count; return the pending count. Raises when the
        cache is down (a faked increment is a lost one)."""
        member = _encode_id(counter_id)
        return self._ops().incr(self._key(member), self._index(), member, int(amount), self.ttl)

    def incr_many(self, amounts: Mapping[CounterId, int]) -> dict[CounterId, int]:
        """Apply several increments in one round trip (one atomic script on Redis); return the
        pending counts. For batching hot paths: buffer a request's increments, send them once."""
        members = {counter_id: _encode_id(counter_id) for counter_id in amounts}
        items = [(self._key(members[cid]), members[cid], int(amount)) for cid, amount in amounts.items()]
        counts = self._ops().incr_many(self._index(), items, self.ttl)
        return dict(zip(amounts, counts, strict=True))

    def get(self, counter_id: CounterId) -> int:
        """The pending (not yet flushed) count of ``counter_id``, 0 when none."""
        return self.get_many([counter_id])[counter_id]

    def get_many(self, ids: Iterable[CounterId]) -> dict[CounterId, int]:
        """Pending counts of ``ids`` in one round trip (0 for ids with none)."""
        ids = list(ids)
        keys = [self._key(_encode_id(counter_id)) for counter_id in ids]
        return dict(zip(ids, self._ops().get_many(keys), strict=True))

    def flush(self, apply: Apply | None = None) -> dict[CounterId, int]:
        """Drain every pending count into ``apply(id, delta)``; return what was applied.

        Safe to run while increments arrive, while other processes flush and across crashes
        (each increment is applied once; on Redis, see :mod:`cachewise.counter_batches`). If
        ``apply`` raises, what was drained but not committed is put back.
        """
        apply = apply or self.apply
        if apply is None:
            raise TypeError(f"{self!r}.flush() needs apply(id, delta): pass one, or create it with apply=")
        ops = self._ops()
        if isinstance(ops, _RedisOps) and self._durable():
            from .counter_batches import flush_durably

            return flush_durably(self, ops.store, apply, _ms(self.ttl))
        applied: dict[CounterId, int] = {}
        for batch in ops.drain(self._index(), self._key, self.batch_size):
            self._apply_batch(ops, batch, apply, applied)
        return applied

    def _durable(self) -> bool:
        from django.apps import apps

        if apps.is_installed("cachewise"):
            return True
        if not self._warned:
            self._warned = True
            logger.warning(
                "%r: the cachewise app is not in INSTALLED_APPS, so flush() cannot record applied "
                "batches: a flusher killed mid-batch loses it. Add 'cachewise' and migrate.",
                self,
            )
        return False

    def _apply_batch(
        self,
        ops: _RedisOps | _GenericOps,
        batch: list[tuple[str, int]],
        apply: Apply,
        applied: dict[Any, int],
    ) -> None:
        for position, (member, delta) in enumerate(batch):
            counter_id = decode_id(member)
            try:
                apply(counter_id, delta)
            except BaseException:
                rest = batch[position:]
                ops.restore(self._index(), [(self._key(m), m, d) for m, d in rest], self.ttl)
                raise
            applied[counter_id] = applied.get(counter_id, 0) + delta


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(1, int(seconds * 1000))


class _RedisOps:
    """Counter storage on Redis: the scripts of :mod:`cachewise.redis_scripts`."""

    def __init__(self, store: Store) -> None:
        from .redis_store import RedisStore

        assert isinstance(store, RedisStore)
        self.store: RedisStore = store
        # make_key, not make_and_validate_key: these keys are bounded by construction (a
        # validated name, an id of at most 120 characters) and this is the hot path. It only
        # reads the prefix, version and key function, so one cache object's serves every thread.
        self._full: Callable[[str], str] = store.cache.make_key
        self._indexes: dict[str, str] = {}
        self._incr = store._scripts["counter_incr"]

    def _full_index(self, index: str) -> str:
        full = self._indexes.get(index)
        if full is None:
            full = self._indexes[index] = self._full(index)
        return full

    def incr(self, key: str, index: str, member: str, amount: int, ttl: float | None) -> int:
        # The hot path: EVALSHA sent straight through execute_command (redis-py's Script object
        # adds a quarter of the client-side cost of a call), the script loaded on NOSCRIPT.
        command = (
            "EVALSHA",
            self._incr.sha,
            2,
            self._full(key),
            self._full_index(index),
            amount,
            _ms(ttl),
            member,
        )
        return int(self.store.call("incr", lambda: self._evalsha(command)))

    def _evalsha(self, command: tuple[Any, ...]) -> Any:
        client = self.store.client
        try:
            return client.execute_command(*command)
        except NoScriptError:  # a restarted or flushed server: load it (on every primary) and retry
            client.script_load(self._incr.script)
            return client.execute_command(*command)

    def incr_many(self, index: str, items: list[tuple[str, str, int]], ttl: float | None) -> list[int]:
        if not items:
            return []
        keys = [self._full(index)] + [self._full(key) for key, _, _ in items]
        args: list[Any] = [_ms(ttl)]
        for _, member, amount in items:
            args += [member, amount]
        return [int(n) for n in self.store.script("incr", "counter_incr_many", keys, args)]

    def get_many(self, keys: list[str]) -> list[int]:
        if not keys:
            return []
        full = [self._full(key) for key in keys]
        client = self.store.client
        values = self.store.call("get_many", lambda: client.mget(full))
        return [int(value) if value is not None else 0 for value in values]

    def drain(
        self, index: str, key_of: Callable[[str], str], batch_size: int
    ) -> Iterable[list[tuple[str, int]]]:
        full_index, client = self._full(index), self.store.client
        # Bounded: increments that keep arriving are left for the next flush.
        rounds = int(self.store.call("get", lambda: client.scard(full_index))) // batch_size + 2
        for _ in range(rounds):
            members = [
                m.decode() if isinstance(m, bytes) else str(m)
                for m in self.store.call("get", lambda: client.srandmember(full_index, batch_size))
            ]
            if not members:
                return
            keys = [full_index] + [self._full(key_of(member)) for member in members]
            counts = self.store.script("incr", "counter_drain", keys, members)
            yield [(m, int(c)) for m, c in zip(members, counts, strict=True) if int(c) != 0]

    def restore(self, index: str, items: list[tuple[str, str, int]], ttl: float | None) -> None:
        if not items:
            return
        keys = [self._full(index)] + [self._full(key) for key, _, _ in items]
        args: list[Any] = [_ms(ttl)]
        for _, member, delta in items:
            args += [member, delta]
        self.store.script("incr", "counter_restore", keys, args)


class _GenericOps:
    """Counter storage on any BaseCache: add/incr, an index set guarded by an add-based lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def cache(self) -> Any:
        return self.store.cache  # Django keeps one cache object per thread

    def incr(self, key: str, index: str, member: str, amount: int, ttl: float | None) -> int:
        for _ in range(3):
            if self.cache.add(key, amount, timeout=ttl):
                self._update_index(index, lambda members: members | {member})
                return amount
            try:
                return int(self.cache.incr(key, amount))
            except ValueError:  # expired between add() and incr(): create it again
                continue
        raise RuntimeError(f"counter key {key!r} kept expiring while being incremented")

    def incr_many(self, index: str, items: list[tuple[str, str, int]], ttl: float | None) -> list[int]:
        return [self.incr(key, index, member, amount, ttl) for key, member, amount in items]

    def get_many(self, keys: list[str]) -> list[int]:
        found = self.cache.get_many(keys)
        return [int(found.get(key, 0)) for key in keys]

    def _update_index(self, index: str, change: Callable[[set[str]], set[str]]) -> None:
        """Read-modify-write the index set under its lock (the generic cache has no sets)."""
        deadline = time.monotonic() + 5.0
        token = self.store.acquire(index, 5.0)
        while token is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock the counter index {index!r} within 5 s")
            time.sleep(0.002)
            token = self.store.acquire(index, 5.0)
        try:
            self.cache.set(index, change(set(self.cache.get(index) or ())), timeout=None)
        finally:
            self.store.release(index, token)

    def drain(
        self, index: str, key_of: Callable[[str], str], batch_size: int
    ) -> Iterable[list[tuple[str, int]]]:
        members = sorted(self.cache.get(index) or ())
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            found = self.cache.get_many([key_of(m) for m in chunk])
            batch: list[tuple[str, int]] = []
            gone: set[str] = set()
            for member in chunk:
                count = found.get(key_of(member))
                if count is None:
                    gone.add(member)
                elif int(count) != 0:
                    # decr by what was read: increments since the read stay for the next flush.
                    self.cache.decr(key_of(member), int(count))
                    batch.append((member, int(count)))
            if gone:
                self._prune(index, key_of, gone)
            yield batch

    def _prune(self, index: str, key_of: Callable[[str], str], gone: set[str]) -> None:
        def drop(members: set[str]) -> set[str]:
            # Re-check under the index lock: an increment may have re-created a key meanwhile.
            return members - {m for m in gone if self.cache.get(key_of(m)) is None}

        self._update_index(index, drop)

    def restore(self, index: str, items: list[tuple[str, str, int]], ttl: float | None) -> None:
        for key, member, delta in items:
            self.incr(key, index, member, delta, ttl)
