"""Counter: atomic increments in the cache, drained losslessly into the database.

::

    views = Counter("article:views")
    views.incr(article_id)                # one round trip, atomic
    views.get_many(ids)                   # pending (not yet flushed) counts, one round trip
    views.flush(lambda pk, delta: Article.objects.filter(pk=pk).update(views=F("views") + delta))

On Redis, a counter's pending counts are one hash (``HINCRBY`` in a Lua call that also names the
server's run, so counts a restored snapshot brings back never mix with new ones; about 60-70
bytes per pending id). ``flush`` drains in bounded steps: one atomic script moves at most
``batch_size`` ids into a *pending batch* in Redis (an increment lands either before the move,
in this flush, or after, in the next one), then the batch is applied in one database
transaction together with a ``CounterBatch`` row, then deleted from Redis. A flusher killed at
any point, or a COMMIT whose reply was lost, leaves the batch pending under its id; the next
flush recovers it once its lease expired and applies it unless its row says it was committed.
So every increment reaches the database exactly once, across concurrent flushes, crashes, lost
acknowledgements and Redis restarts from an older snapshot (:mod:`cachewise.counters.batches`,
:mod:`cachewise.counters.rollback`). ``apply`` must therefore write only to the database the
``CounterBatch`` row goes to (the default one unless a router says otherwise). If ``apply``
raises, the batch is rolled back and put back before the error propagates. Counters refuse a
server whose eviction policy could drop their keys (:mod:`cachewise.counters.guard`). Without the
cachewise app in ``INSTALLED_APPS`` the flush falls back to at-least-once across crashes
(logged as a warning).

On other backends (LocMem, memcached) ``incr`` is ``add`` then ``incr`` and the flush reads each
count and *decrements* it by what it read, which is exact where the backend's ``incr``/``decr``
are atomic (LocMem, memcached; not the database cache). See ``docs/counters.md``.

Ids are ints or strings. ``manage.py cachewise flush-counters`` flushes the counters listed in
``CACHEWISE_COUNTERS`` (dotted paths to Counter instances created with ``apply=``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps

from cachewise.conf import conf
from cachewise.keys import validate_namespace
from cachewise.store.adapter import GenericStore, Store
from cachewise.store.choice import get_store
from cachewise.store.redis import RedisStore
from cachewise.store.scripts import counts

from . import app_check as _app_check  # noqa: F401  (registers cachewise.W011: the app may be missing)
from .batches import flush_durably
from .guard import ensure_kept
from .ids import CounterId, decode_id, encode_id
from .replicas import confirmed

if TYPE_CHECKING:
    from cachewise.store.redis import RedisStore

__all__ = ["Counter", "CounterId"]

logger = logging.getLogger("cachewise.counters")


Apply = Callable[[Any, int], object]  # apply(id, delta); ids are Any so (pk: int, ...) fits
Batch = list[tuple[str, int]]
KeyOf = Callable[[str], str]


class Counter:
    """Counts per id under ``name`` on cache ``alias``; see the module docstring.

    ``ttl``: None (the default and the recommendation): pending counts live until flushed and,
    stored without a TTL, are never evicted under a ``volatile-*`` policy. A number: the counter's
    live hash expires that many seconds after the last flush step (counts not flushed by then
    are lost) and can be evicted under ``volatile-*``, which the counter then refuses.
    ``alias``: the cache holding the counts (default ``CACHEWISE_COUNTERS_ALIAS``, read at use).
    ``apply``: the default ``flush`` target, which ``manage.py cachewise flush-counters`` uses.
    ``replicas``: on a primary with replicas, make ``incr``/``incr_many`` wait until that many
    replicas confirmed the increment (``WAIT replicas replica_timeout``), so a failover to a
    replica loses none of them; raise :class:`~cachewise.exceptions.UnconfirmedWriteError` when
    they did not in time (the increment is on the primary: never retry it). 0: no wait.
    ``lease``: seconds a flusher owns a pending batch; a batch left by a dead flusher is recovered
    by the first flush after its lease expired. Keep it above the time one batch takes to apply.
    """

    def __init__(
        self,
        name: str,
        ttl: float | None = None,
        *,
        alias: str | None = None,
        apply: Apply | None = None,
        batch_size: int = 100,
        lease: float = 60.0,
        replicas: int = 0,
        replica_timeout: float = 0.1,
    ) -> None:
        self.name = validate_namespace(name)
        self.ttl = ttl
        self._alias = alias
        self.apply = apply
        self.batch_size = batch_size
        self.lease = lease
        self.replicas = replicas
        self.replica_timeout = replica_timeout
        self._warned = False
        self._ops_cache: _RedisOps | _GenericOps | None = None

    def __repr__(self) -> str:
        return f"Counter({self.name!r}, ttl={self.ttl!r}, alias={self.alias!r})"

    @property
    def alias(self) -> str:
        """The cache alias of the counts: the one given, else ``CACHEWISE_COUNTERS_ALIAS``."""
        if self._alias is not None:
            return self._alias

        return conf.COUNTERS_ALIAS

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
        member = encode_id(counter_id)
        ops = self._ops()
        if isinstance(ops, _RedisOps):
            return ops.incr(self, member, int(amount))
        return ops.incr(self._key(member), self._index(), member, int(amount), self.ttl)

    def incr_many(self, amounts: Mapping[CounterId, int]) -> dict[CounterId, int]:
        """Apply several increments in one round trip (one atomic script on Redis); return the
        pending counts. For batching hot paths: buffer a request's increments, send them once."""
        members = {counter_id: encode_id(counter_id) for counter_id in amounts}
        ops = self._ops()
        if isinstance(ops, _RedisOps):
            counts = ops.incr_many(self, [(members[cid], int(amount)) for cid, amount in amounts.items()])
        else:
            items = [(self._key(members[cid]), members[cid], int(amount)) for cid, amount in amounts.items()]
            counts = ops.incr_many(self._index(), items, self.ttl)
        return dict(zip(amounts, counts, strict=True))

    def get(self, counter_id: CounterId) -> int:
        """The pending (not yet flushed) count of ``counter_id``, 0 when none."""
        return self.get_many([counter_id])[counter_id]

    def get_many(self, ids: Iterable[CounterId]) -> dict[CounterId, int]:
        """Pending counts of ``ids`` in one round trip (0 for ids with none)."""
        ids = list(ids)
        members = [encode_id(counter_id) for counter_id in ids]
        ops = self._ops()
        if isinstance(ops, _RedisOps):
            return dict(zip(ids, ops.get_many(self, members), strict=True))
        return dict(zip(ids, ops.get_many([self._key(m) for m in members]), strict=True))

    def flush(self, apply: Apply | None = None) -> dict[CounterId, int]:
        """Drain every pending count into ``apply(id, delta)``; return what was applied.

        Safe to run while increments arrive, while other processes flush and across crashes
        (each increment is applied once; on Redis, see :mod:`cachewise.counters.batches`). If
        ``apply`` raises, what was drained but not committed is put back.
        """
        apply = apply or self.apply
        if apply is None:
            raise TypeError(f"{self!r}.flush() needs apply(id, delta): pass one, or create it with apply=")
        ops = self._ops()
        if isinstance(ops, _RedisOps):
            ensure_kept(ops.store, self)
            return flush_durably(self, ops.store, apply, _ms(self.ttl), record=self._durable())
        applied: dict[CounterId, int] = {}
        for batch in ops.drain(self._index(), self._key, self.batch_size):
            self._apply_batch(ops, batch, apply, applied)
        return applied

    def _durable(self) -> bool:
        if apps.is_installed("cachewise"):
            return True
        if not self._warned:
            self._warned = True
            logger.warning(
                "%r: the cachewise app is not in INSTALLED_APPS, so flush() cannot record applied "
                "batches: a batch whose flusher died is applied again (at least once), and a Redis "
                "restored from an older snapshot is not detected. Add 'cachewise' and migrate.",
                self,
            )
        return False

    def _apply_batch(
        self,
        ops: _GenericOps,
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
    """Counter storage on Redis: one hash per counter and server run (scripts: :mod:`.scripts.counts`)."""

    def __init__(self, store: Store) -> None:
        assert isinstance(store, RedisStore)
        self.store: RedisStore = store
        # make_key, not make_and_validate_key: these keys are bounded by construction (a
        # validated name) and this is the hot path. It only reads the prefix, version and key
        # function, so one cache object's serves every thread.
        self._full: Callable[[str], str] = store.cache.make_key
        self._names: dict[str, tuple[str, str]] = {}

    def _keys(self, counter: Counter) -> tuple[str, str]:
        """The live hash prefix (the script appends the server's run) and the set of runs."""
        keys = self._names.get(counter.name)
        if keys is None:
            tag = f"{{{counter.name}}}"
            keys = self._names[counter.name] = (self._full(f"{tag}:~live:"), self._full(f"{tag}:~lives"))
        return keys

    def incr(self, counter: Counter, member: str, amount: int) -> int:
        # The hot path: one EVALSHA through execute_command (the script loaded on NOSCRIPT).
        ensure_kept(self.store, counter)
        live, lives = self._keys(counter)
        args = [amount, _ms(counter.ttl), member]
        if counter.replicas:
            return int(confirmed(self.store, counter, counts.COUNTER_INCR, [live, lives], args))
        return int(self.store.script("incr", counts.COUNTER_INCR, [live, lives], args))

    def incr_many(self, counter: Counter, items: list[tuple[str, int]]) -> list[int]:
        if not items:
            return []
        ensure_kept(self.store, counter)
        args: list[Any] = [_ms(counter.ttl)]
        for member, amount in items:
            args += [member, amount]
        keys = list(self._keys(counter))
        if counter.replicas:
            return [int(n) for n in confirmed(self.store, counter, counts.COUNTER_INCR_MANY, keys, args)]
        replies = self.store.script("incr", counts.COUNTER_INCR_MANY, keys, args)
        return [int(n) for n in replies]

    def get_many(self, counter: Counter, members: list[str]) -> list[int]:
        if not members:
            return []
        replies = self.store.script("get_many", counts.COUNTER_GET_MANY, list(self._keys(counter)), members)
        return [int(n) for n in replies]


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
