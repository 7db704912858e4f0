"""Recovery after an outage: invalidations the cache missed, and a server that went back in time.

Two faults leave committed writes invisible to cached reads after the cache answers again:

*A lost invalidation.* A write commits while Redis cannot be reached, so its version bump fails.
The writer's own memory is not enough to retry it: a management command or a task exits, and
other processes never learn of it. So the bump is written to the database
(:class:`~cachewise.models.UndeliveredInvalidation`): inside the write's own transaction when
the cache is already known to be down, else right after the failed bump. Every process polls
that table at most once per ``CACHEWISE_RECOVERY_INTERVAL`` seconds (default 1), from its
cached reads; the first one that reaches the cache bumps the recorded counters there, then
deletes the rows. The poll is one indexed ``SELECT`` on a DB-API cursor (not in a view's query
count), under a savepoint of its own inside a transaction so it can never break it.

*A rollback.* A Redis restarted from an older RDB/AOF file, or a replica promoted before it had
every write, comes back with counters *and* entries from before the last writes: the stamps
match again and old rows are served. No process may remember what the server knew, so the
server is asked: a key holds the ``run_id`` of the server process that last checked it. Every
process runs a one-round-trip script once per interval; when the key holds another ``run_id``
(a restart: the data may be older than the last writes), the script moves
the global ORM epoch to ``max(epoch + 1, now in microseconds)`` (every stamp includes it, and it
cannot return to a value given out before) and stores the new ``run_id``. One process does it
per restart, atomically. A missing key is only set: an empty server holds no old entries, a
snapshot taken after the first check holds the key, and an evicted key costs nothing then (a
rollback in the same interval as the eviction of this hot key is not covered).

The bound, for every process that reads through the ORM cache: committed data is served at the
latest ``CACHEWISE_RECOVERY_INTERVAL`` after the later of the commit and the moment the cache
answers again (plus the time of one read). A process that saw the outage itself checks at its
next read after it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.core.cache import InvalidCacheBackendError
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError, connections, router, transaction
from django.db import Error as DatabaseFailure

from .conf import conf
from .exceptions import CacheServerError, CacheUnavailableError
from .store.choice import get_store

if TYPE_CHECKING:
    from .models import UndeliveredInvalidation

__all__ = ["check_now", "on_restart_check", "on_undelivered", "record", "tick"]

#: How a kind of record is applied: ``apply(alias, keys)``, raising the cache's errors.
Applier = Callable[[str, list[str], "float | None"], None]

logger = logging.getLogger("cachewise.recovery")

_BATCH = 100


class _State:
    """This process's schedule (``lock``: one thread checks at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_due = 0.0
        self.logged_at = 0.0


_state = _State()

#: Record kinds and how to apply them: "namespace" here; the ORM adds its own (:mod:`cachewise.orm`
#: sits above this module, so it registers rather than being imported).
_appliers: dict[str, Applier] = {}
#: Checks run first at every due tick, each True when done (False: try again at the next read).
_restart_checks: list[Callable[[], bool]] = []


def on_undelivered(kind: str, apply: Applier) -> None:
    """Apply records of ``kind`` with ``apply(alias, keys, ttl)`` (idempotent per kind)."""
    _appliers[kind] = apply


def on_restart_check(check: Callable[[], bool]) -> None:
    """Run ``check()`` at every due :func:`tick`, before the records (a server that went back in time)."""
    if check not in _restart_checks:
        _restart_checks.append(check)


def _undelivered_model() -> type[UndeliveredInvalidation]:
    # Through the registry, not an import: this module is imported before models may be.
    return cast("type[UndeliveredInvalidation]", apps.get_model("cachewise", "UndeliveredInvalidation"))


if hasattr(os, "register_at_fork"):
    # A lock held by a parent thread at fork time would never be released: start afresh.
    os.register_at_fork(after_in_child=lambda: globals().__setitem__("_state", _State()))


def check_now() -> None:
    """Make the next :func:`tick` run at once (called when a cache call failed)."""
    _state.next_due = 0.0


def tick(*, force: bool = False) -> bool:
    """Run the recovery checks if due (at most once per interval per process); True if all is done.

    Cheap when not due (one clock read). One thread checks at a time; the others go on.
    """
    state = _state
    now = time.monotonic()
    if not force and now < state.next_due:
        return True
    if not state.lock.acquire(blocking=False):
        return True
    try:
        state.next_due = now + conf.RECOVERY_INTERVAL
        try:
            done = all(check() for check in list(_restart_checks)) and _apply_recorded(state)
        except (DatabaseFailure, LookupError) as exc:  # the database down, the app not migrated
            # or not installed: a check must never fail the read it runs before
            _database_unavailable(state, exc)
            return True
        if not done:
            state.next_due = 0.0  # the cache did not answer: try again at the next read
        return done
    finally:
        state.lock.release()


