"""The advisor's query wrapper: database time, tables, kind of statement and repeats per request.

One wrapper (``connection.execute_wrapper``) sits on every database connection of the process,
installed when a connection is created, like the page cache's tracker; outside a recorded request
it only reads a context variable and calls through. Inside one it times the statement and hands
it to the request's :class:`~cachewise.monitoring.advisor.recorder.Observation`.

Tables come from the page cache's own mapping of SQL to models
(:func:`cachewise.pagecache.tracking.tables_read`), so the advisor's "tables read" are exactly
the dependencies ``cache_page`` would track. The *kind* of a statement picks a strategy: a
primary-key read (Django's ``get()`` runs ``LIMIT 21``; ``pk IN (...)``) suggests ``CachedRows``,
an ordered or limited list ``cached_list``, an aggregate ``@cached``. Both are memoised per SQL
string (parameters are not part of it), so a statement is parsed once per process.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.backends.signals import connection_created

from cachewise.orm.deps import label_of
from cachewise.pagecache.tracking import tables_read

if TYPE_CHECKING:
    from .recorder import Observation

__all__ = ["KINDS", "current", "install", "install_all", "statement_info"]

#: Kinds of statement, in the order ``advise`` reports them.
KINDS = ("row", "list", "aggregate", "other", "write")

current: ContextVar[Observation | None] = ContextVar("cachewise_advisor_observation", default=None)

_MEMO_SIZE = 2048
_memo: dict[str, tuple[tuple[str, ...], str]] = {}
_AGGREGATE = re.compile(r"\b(count|sum|avg|min|max)\s*\(|\bgroup\s+by\b", re.IGNORECASE)
_ROW = re.compile(r"\blimit\s+21\b|\"?id\"?\s+in\s*\(", re.IGNORECASE)
_LIST = re.compile(r"\border\s+by\b|\blimit\b", re.IGNORECASE)
_WRITES = ("insert", "update", "delete", "replace", "merge")
_CONTROL = ("savepoint", "release", "rollback", "begin", "commit", "set ", "pragma")


def _kind(sql: str) -> str:
    head = sql.lstrip()[:10].lower()
    if head.startswith(_WRITES):
        return "write"
    if head.startswith(_CONTROL):
        return "control"
    if _AGGREGATE.search(sql):
        return "aggregate"
    if _ROW.search(sql):
        return "row"
    if _LIST.search(sql):
        return "list"
    return "other"


def statement_info(sql: str) -> tuple[tuple[str, ...], str]:
    """``(model labels named in sql, kind)``; memoised per SQL string, bounded."""
    found = _memo.get(sql)
    if found is None:
        labels = tuple(sorted(label_of(model) for model in tables_read(sql)))
        found = (labels, _kind(sql))
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[sql] = found
    return found


def _wrapper(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    observation = current.get()
    if observation is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        observation.query(sql, None if many else params, time.perf_counter() - started)


def install(connection: Any, **kwargs: Any) -> None:
    """Add the advisor's wrapper to ``connection`` (idempotent; ``connection_created``)."""
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def install_all() -> None:
    """Install the wrapper on every connection this thread has already opened."""
    for connection in connections.all(initialized_only=True):
        install(connection)


connection_created.connect(install, dispatch_uid="cachewise.monitoring.advisor.queries", weak=False)
