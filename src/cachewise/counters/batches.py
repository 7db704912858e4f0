"""Exactly-once counter flushes on Redis: pending batches in Redis, a batch record in the database.

``Counter.flush`` on Redis (with the cachewise app installed) runs each batch through three
steps, so a flusher killed at any point loses and doubles nothing:

1. **Drain** (one Lua script, at most ``batch_size`` ids): the batch's counts move from the live
   hash into a *pending batch* hash under a fresh batch id, registered in the counter's pending
   set with a lease deadline. Increments arriving afterwards land in fresh fields (the next flush).
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
(only while its flusher still holds the lease; otherwise the recoverer owns it). If the COMMIT
itself fails, its fate is unknown (the database may have committed and lost only the reply):
the batch is looked up by its row, forgotten if the row exists, and otherwise left pending with
its id, for the recovery to look up again (never put back under a new id, which could count it
twice). Live hashes of an earlier Redis run are reconciled first (:mod:`cachewise.counters.rollback`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import Error as DatabaseFailure
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from cachewise.counters.rollback import reconcile
from cachewise.exceptions import ConfigurationError

from .ids import decode_id
from .redis import CLAIM_BATCHES, PendingBatch, RedisBatches, RunChanged

if TYPE_CHECKING:
    from cachewise.store.redis import RedisStore

    from .counter import Apply, Counter

__all__ = ["PendingBatch", "RedisBatches", "flush_durably"]

logger = logging.getLogger("cachewise.counters")

#: Claim rounds per flush (bounded work).
_CLAIM_ROUNDS = 100
#: A CounterBatch row is kept this long after its batch left Redis (seconds), then pruned; rows
#: are pruned at most every _PRUNE_EVERY seconds per counter and process. A Redis snapshot older
#: than PRUNE_AFTER can no longer be reconciled (see cachewise.counters.rollback).
PRUNE_AFTER, _PRUNE_EVERY = 86400.0, 600.0
_last_prune: dict[tuple[str, str], float] = {}  # bounded: one entry per (database, counter name)
_tables_checked: set[str] = set()


class _AppliedElsewhere(Exception):
    """Another flusher committed this batch first (its CounterBatch row exists)."""


@dataclass
class _Flush:
    """One flush: the counter, where its batches go and what it applied."""

    counter: Counter
    batches: RedisBatches
    apply: Apply
    db: str | None  # None: no batch records (the cachewise app is not installed)
    ttl_ms: int
    lease_ms: int
    applied: dict[Any, int]


def flush_durably(
    counter: Counter, store: RedisStore, apply: Apply, ttl_ms: int, *, record: bool = True
) -> dict[Any, int]:
    """``counter.flush(apply)`` with exactly-once application (see the module docstring).

    ``record=False`` (the cachewise app is not installed): no batch records, so a batch whose
    flusher died is applied again after its lease (at least once) and no rollback is detected.
    """
    db = None
    if record:
        from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

        db = router.db_for_write(CounterBatch)
        _check_table(db, CounterBatch._meta.db_table)
    lease_ms = max(1, int(counter.lease * 1000))
    flush = _Flush(counter, RedisBatches(store, counter), apply, db, ttl_ms, lease_ms, {})
    _recover(flush)
    for batch in _drain(flush):
        _apply(flush, batch)
    if db is not None:
        _prune(counter.name, db, flush.batches)
    return flush.applied


def _recover(flush: _Flush) -> None:
    for _ in range(_CLAIM_ROUNDS):
        claimed = flush.batches.claim(flush.lease_ms)
        for batch in claimed:
            if not batch.items or _recorded(flush, batch):
                flush.batches.done(batch.batch_id)  # its flusher died after committing
            else:
                _apply(flush, batch)
        if len(claimed) < CLAIM_BATCHES:
            return


def _recorded(flush: _Flush, batch: PendingBatch) -> bool:
    from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

    if flush.db is None:
        return False
    found = CounterBatch.objects.using(flush.db).filter(counter=flush.counter.name, batch_id=batch.batch_id)
    return bool(found.exists())


def _drain(flush: _Flush) -> Iterator[PendingBatch]:
    """Pending batches of every live hash: earlier runs' (reconciled first), then the current one.

    Bounded: the current run's hash is drained for as many steps as it had ids at the start;
    increments that keep arriving are left for the next flush.
    """
    batches = flush.batches
    current = batches.run()
    for source in sorted(batches.sources() - {current}):
        if flush.db is not None:
            reconcile(batches, flush.counter.name, source, flush.db)
        yield from _steps(flush, source, current=False)
    yield from _steps(
        flush, current, current=True, limit=batches.size(current) // flush.counter.batch_size + 2
    )


def _steps(flush: _Flush, source: str, *, current: bool, limit: int | None = None) -> Iterator[PendingBatch]:
    """Drain steps of one run's hash until it is empty, or ``limit`` steps (the current run, which
    keeps receiving increments), or the run stops being current (a restart meanwhile: the next
    flush reconciles that run)."""
    steps = 0
    while limit is None or steps < limit:
        steps += 1
        try:
            batch = flush.batches.drain_step(
                source, flush.counter.batch_size, flush.lease_ms, flush.ttl_ms, current=current
            )
        except RunChanged:
            return
        if batch is None:
            return
        yield batch


def _apply(flush: _Flush, batch: PendingBatch) -> None:
    """Apply one batch and record it in one transaction; settle it in Redis accordingly."""
    deltas = [(decode_id(member), delta) for member, delta in batch.items if delta != 0]
    if flush.db is None:
        _apply_unrecorded(flush, batch, deltas)
        return
    db = flush.db
    outermost = not connections[db].in_atomic_block
    committing = False
    try:
        with transaction.atomic(using=db):
            for counter_id, delta in deltas:
                flush.apply(counter_id, delta)
            _record(flush.counter, batch, db)
            # After the commit: of the outermost transaction when flush() runs inside one (if
            # that one rolls back, the batch stays pending and is recovered after the lease).
            # robust: a failure here must not reach the restore below (the counts ARE applied);
            # the batch then stays pending and recovery deletes it.
            transaction.on_commit(lambda: flush.batches.done(batch.batch_id), using=db, robust=True)
            committing = outermost  # an exception from here on comes from the COMMIT
    except _AppliedElsewhere:
        flush.batches.done(batch.batch_id)
        return
    except BaseException as exc:
        if committing:
            if not _committed_after_all(flush, batch, exc):
                raise
        else:
            _put_back(flush, batch)
            raise
    for counter_id, delta in deltas:
        flush.applied[counter_id] = flush.applied.get(counter_id, 0) + delta


def _record(counter: Counter, batch: PendingBatch, db: str) -> None:
    from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

    try:
        with transaction.atomic(using=db):
            CounterBatch.objects.using(db).create(
                counter=counter.name,
                batch_id=batch.batch_id,
                applied_at=timezone.now(),
                source=batch.source,
                seq=batch.seq,
                members="\n".join(member for member, _ in batch.items),
            )
    except IntegrityError:
        raise _AppliedElsewhere from None


def _committed_after_all(flush: _Flush, batch: PendingBatch, exc: BaseException) -> bool:
    """The COMMIT failed: look the batch up. True (and forgotten) if it did commit; otherwise it
    stays pending under its id for the recovery (it may still commit: never put it back)."""
    assert flush.db is not None
    name = flush.counter.name
    try:
        connections[flush.db].close()  # the failed commit left it unusable or closed
        found = _recorded(flush, batch)
    except DatabaseFailure:  # the database is still unreachable: the recovery looks again later
        logger.warning(
            "counter %r: batch %s: commit failed (%s); it stays pending", name, batch.batch_id, exc
        )
        return False
    if not found:
        logger.warning(
            "counter %r: batch %s: commit failed (%s); it stays pending", name, batch.batch_id, exc
        )
        return False
    logger.warning(
        "counter %r: batch %s committed, its acknowledgement was lost (%s)", name, batch.batch_id, exc
    )
    flush.batches.done(batch.batch_id)
    return True


def _put_back(flush: _Flush, batch: PendingBatch, members: list[str] | None = None) -> None:
    try:
        flush.batches.restore(batch, flush.ttl_ms, members)
    except Exception:  # Redis down too: the batch stays pending; the next flush recovers it
        logger.exception("could not put back counter batch %s of %r", batch.batch_id, flush.counter)


def _apply_unrecorded(flush: _Flush, batch: PendingBatch, deltas: list[tuple[Any, int]]) -> None:
    """Without batch records: apply id by id; on failure put back the ids not applied yet."""
    for position, (counter_id, delta) in enumerate(deltas):
        try:
            flush.apply(counter_id, delta)
        except BaseException:
            _put_back(flush, batch, [m for m, d in batch.items if d != 0][position:])
            raise
        flush.applied[counter_id] = flush.applied.get(counter_id, 0) + delta
    flush.batches.done(batch.batch_id)


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
    """Delete old CounterBatch rows. A row is needed while its batch is pending in Redis, and to
    reconcile a snapshot rollback younger than PRUNE_AFTER."""
    from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

    now = time.monotonic()
    if now - _last_prune.get((db, name), -_PRUNE_EVERY) < _PRUNE_EVERY:
        return
    _last_prune[(db, name)] = now
    cutoff = timezone.now() - timedelta(seconds=PRUNE_AFTER)
    old = CounterBatch.objects.using(db).filter(counter=name, applied_at__lt=cutoff)
    old.exclude(batch_id__in=batches.pending_ids()).delete()
