"""CachedRows: a model's rows by primary key, cached as plain dicts.

::

    class Article(models.Model):
        ...
        cached = CachedRows(fields=["id", "title", "author__name", "updated_at"], ttl=1800)

    Article.cached.get(42)          # {"id": 42, "title": ..., "author__name": ...} or None
    Article.cached.get_many(ids)    # {pk: dict} for the rows that exist

Each row is stored as ``[stamp, dict]`` under ``orm.<app>.<model>:v1:row:<fields-hash>:<pk>``.
The fields hash means a deploy that changes ``fields`` never reads rows of the old shape. The
stamp holds, as read before the query: the row's own version (bumped by its save/delete), the
model's epoch (bumped by writes that do not name rows), the generation of every other model the
row query joins (``author__name`` reads Author: any Author write invalidates these rows), and the
global ORM epoch. A lookup reads the entries and all those counters in one round trip.

A pk with no row is cached too (as ``None`` under the same stamp): creating that row through
``save()`` bumps its row version, ``bulk_create`` bumps the epoch, so a remembered miss never
outlives a create cachewise can see.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models, router

from cachewise.keys import MAX_KEY_LENGTH, encode_part, make_key
from cachewise.monitoring.metrics import record

from . import generations, txn
from .deps import ModelType, label_of, labels, query_models
from .invalidation import counter_ttl, delivered, orm_alias

__all__ = ["CachedRows", "RowCache"]

#: Keys per script call; Lua's unpack() has a stack limit of a few thousand values.
_CHUNK = 500


def _check_path(model: ModelType, path: str) -> None:
    """Refuse unknown fields and paths through to-many relations (a pk must give one dict)."""
    opts = model._meta
    parts = path.split("__")
    for index, part in enumerate(parts):
        try:
            field: Any = opts.get_field(part)
        except FieldDoesNotExist as exc:
            raise ImproperlyConfigured(
                f"CachedRows on {model._meta.label}: no field {path!r} ({exc})"
            ) from exc
        if field.many_to_many or field.one_to_many:
            raise ImproperlyConfigured(
                f"CachedRows on {model._meta.label}: {path!r} follows a to-many relation, which "
                "would give several rows per primary key; cache those with cached_list()"
            )
        if index < len(parts) - 1:
            if not field.is_relation:
                raise ImproperlyConfigured(
                    f"CachedRows on {model._meta.label}: {part!r} in {path!r} is not a relation"
                )
            opts = field.related_model._meta


@functools.lru_cache(maxsize=256)
def _key_head(namespace: str, parts: tuple[str, ...]) -> str:
    return make_key(namespace, *parts) + ":"


def _key_with(namespace: str, parts: tuple[str, ...], pk: Any) -> str:
    """``make_key(namespace, *parts, pk)`` without re-validating the constant head per pk."""
    key = _key_head(namespace, parts) + encode_part(pk)
    return key if len(key) <= MAX_KEY_LENGTH else make_key(namespace, *parts, pk)


@dataclass(frozen=True)
class _Plan:
    """What a bound RowCache resolved once: query fields, dependencies, key parts."""

    namespace: str
    label: str
    pk_name: str
    values: tuple[str, ...]
    drop_pk: bool
    field_hash: str
    dep_counters: tuple[str, ...]


class RowCache:
    """``Model.cached``: rows of one model by primary key (see :class:`CachedRows`)."""

    def __init__(self, model: ModelType, fields: Sequence[str], ttl: int) -> None:
        self.model = model
        self.fields = tuple(fields)
        self.ttl = ttl
        self._plan: _Plan | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RowCache {self.model._meta.label} fields={list(self.fields)} ttl={self.ttl}>"

    @property
    def using(self) -> str:
        """Rows are read from the write database: a lagging replica would fill stale rows."""
        return router.db_for_write(self.model)

    def plan(self) -> _Plan:
        """Resolve fields and dependencies on first use (related models may load later)."""
        if self._plan is None:
            with self._lock:
                if self._plan is None:
                    self._plan = self._resolve()
        return self._plan

    def _resolve(self) -> _Plan:
        for path in self.fields:
            _check_path(self.model, path)
        pk_name = self.model._meta.pk.attname
        names = [name if name != "pk" else pk_name for name in self.fields]
        values = tuple(dict.fromkeys([pk_name, *names]))
        query = self.model._default_manager.filter(pk__in=[1]).values(*values).query
        label = label_of(self.model)
        deps = [dep for dep in labels(query_models(query, self.using)) if dep != label]
        digest = hashlib.sha256("\0".join([pk_name, *self.fields]).encode()).hexdigest()[:12]
        counters = (
            generations.counter_key(label, "epoch"),
            *(generations.counter_key(dep, "gen") for dep in deps),
            generations.GLOBAL_EPOCH,
        )
        return _Plan(
            namespace=generations.namespace_for(label),
            label=label,
            pk_name=pk_name,
            values=values,
            drop_pk=pk_name not in names,
            field_hash=digest,
            dep_counters=counters,
        )

    def _normalise(self, pk: Any) -> Any:
        return self.model._meta.pk.to_python(pk)

    def key(self, pk: Any) -> str:
        """The cache key of the row ``pk`` (for inspection; values are ``[stamp, dict]``)."""
        plan = self.plan()
        return make_key(plan.namespace, "row", plan.field_hash, self._normalise(pk))

    def get(self, pk: Any) -> dict[str, Any] | None:
        """The row ``pk`` as a dict of the configured fields, or None when it does not exist."""
        pk = self._normalise(pk)
        return self.get_many([pk]).get(pk)

    def get_many(self, pks: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """``{pk: dict}`` for the rows of ``pks`` that exist: one round trip, one query for misses."""
        wanted = list(dict.fromkeys(self._normalise(pk) for pk in pks))
        found: dict[Any, dict[str, Any]] = {}
        for start in range(0, len(wanted), _CHUNK):
            found.update(self._get_chunk(wanted[start : start + _CHUNK]))
        return found

    async def aget(self, pk: Any) -> dict[str, Any] | None:
        """:meth:`get` from async code (run in Django's sync thread, like the async ORM)."""
        return await sync_to_async(self.get)(pk)

    async def aget_many(self, pks: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """:meth:`get_many` from async code."""
        return await sync_to_async(self.get_many)(list(pks))

    def _get_chunk(self, pks: list[Any]) -> dict[Any, dict[str, Any]]:
        if not pks:
            return {}
        plan = self.plan()
        alias, using = orm_alias(), self.using
        bypass = txn.bypass_reason(using) or (None if delivered(alias) else "invalidation_pending")
        if bypass:
            record(f"bypass:{bypass}", alias, plan.namespace)
            return {pk: row for pk, row in self._query(plan, pks).items() if row is not None}
        row_keys = [_key_with(plan.namespace, ("row", plan.field_hash), pk) for pk in pks]
        rv_keys = [_key_with(plan.namespace, ("rv",), pk) for pk in pks]
        try:
            entries, counters = generations.read(
                alias, row_keys, [*rv_keys, *plan.dep_counters], counter_ttl()
            )
        except Exception:
            record("error", alias, plan.namespace)
            entries, counters = [generations.MISSING] * len(pks), None
        return self._answer(alias, plan, pks, row_keys, rv_keys, entries, counters)

    def _answer(
        self,
        alias: str,
        plan: _Plan,
        pks: list[Any],
        row_keys: list[str],
        rv_keys: list[str],
        entries: list[Any],
        counters: list[int] | None,
    ) -> dict[Any, dict[str, Any]]:
        shared = counters[len(pks) :] if counters is not None else []
        result: dict[Any, dict[str, Any] | None] = {}
        misses: list[int] = []
        for index, (pk, entry) in enumerate(zip(pks, entries, strict=True)):
            if counters is not None and generations.stamp_matches(entry, [counters[index], *shared]):
                result[pk] = entry[1]
            else:
                misses.append(index)
        hits = len(pks) - len(misses)
        if hits:
            record("hit", alias, plan.namespace, hits)
        if misses:
            record("miss", alias, plan.namespace, len(misses))
            loaded = self._query(plan, [pks[i] for i in misses])
            result.update(loaded)
            if counters is not None and txn.fill_allowed(self.using):
                fills = [
                    generations.Entry(
                        row_keys[i],
                        loaded[pks[i]],
                        self.ttl,
                        [rv_keys[i], *plan.dep_counters],
                        [counters[i], *shared],
                    )
                    for i in misses
                ]
                self._store(alias, plan, fills)
        return {pk: row for pk, row in result.items() if row is not None}

    def _store(self, alias: str, plan: _Plan, fills: list[generations.Entry]) -> None:
        try:
            generations.store(alias, fills)
        except Exception:
            record("error", alias, plan.namespace)

    def _query(self, plan: _Plan, pks: list[Any]) -> dict[Any, dict[str, Any] | None]:
        """Read ``pks`` in one query; absent rows map to None (cached as misses)."""
        rows: dict[Any, dict[str, Any] | None] = dict.fromkeys(pks)
        queryset = self.model._default_manager.using(self.using).filter(pk__in=pks).values(*plan.values)
        for row in queryset:
            pk = row[plan.pk_name] if not plan.drop_pk else row.pop(plan.pk_name)
            rows[pk] = row
        return rows


class CachedRows:
    """Declare a row cache on a model: ``cached = CachedRows(fields=[...], ttl=...)``.

    ``fields`` are names as ``values()`` takes them, following forward foreign keys and
    one-to-one fields (``author__name``); to-many paths are refused. The dict of a row has
    exactly those keys. Rows are read through the model's default manager.
    """

    def __init__(self, fields: Sequence[str], ttl: int = 300) -> None:
        if isinstance(fields, str) or not fields:
            raise TypeError("CachedRows(fields=...) takes a non-empty list of field names")
        if int(ttl) <= 0:
            raise ValueError(f"CachedRows(ttl=...) must be a positive number of seconds, got {ttl!r}")
        self.fields = tuple(fields)
        self.ttl = int(ttl)
        self._bound: dict[ModelType, RowCache] = {}
        self._lock = threading.Lock()

    def contribute_to_class(self, cls: ModelType, name: str) -> None:
        """Install as a class attribute; subclasses get their own RowCache on access."""
        self.name = name
        setattr(cls, name, self)

    def __get__(self, instance: models.Model | None, owner: ModelType) -> RowCache:
        bound = self._bound.get(owner)
        if bound is None:
            if owner._meta.abstract:
                raise AttributeError(f"{owner.__name__} is abstract: it has no rows to cache")
            with self._lock:
                bound = self._bound.setdefault(owner, RowCache(owner, self.fields, self.ttl))
        return bound
