"""Exactly-once counter flushes on Redis: pending batches in Redis, a batch record in the database.

``Counter.flush`` on Redis (with the cachewise app installed) runs each batch through three
steps, so a flusher killed at any point loses and doubles nothing:

1. **Drain** (one Lua script): the batch's counts move from the live keys into a *pending batch*
   hash under a fresh batch id, registered in the counter's pending set with a lease deadline.
   Increments arriving afterwards create fresh live keys (they belong to the next flush).
2. **Apply** in one database transaction: ``apply(id, delta)`` for each count, then a
   :class:`~cachewise.models.CounterBatch` row ``(counter, batch_id)``. The row commits exactly
   when the counts do (a killed flusher's open transaction is rolled back by the database).
3. **Forget** (after the commit): delete the pending batch.

Every flush first *recovers* batches whose lease expired (their flusher died, or is stuck): it
takes over the lease atomically (two live flushers never recover the same batch at once), then
deletes the batch if its row exists (the flusher died after committing) or applies it (died
before). The row's unique constraint is the last guard: if a flusher whose lease was taken over
still commits, the second commit of the same batch fails and is rolled back.

If ``apply`` raises, the transaction rolls back and the batch is put back into the live counts
(only while its flusher still holds the lease; otherwise the recoverer owns it).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .counters import Apply, Counter
    from .redis_store import RedisStore

__all__ = ["flush_durably"]

logger = logging.getLogger("cachewise.counters")

#: Pending batches recovered per claim round, and claim rounds per flush (bounded work).
_CLAIM_BATCHES, _CLAIM_ROUNDS = 10, 100
#: A CounterBatch row is kept this long after its batch left Redis (seconds), then pruned; rows
#: are pruned at most every _PRUNE_EVERY seconds per counter and process.
PRUNE_AFTER, _PRUNE_EVERY = 3600.0, 600.0
_last_prune: dict[tuple[str, str], float] = {}  # bounded: one entry per (database, counter name)
_tables_checked: set[str] = set()


@dataclass(frozen=True)
class PendingBatch:
    """A batch drained into Redis, held by this flusher until ``deadline`` (server ms)."""

    batch_id: str
    deadline: int
    items: list[tuple[str, int]]  # (member, count)


class _AppliedElsewhere(Exception):
    """Another flusher committed this batch first (its CounterBatch row exists)."""


class RedisBatches:
    """The Redis side of a counter's pending batches (scripts in :mod:`cachewise.redis_scripts`)."""

    def __init__(self, store: RedisStore, counter: Counter) -> None:
        self.store = store
        full: Callable[[str], str] = store.cache.make_key
        self._full = full
        self._counter = counter
        self.index = full(counter._index())
        self.pending = full(f"{{{counter.name}}}:~pending")

    def _key(self, member: str) -> str:
        return self._full(self._counter._key(member))

    def _batch(self, batch_id: str) -> str:
        return self._full(f"{{{self._counter.name}}}:~batch:{batch_id}")

    def drain(self, batch_size: int, lease_ms: int) -> Iterator[PendingBatch]:
        """Move the live counts into pending batches of at most ``batch_size`` ids, one by one."""
        client, index = self.store.client, self.index
        # Bounded: increments that keep arriving are left for the next flush.
        rounds = int(self.store.call("get", lambda: client.scard(index))) // batch_size + 2
        for _ in range(rounds):
            members = [
                _text(m) for m in self.store.call("get", lambda: client.srandmember(index, batch_size))
            ]
            if not members:
                return
            batch_id = uuid.uuid4().hex
            keys = [index, self.pending, self._batch(batch_id)] + [self._key(m) for m in members]
            out = self.store.script("incr", "counter_drain_batch", keys, [batch_id, lease_ms, *members])
            items = [(m, int(c)) for m, c in zip(members, out[1:], strict=True) if int(c) != 0]
            if items:
                yield PendingBatch(batch_id, int(out[0]), items)

    def claim(self, lease_ms: int) -> list[PendingBatch]:
        """Take over the lease of some batches whose lease expired; return them with their counts."""
        deadline, ids = self.store.script(
            "incr", "counter_batch_claim", [self.pending], [lease_ms, _CLAIM_BATCHES]
        )
        client, claimed = self.store.client, []
        for batch_id in map(_text, ids):
            key = self._batch(batch_id)
            counts = self.store.call("get", lambda key=key: client.hgetall(key))  # type: ignore[misc]
            items = sorted((_text(m), int(c)) for m, c in counts.items())
            claimed.append(PendingBatch(batch_id, int(deadline), items))
        return claimed

    def done(self, batch_id: str) -> None:
        """Forget a batch whose counts are committed."""
        self.store.script("incr", "counter_batch_done", [self.pending, self._batch(batch_id)], [batch_id])

    def restore(self, batch: PendingBatch, ttl_ms: int) -> bool:
        """Put a batch back into the live counts if this flusher still holds its lease."""
        members = [m for m, _ in batch.items]
        keys = [self.index, self.pending, self._batch(batch.batch_id)] + [self._key(m) for m in members]
        args: list[Any] = [batch.batch_id, batch.deadline, ttl_ms, *members]
        return bool(self.store.script("incr", "counter_batch_restore", keys, args))

    def pending_ids(self) -> set[str]:
        client, pending = self.store.client, self.pending
        return {_text(m) for m in self.store.call("get", lambda: client.zrange(pending, 0, -1))}


