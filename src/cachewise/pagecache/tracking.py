"""Automatic page dependencies: which tables a render reads, with their versions from before it did.

While a cacheable page renders, a :class:`Tracker` sits in a context variable and one query
wrapper (``connection.execute_wrapper``, installed on every database connection of the process)
hands it the SQL of every statement the render runs, on any connection and in any thread the
context reaches (``sync_to_async`` copies it). The tracker maps the table names in the SQL to
models and, *before the statement executes*, reads the generation counter of each model it sees
for the first time (one round trip per statement that brings new tables; none for a model whose
version the hit attempt already read). That ordering is what makes a page safe to store:

    render: reads gen(article) = 5, then SELECTs the old article
    writer: commits, bumps gen(article) to 6
    render: stores the page stamped 5 -> never served: every hit now reads 6

The same holds for versions of ``depends_on`` values (read before the render starts) and of
fragment dependencies (read before the fragment reads its own), see :func:`note`.

What is tracked: tables named in the SQL, raw SQL through ``cursor.execute`` included, and the
counters that ``CachedRows`` and ``cached_list`` reads were served under (a hit runs no query;
see :mod:`cachewise.orm.observe`). Tables are
the granularity (a write to any row of a table makes every page that read the table stale);
``depends_on`` instances add row counters, at most :data:`ROW_LIMIT` per model before they
degrade to the model's table counter. Nothing outside the database is seen: data from another
cache, a file or an external API needs ``depends_on`` (a ``Namespace`` you bump).

A render whose reads may not match the counters is not stored (the page is still served): a read
on a database other than the model's write database (a lagging replica), a read inside a
transaction where :func:`cachewise.orm.txn.fill_allowed` says no (it wrote, or SQLite/REPEATABLE
READ snapshots), a counter that could not be read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.apps import apps
from django.db import connections, models, router
from django.db.backends.signals import connection_created

from cachewise.compute.namespace import Namespace
from cachewise.conf import conf
from cachewise.exceptions import OUTAGE_ERRORS
from cachewise.orm import generations, observe, txn
from cachewise.orm.deps import label_of

from . import stamp
from .fragments import ScopedNamespace
from .stamp import Dep

__all__ = [
    "ROW_LIMIT",
    "Tracker",
    "current",
    "install",
    "install_all",
    "note",
    "page_depends_on",
    "resolve",
    "track",
]

#: ``depends_on`` instances of one model beyond this many count as the whole model (table level).
ROW_LIMIT = 32

_current: ContextVar[Tracker | None] = ContextVar("cachewise_page_tracker", default=None)
_IDENT = re.compile(r'"([^"]+)"|`([^`]+)`|([A-Za-z_][A-Za-z0-9_$]*)')
_SQL_MEMO_SIZE = 2048
_sql_memo: dict[str, frozenset[type[models.Model]]] = {}
_tables: dict[str, type[models.Model]] = {}
_tables_lock = threading.Lock()


def _table_map() -> dict[str, type[models.Model]]:
    # Built once per process: installed models do not change while it serves requests.
    if not _tables:
        with _tables_lock:
            for model in apps.get_models(include_auto_created=True):
                concrete = model._meta.concrete_model or model
                _tables.setdefault(model._meta.db_table, concrete)
    return _tables


def tables_read(sql: str) -> frozenset[type[models.Model]]:
    """Every model whose table name appears in ``sql`` (an extra match only adds a dependency)."""
    found = _sql_memo.get(sql)
    if found is None:
        table_map = _table_map()
        names = {a or b or c for a, b, c in _IDENT.findall(sql)}
        found = frozenset(table_map[name] for name in names if name in table_map)
        if len(_sql_memo) >= _SQL_MEMO_SIZE:
            _sql_memo.clear()
        _sql_memo[sql] = found
    return found


def _orm(kind: str, model: type[models.Model], *parts: Any) -> Dep:
    return (conf.ORM_CACHE, generations.counter_key(label_of(model), kind, *parts))


class Tracker:
    """The counters one render depends on, and their values read before the render used them."""

    def __init__(self, known: dict[Dep, int], base: Iterable[Dep], automatic: bool) -> None:
        self.known = dict(known)
        self.deps: dict[Dep, None] = dict.fromkeys(base)  # ordered set
        self.models: set[type[models.Model]] = set()
        self.automatic = automatic
        #: Why the page must not be stored, or None.
        self.unstorable: str | None = None
        # A miss does not establish missing URL counters (see stamp._counters): read them now,
        # before the render, as every version a page is stamped with must be.
        unknown = [dep for dep in self.deps if dep not in self.known]
        if unknown:
            try:
                self.known.update(stamp.establish_versions(unknown))
            except OUTAGE_ERRORS:  # fail open: serve the render, do not store it
                self.unstorable = "versions-unavailable"

    def add(self, deps: Iterable[Dep]) -> None:
        """Depend on ``deps``; read the versions not read yet (before the caller uses the data)."""
        new = [dep for dep in dict.fromkeys(deps) if dep not in self.deps]
        if not new:
            return
        unknown = [dep for dep in new if dep not in self.known]
        if unknown:
            try:
                self.known.update(stamp.read_versions(unknown))
            except OUTAGE_ERRORS:  # fail open: serve the render, do not store it
                self.unstorable = self.unstorable or "versions-unavailable"
                return
        self.deps.update(dict.fromkeys(new))

    def saw(self, sql: str, connection: Any) -> None:
        """A statement is about to run on ``connection``: depend on the tables it names."""
        new = tables_read(sql) - self.models
        if not new:
            return
        self.models.update(new)
        using = connection.alias
        if any(router.db_for_write(model) != using for model in new):
            self.unstorable = self.unstorable or "replica"
        elif not txn.fill_allowed(using):
            self.unstorable = self.unstorable or "transaction"
        self.add(_orm("gen", model) for model in sorted(new, key=label_of))

    def served(self, alias: str, keys: Sequence[str], versions: Sequence[int]) -> None:
        """Cached ORM data was read under ``keys`` holding ``versions``: depend on them.

        A version read earlier by this render is kept (it is older or equal: the page may be
        judged stale once too often, never fresh too long).
        """
        for key, version in zip(keys, versions, strict=True):
            dep = (alias, key)
            self.known.setdefault(dep, version)
            self.deps.setdefault(dep, None)

    def stamp(self) -> tuple[list[Dep], list[int]]:
        """The dependencies and their versions, to store with the page."""
        deps = list(self.deps)
        return deps, [self.known[dep] for dep in deps]


def current() -> Tracker | None:
    """The tracker of the page rendering in this context, if any."""
    return _current.get()


@contextmanager
def track(tracker: Tracker) -> Iterator[Tracker]:
    """Make ``tracker`` see every query run in this context until the block ends."""
    token = _current.set(tracker)
    watching = observe.watch(tracker.served)
    try:
        yield tracker
    finally:
        observe.unwatch(watching)
        _current.reset(token)


def _wrapper(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    tracker = _current.get()
    if tracker is not None and tracker.automatic:
        tracker.saw(sql, context["connection"])
    return execute(sql, params, many, context)


def install(connection: Any, **kwargs: Any) -> None:
    """Add the tracking query wrapper to ``connection`` (idempotent; ``connection_created``)."""
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def install_all() -> None:
    """Install the wrapper on every connection this thread has opened (cheap when present)."""
    for connection in connections.all(initialized_only=True):
        install(connection)


connection_created.connect(install, dispatch_uid="cachewise.pagecache.tracking", weak=False)


def _resolve(value: Any, out: list[Dep], rows: dict[type[models.Model], list[Any]]) -> None:
    if isinstance(value, type) and issubclass(value, models.Model):
        out.append(_orm("gen", value))
    elif isinstance(value, models.Model):
        rows.setdefault(value._meta.concrete_model or type(value), []).append(value.pk)
    elif isinstance(value, models.QuerySet):
        out.append(_orm("gen", value.model))  # table level: no query to list its rows
    elif isinstance(value, Namespace):
        out.append(_namespace_dep(value, None))
    elif isinstance(value, ScopedNamespace):
        out.append(_namespace_dep(value.namespace, value.scope))
    elif isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], Namespace):
        out.append(_namespace_dep(value[0], value[1]))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _resolve(item, out, rows)
    else:
        raise TypeError(
            f"depends_on={value!r}: give models, model instances, querysets or Namespaces "
            "(a Namespace you bump when data from outside the database changes)"
        )


def _namespace_dep(namespace: Namespace, scope: Any) -> Dep:
    return (namespace.alias, namespace._counter_key(scope))


def resolve(values: Iterable[Any]) -> list[Dep]:
    """The counters of ``depends_on`` values: models (table), instances (row), Namespaces."""
    out: list[Dep] = []
    rows: dict[type[models.Model], list[Any]] = {}
    for value in values:
        _resolve(value, out, rows)
    for model, pks in rows.items():
        if len(pks) > ROW_LIMIT:
            out.append(_orm("gen", model))  # bounded: many rows degrade to the table
            continue
        # rv: saves and deletes of the row; epoch: writes that name no row (update(), bulk ops).
        out.extend(_orm("rv", model, pk) for pk in pks)
        out.append(_orm("epoch", model))
    return out


def note(values: Iterable[Any]) -> None:
    """Make the page rendering now (if any) depend on ``values`` (fragments, views).

    Call it *before* reading the data (or the fragment's versions): the page is then stamped
    with versions no newer than what it shows. Values that name no counter (a fragment's
    explicit version: an int, a string, a date) are skipped: the data they came from was read
    by tracked queries, or is the caller's to declare.
    """
    tracker = _current.get()
    if tracker is not None:
        tracker.add(resolve(_watchable(values)))


def _names_counters(value: Any, scoped: type) -> bool:
    if isinstance(value, models.Model | models.QuerySet | Namespace | scoped):
        return True
    if isinstance(value, type):
        return issubclass(value, models.Model)
    return isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], Namespace)


def _watchable(values: Iterable[Any]) -> Iterator[Any]:
    for value in values:
        if _names_counters(value, ScopedNamespace):
            yield value
        elif isinstance(value, list | tuple | set | frozenset):
            yield from _watchable(value)


def page_depends_on(*values: Any) -> None:
    """In a view: make the page being cached depend on ``values`` (see ``docs/views.md``).

    For data the queries of the render do not show: another cache, a file, an external API
    (pass a :class:`~cachewise.Namespace` and bump it when that data changes), or models read
    through a connection cachewise does not see. Models, instances and querysets are accepted
    too. Outside a cached render this only checks the values.
    """
    deps = resolve(values)
    tracker = _current.get()
    if tracker is not None:
        tracker.add(deps)
