"""Which models a query reads, and which models a write changes.

Cached ORM data is stamped with one counter per model it was read from (see
:mod:`cachewise.orm.generations`), so the dependency set must never miss a model: a forgotten
model is a stale cache. The set is taken from the query *after compiling a copy of it*, because
Django adds several joins only at compile time (``select_related``, ``order_by`` across
relations, ``Meta.ordering``, parent tables of multi-table inheritance); the copy's ``alias_map``
then names every table the SQL touches. Subqueries in filters and annotations (``__in=queryset``,
``Exists``, ``Subquery``) and combined queries (``union``) are walked the same way.

Tables are mapped back to models through the app registry, auto-created m2m through models
included; every model is reduced to its concrete model so a proxy and its base share counters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.apps import apps
from django.core.exceptions import EmptyResultSet
from django.db import connections, models
from django.db.models.sql import Query

__all__ = [
    "UnknownTableError",
    "compile_query",
    "label_of",
    "labels",
    "query_models",
    "set_null_dependents",
    "write_targets",
]

ModelType = type[models.Model]


class UnknownTableError(ValueError):
    """A query reads a table that belongs to no installed model (``extra(tables=...)``)."""


_tables_lock = threading.Lock()
_tables: dict[str, ModelType] = {}


def label_of(model: ModelType) -> str:
    """``app_label.modelname`` of the concrete model: proxies share their base's counters."""
    return model._meta.concrete_model._meta.label_lower  # type: ignore[union-attr]


def _concrete(model: ModelType) -> ModelType:
    concrete = model._meta.concrete_model
    return concrete if concrete is not None else model


def _model_for_table(table: str) -> ModelType | None:
    model = _tables.get(table)
    if model is not None:
        return model
    # Rebuild once on an unknown table: models may be registered after the first lookup.
    with _tables_lock:
        for candidate in apps.get_models(include_auto_created=True):
            _tables.setdefault(candidate._meta.db_table, _concrete(candidate))
    return _tables.get(table)


class _Found:
    """Models found so far, and tables that belong to no installed model."""

    def __init__(self, in_sql: Callable[[str], bool]) -> None:
        self.models: set[ModelType] = set()
        self.unknown: set[str] = set()
        self.in_sql = in_sql

    def add_table(self, table: str) -> None:
        model = _model_for_table(table)
        if model is None:
            self.unknown.add(table)
        else:
            self.models.add(model)


def _subqueries(node: Any) -> Iterator[Query]:
    """Yield every Query nested in an expression tree (filters, annotations, ordering)."""
    if isinstance(node, Query):
        yield node
        return
    getter = getattr(node, "get_source_expressions", None)
    if getter is None:
        return
    for child in getter():
        if child is not None:
            yield from _subqueries(child)


def _collect(query: Query, found: _Found) -> None:
    if query.model is not None:
        found.models.add(_concrete(query.model))
    for alias, join in query.alias_map.items():
        # The compiler restores refcounts after compiling, so ask the SQL instead: a join Django
        # trimmed (values("author_id") needs no Author) has its alias in alias_map but not in
        # the FROM clause. A false positive only adds a dependency, which is safe.
        if found.in_sql(alias):
            found.add_table(join.table_name)
    for table in query.extra_tables:
        found.add_table(table)
    roots: list[Any] = [query.where, *query.annotations.values()]
    roots.extend(item for item in query.order_by if not isinstance(item, str))
    for root in roots:
        for sub in _subqueries(root):
            _collect(sub, found)
    for combined in query.combined_queries:
        _collect(combined, found)


def _alias_finder(sql: str, using: str) -> Callable[[str], bool]:
    """Whether an alias occurs in ``sql``: quoted (table names) or bare (``T3``, ``U0``)."""
    quote = connections[using].ops.quote_name

    def in_sql(alias: str) -> bool:
        return quote(alias) in sql or re.search(rf"\b{re.escape(alias)}\b", sql) is not None

    return in_sql


def compile_query(
    query: Query, using: str, *, allow_unknown: bool = False
) -> tuple[frozenset[ModelType], tuple[str, tuple[Any, ...]] | None]:
    """The concrete models the SQL of ``query`` reads (parents included), and that SQL.

    Compiles a clone (``query`` itself is left untouched) so the joins Django adds at compile
    time are seen. The SQL is ``None`` for a query that can match nothing (``pk__in=[]``), which
    then reads its base model only. A table of no installed model (``extra(tables=...)``)
    raises :class:`UnknownTableError` unless ``allow_unknown`` (the caller named the models).
    """
    clone = query.clone()
    sql: tuple[str, tuple[Any, ...]] | None
    try:
        text, params = clone.get_compiler(using=using).as_sql()
        sql = (text, tuple(params))
    except EmptyResultSet:
        sql = None
    found = _Found((lambda alias: True) if sql is None else _alias_finder(sql[0], using))
    _collect(clone, found)
    if found.unknown and not allow_unknown:
        raise UnknownTableError(
            f"the query reads table(s) {sorted(found.unknown)} of no installed model, so cachewise "
            "cannot tell when they change; pass depends_on=[Model, ...] naming what they hold"
        )
    for model in list(found.models):
        found.models.update(_concrete(parent) for parent in model._meta.get_parent_list())
    return frozenset(found.models), sql


def query_models(query: Query, using: str) -> frozenset[ModelType]:
    """Every concrete model whose table the SQL of ``query`` reads (see :func:`compile_query`)."""
    return compile_query(query, using)[0]


def set_null_dependents(model: ModelType) -> Iterator[ModelType]:
    """Models whose rows a delete of ``model`` rewrites without signals (``on_delete=SET_NULL``...).

    Django's deletion collector applies SET_NULL, SET_DEFAULT and SET(...) as a bulk UPDATE that
    sends no ``post_save``, so those models must be invalidated along with the deleted one.
    """
    untouched = (models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING)
    for rel in model._meta.related_objects:
        on_delete = getattr(rel, "on_delete", None)
        if on_delete is not None and on_delete not in untouched:
            yield _concrete(rel.related_model)


def write_targets(model: ModelType) -> list[ModelType]:
    """The concrete model a write to ``model`` changes, then its multi-table-inheritance parents."""
    concrete = _concrete(model)
    return [concrete, *(_concrete(parent) for parent in concrete._meta.get_parent_list())]


def labels(models_: Iterable[ModelType]) -> list[str]:
    """Sorted labels: counters are always listed in the same order for the same set."""
    return sorted({label_of(model) for model in models_})