def flush_durably(counter: Counter, store: RedisStore, apply: Apply, ttl_ms: int) -> dict[Any, int]:
    """``counter.flush(apply)`` with exactly-once application (see the module docstring)."""
    from .models import CounterBatch

    db = router.db_for_write(CounterBatch)
    _check_table(db, CounterBatch._meta.db_table)
    batches = RedisBatches(store, counter)
    lease_ms = max(1, int(counter.lease * 1000))
    applied: dict[Any, int] = {}
    for _ in range(_CLAIM_ROUNDS):
        claimed = batches.claim(lease_ms)
        for batch in claimed:
            recorded = CounterBatch.objects.using(db).filter(counter=counter.name, batch_id=batch.batch_id)
            if not batch.items or recorded.exists():
                batches.done(batch.batch_id)  # its flusher died after committing
            else:
                _apply(counter, batches, batch, apply, db, ttl_ms, applied)
        if len(claimed) < _CLAIM_BATCHES:
            break
    for batch in batches.drain(counter.batch_size, lease_ms):
        _apply(counter, batches, batch, apply, db, ttl_ms, applied)
    _prune(counter.name, db, batches)
    return applied


def _apply(
    counter: Counter,
    batches: RedisBatches,
    batch: PendingBatch,
    apply: Apply,
    db: str,
    ttl_ms: int,
    applied: dict[Any, int],
) -> None:
    from .counters import decode_id
    from .models import CounterBatch

    deltas = [(decode_id(member), delta) for member, delta in batch.items]
    try:
        with transaction.atomic(using=db):
            for counter_id, delta in deltas:
                apply(counter_id, delta)
            try:
                with transaction.atomic(using=db):
                    CounterBatch.objects.using(db).create(
                        counter=counter.name, batch_id=batch.batch_id, applied_at=timezone.now()
                    )
            except IntegrityError:
                raise _AppliedElsewhere from None
            # After the commit: of the outermost transaction when flush() runs inside one (if
            # that one rolls back, the batch stays pending and is recovered after the lease).
            # robust: a failure here must not reach the restore below (the counts ARE applied);
            # the batch then stays pending and recovery deletes it.
            transaction.on_commit(lambda: batches.done(batch.batch_id), using=db, robust=True)
    except _AppliedElsewhere:
        batches.done(batch.batch_id)
        return
    except BaseException:
        try:
            batches.restore(batch, ttl_ms)
        except Exception:  # Redis down too: the batch stays pending; the next flush recovers it
            logger.exception("could not put back counter batch %s of %r", batch.batch_id, counter)
        raise
    for counter_id, delta in deltas:
        applied[counter_id] = applied.get(counter_id, 0) + delta


def _check_table(db: str, table: str) -> None:
    if db in _tables_checked:
        return
    connection = connections[db]
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    if table not in tables:
        raise ConfigurationError(
            f"Counter.flush records applied batches in the {table!r} table, missing from database "
            f"{db!r}: run `manage.py migrate cachewise`"
        )
    _tables_checked.add(db)


def _prune(name: str, db: str, batches: RedisBatches) -> None:
    """Delete old CounterBatch rows. A row is needed only while its batch is pending in Redis;
    the age margin covers a batch committed after ``pending_ids`` was read."""
    from .models import CounterBatch

    now = time.monotonic()
    if now - _last_prune.get((db, name), -_PRUNE_EVERY) < _PRUNE_EVERY:
        return
    _last_prune[(db, name)] = now
    cutoff = timezone.now() - timedelta(seconds=PRUNE_AFTER)
    old = CounterBatch.objects.using(db).filter(counter=name, applied_at__lt=cutoff)
    old.exclude(batch_id__in=batches.pending_ids()).delete()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