# The durable record ---------------------------------------------------------------------------------
def record(
    alias: str, kind: str, keys: Iterable[str], *, ttl: float | None = None, using: str | None = None
) -> bool:
    """Write an invalidation the cache did not get to the database; True when written.

    ``using`` is the connection to write with (the write's own, inside its transaction); by
    default the router's database for the record, in autocommit. A failure is logged, never
    raised: the write it follows has committed already.
    """
    try:
        model = _undelivered_model()
        db = router.db_for_write(model)
        # atomic(): a savepoint inside the caller's transaction, so a failure cannot break it.
        with transaction.atomic(using=db):
            # bulk_create sends no post_save: the ORM receivers must not invalidate this write.
            model.objects.using(db).bulk_create(
                [model(alias=alias, kind=kind, keys=json.dumps(sorted(set(keys))), ttl=ttl)]
            )
    except (DatabaseError, LookupError) as exc:  # not migrated, the database down, the app not installed
        logger.error(
            "cachewise could not record an undelivered invalidation of cache %r in the database (%s): "
            "other processes may serve stale data until the entries expire; is 'cachewise' in "
            "INSTALLED_APPS and migrated?",
            alias,
            exc,
        )
        return False
    check_now()
    return True


def _raw_cursor(db: str) -> tuple[Any, bool]:
    """A DB-API cursor on this thread's connection to ``db`` (not logged, so a poll never shows in
    a view's query count), and whether the poll opened that connection; None when the connection
    cannot be used now."""
    connection = connections[db]
    if connection.needs_rollback:  # the caller's transaction is already broken: leave it alone
        return None, False
    opened = connection.connection is None
    connection.ensure_connection()
    return connection.connection.cursor(), opened


def _apply_recorded(state: _State) -> bool:
    """Apply what other processes recorded; True when nothing is left that this one could apply.

    Runs inside the caller's transaction when there is one, under a savepoint of its own, so a
    failure never breaks it; a snapshot that predates a record delays it to the next poll after
    that transaction.
    """
    model = _undelivered_model()
    db = router.db_for_write(model)
    connection = connections[db]
    table = connection.ops.quote_name(model._meta.db_table)
    nested = connection.in_atomic_block
    # The driver module's base error (PEP 249), e.g. sqlite3.Error or psycopg.Error: a raw
    # DB-API cursor raises these unwrapped.
    driver_error: type[Exception] = connection.Database.Error  # type: ignore[attr-defined]
    try:
        cursor, opened = _raw_cursor(db)
        if cursor is None:
            return True
    except (DatabaseFailure, driver_error, SynchronousOnlyOperation, RuntimeError) as exc:
        # The database cannot be used here and now: down (Django's or the driver's own errors,
        # the raw DB-API cursor), an event loop's thread (SynchronousOnlyOperation: the next
        # sync read polls), or a test without database access (pytest-django's RuntimeError).
        # Never fail the read this runs before.
        _database_unavailable(state, exc)
        return True
    try:
        return _poll(cursor, table, nested, state, driver_error)
    finally:
        cursor.close()
        if opened and not connection.in_atomic_block:
            # This thread had no connection (a request served from the cache, a worker thread):
            # do not leave one open behind it.
            connection.close()


def _poll(cursor: Any, table: str, nested: bool, state: _State, driver_error: type[Exception]) -> bool:
    if nested:
        cursor.execute("SAVEPOINT cachewise_recovery")
    try:
        cursor.execute(f'SELECT id, alias, kind, "keys", ttl FROM {table} ORDER BY id LIMIT {_BATCH}')
        rows = cursor.fetchall()
        applied = [int(row[0]) for row in rows if _apply(row[1], row[2], json.loads(row[3]), row[4])]
        if applied:
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(map(str, applied))})")
            # One line per poll, not per record: an outage under load leaves hundreds of them.
            logger.warning(
                "cachewise applied %d invalidation(s) recorded during an outage (%s)",
                len(applied),
                ", ".join(sorted({f"{row[1]}/{row[2]}" for row in rows if int(row[0]) in applied})),
            )
    except driver_error as exc:  # the raw cursor raises its driver's own errors; never fail the read
        if nested:
            cursor.execute("ROLLBACK TO SAVEPOINT cachewise_recovery")
        _database_unavailable(state, exc)
        return True
    if nested:
        cursor.execute("RELEASE SAVEPOINT cachewise_recovery")
    return len(applied) == len(rows)


def _apply(alias: str, kind: str, keys: list[str], ttl: float | None) -> bool:
    apply = _appliers.get(kind)
    if apply is None:  # a kind whose package this process has not loaded: left for one that has
        return False
    try:
        apply(alias, keys, ttl)
    except (CacheUnavailableError, CacheServerError, InvalidCacheBackendError):
        return False  # kept for the next poll (an alias gone from CACHES: until it is back)
    return True


def _bump_namespaces(alias: str, keys: list[str], ttl: float | None) -> None:
    store = get_store(alias)
    for key in keys:
        store.bump(key, ttl)


on_undelivered("namespace", _bump_namespaces)


def _database_unavailable(state: _State, exc: Exception) -> None:
    """Log (at most once a minute) that a check could not run; the next interval tries again."""
    now = time.monotonic()
    if now - state.logged_at >= 60.0:
        state.logged_at = now
        logger.warning("cachewise could not run its recovery checks (%s)", exc)
