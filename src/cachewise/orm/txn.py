"""Transaction state: invalidations held until commit, and when the cache may be read or filled.

Invalidations found inside a transaction are collected in one :class:`PendingInvalidation` per
connection, registered once with ``on_commit``: it runs after the *outermost* transaction commits
(one round trip for every counter the transaction touched) and is dropped on rollback. Django
already gives exactly that life cycle to ``on_commit`` callbacks, including savepoints: rolling
back a savepoint discards the callbacks registered inside it. So "this transaction has written"
is simply "our pending callback is still registered on the connection", and nothing needs a
rollback hook.

Atomic blocks opened by Django's ``TestCase`` (and pytest-django's ``django_db``) are not
counted as user transactions, so tests see the same behaviour as autocommit code.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction

__all__ = ["PendingInvalidation", "bypass_reason", "fill_allowed", "has_written", "schedule"]

Deliver = Callable[["PendingInvalidation"], None]


class PendingInvalidation:
    """Counters to bump once the outermost transaction commits, with why and for which models."""

    def __init__(self, deliver: Deliver) -> None:
        self.counter_keys: dict[str, None] = {}  # ordered set
        self.reasons: dict[str, str] = {}  # model label -> first reason seen
        self.done = False
        self._deliver = deliver

    def add(self, counter_keys: Iterable[str], labels: Iterable[str], reason: str) -> None:
        """Merge one write's counters into the batch."""
        self.counter_keys.update(dict.fromkeys(counter_keys))
        for label in labels:
            self.reasons.setdefault(label, reason)

    def __call__(self) -> None:
        self.done = True
        self._deliver(self)


_pending: weakref.WeakKeyDictionary[Any, PendingInvalidation] = weakref.WeakKeyDictionary()


def _registered(connection: Any, batch: PendingInvalidation) -> bool:
    if batch.done:
        return False
    return any(func is batch for _, func, _ in connection.run_on_commit)


def _in_user_transaction(connection: Any) -> bool:
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def schedule(
    using: str, counter_keys: Iterable[str], labels: Iterable[str], reason: str, deliver: Deliver
) -> None:
    """Bump ``counter_keys`` after the current transaction on ``using`` commits (now if none).

    Outside an atomic block (autocommit, or manual transaction management where no commit hook
    exists) the bump happens immediately: the write is already visible to other connections.
    """
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        batch = PendingInvalidation(deliver)
        batch.add(counter_keys, labels, reason)
        batch()
        return
    current = _pending.get(connection)
    if current is None or not _registered(connection, current):
        # First write of this transaction, or the previous batch was delivered or discarded
        # with a rolled-back savepoint: start a new one and register it once.
        current = PendingInvalidation(deliver)
        _pending[connection] = current
        connection.on_commit(current)
    current.add(counter_keys, labels, reason)


def has_written(using: str) -> bool:
    """True inside a transaction on ``using`` that holds a write cachewise saw, not yet committed."""
    if not _pending:  # no transaction of any thread holds a write (the common case of a read)
        return False
    connection = transaction.get_connection(using)
    batch = _pending.get(connection)
    if batch is None:
        return False
    if connection.in_atomic_block and _registered(connection, batch):
        return True
    _pending.pop(connection, None)  # delivered or rolled back: forgotten, so reads skip the lookup
    return False


def bypass_reason(using: str) -> str | None:
    """``"transaction"`` when reads must skip the cache (the transaction must see its own writes)."""
    return "transaction" if has_written(using) else None


def fill_allowed(using: str) -> bool:
    """A value read from ``using`` now may be stored in the cache.

    In autocommit every statement sees the latest committed data, so a value read after the
    counters were read is safe to store under them. Inside a transaction that is only true with
    PostgreSQL's READ COMMITTED (the default); SQLite and REPEATABLE READ may read a snapshot
    older than the counters, so those fills are skipped. Never after the transaction wrote.
    """
    connection = transaction.get_connection(using)
    if not _in_user_transaction(connection):
        return not has_written(using)
    if has_written(using) or connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    level = getattr(connection, "isolation_level", None)
    return level in (None, IsolationLevel.READ_COMMITTED)
