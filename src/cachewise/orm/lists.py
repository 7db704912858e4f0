"""cached_list(): a queryset's result as a list of dicts, valid until any model it reads changes.

::

    cached_list(Article.objects.filter(featured=True).order_by("-published_at")[:10], ttl=600)

The list is stored as ``[stamp, rows]`` where the stamp holds the generation of every model the
SQL reads (base model, filter joins, ``select_related``, ``values()`` across relations, ordering
joins, subqueries, MTI parents, m2m through tables) and the global ORM epoch, read before the
query ran. One write to any of those models bumps its generation (one ``INCR``), so the list
stops matching; no key is ever scanned. A hit is one round trip for the entry and the counters.

Rows are ``values()`` dicts as is; for a model queryset each object becomes the dict of its
concrete fields by attribute name (``author_id``), its annotations, and a nested dict per
``select_related`` relation.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import models, router
from django.db.models.query import ModelIterable, QuerySet, ValuesIterable

from cachewise import recovery
from cachewise.keys import encode_part, make_key
from cachewise.monitoring.metrics import record

from . import generations, observe, txn
from .deps import ModelType, compile_query, label_of, labels
from .invalidation import counter_ttl, delivered, orm_alias

__all__ = ["acached_list", "cached_list"]

# Dependencies of user-keyed lists, so a hit need not compile the query: (label, db, key) -> deps.
_MEMO_SIZE = 512
_memo: dict[tuple[str, str, str], tuple[str, ...]] = {}
_memo_lock = threading.Lock()


def _check(queryset: Any) -> None:
    if not isinstance(queryset, QuerySet):
        raise TypeError(f"cached_list() takes a QuerySet, got {type(queryset).__name__}")
    if getattr(queryset, "_prefetch_related_lookups", ()):
        raise TypeError(
            "cached_list() does not support prefetch_related(): it runs extra queries whose "
            "results a list of dicts cannot hold; use values() across the relation instead"
        )
    if queryset._iterable_class not in (ModelIterable, ValuesIterable):
        raise TypeError("cached_list() returns dicts: use values() or a model queryset, not values_list()")


def _instance_dict(obj: models.Model, extra: Iterable[str]) -> dict[str, Any]:
    deferred = obj.get_deferred_fields()
    data = {
        f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if f.attname not in deferred
    }
    for name in extra:
        data[name] = getattr(obj, name)
    # Objects loaded by select_related() sit in the fields cache; nest them as dicts.
    for name, related in obj._state.fields_cache.items():
        data[name] = None if related is None else _instance_dict(related, ())
    return data


def _evaluate(queryset: QuerySet[Any]) -> list[dict[str, Any]]:
    # Run a copy: filling the caller's result cache would answer its next call from memory.
    queryset = queryset.all()
    if queryset._iterable_class is ValuesIterable:
        return list(queryset)
    extra = [*queryset.query.annotation_select, *queryset.query.extra_select]
    return [_instance_dict(obj, extra) for obj in queryset]


def _plan(
    queryset: QuerySet[Any], key: Any, depends_on: Iterable[ModelType], using: str
) -> tuple[str, list[str]] | None:
    """The list's cache key and dependency labels; None when the query can match nothing."""
    label = label_of(queryset.model)
    namespace = generations.namespace_for(label)
    extra = [label_of(model) for model in depends_on]
    if key is not None:
        cache_key = make_key(namespace, "list", using, key)
        memo_key = (label, using, cache_key)
        deps = _memo.get(memo_key)
        if deps is None:
            models_, _ = compile_query(queryset.query, using, allow_unknown=bool(extra))
            deps = tuple(labels(models_))
            with _memo_lock:
                if len(_memo) >= _MEMO_SIZE:
                    _memo.clear()
                _memo[memo_key] = deps
        return cache_key, sorted({*deps, *extra})
    models_, sql = compile_query(queryset.query, using, allow_unknown=bool(extra))
    if sql is None:
        return None
    try:
        params = encode_part(sql[1])
    except TypeError as exc:
        raise TypeError(f"{exc}; or pass cached_list(..., key=...) naming this list") from exc
    # SHA-256 of the SQL and its typed parameters: as injective as make_key's own digest,
    # without percent-encoding a long SQL string on every hit.
    digest = hashlib.sha256(f"{sql[0]}\0{params}".encode()).hexdigest()[:32]
    cache_key = make_key(namespace, "list", using, queryset._iterable_class.__name__, digest)
    return cache_key, sorted({*labels(models_), *extra})


def cached_list(
    queryset: QuerySet[Any], ttl: int = 300, *, key: Any = None, depends_on: Iterable[ModelType] = ()
) -> list[dict[str, Any]]:
    """The rows of ``queryset`` as dicts, cached until a model the query reads is written.

    ``key`` names the list (any value :func:`cachewise.make_key` accepts); by default the key is
    a digest of the SQL and its parameters. Give ``key`` to skip compiling the query on hits:
    then the same key must always mean the same query. ``depends_on`` adds models the ORM
    cannot see in the query (tables named in raw SQL or ``extra()``).

    ``select_for_update()`` querysets, and reads inside a transaction that has written, go to
    the database and are not stored.
    """
    _check(queryset)
    alias, using = orm_alias(), queryset.db
    namespace = generations.namespace_for(label_of(queryset.model))
    if queryset.query.select_for_update:
        record("bypass:select_for_update", alias, namespace)
        return _evaluate(queryset)
    bypass = txn.bypass_reason(using) or (None if delivered(alias) else "invalidation_pending")
    if bypass:
        record(f"bypass:{bypass}", alias, namespace)
        return _evaluate(queryset)
    plan = _plan(queryset, key, depends_on, using)
    if plan is None:
        return _evaluate(queryset)
    cache_key, deps = plan
    counter_keys = [*(generations.counter_key(dep, "gen") for dep in deps), generations.GLOBAL_EPOCH]
    outage = _outage(alias, namespace)
    entries, counters = generations.read(alias, [cache_key], counter_keys, counter_ttl(), fail_open=outage)
    observe.reported(alias, counter_keys, counters)  # a cached page rendering this list
    if counters is not None and generations.stamp_matches(entries[0], counters):
        record("hit", alias, namespace)
        return list(entries[0][1])
    record("miss", alias, namespace)
    rows = _evaluate(queryset)
    # A replica may lag behind the commit that bumped the counters: fill only from the primary.
    if counters is not None and using == router.db_for_write(queryset.model) and txn.fill_allowed(using):
        entry = generations.StampedEntry(cache_key, rows, int(ttl), counter_keys, counters)
        generations.store(alias, [entry], fail_open=lambda error: record("error", alias, namespace))
    return rows


def _outage(alias: str, namespace: str) -> Callable[[Exception], None]:
    """What a read or fill that failed open reports: the model's error count, and a recovery
    check before the next read is served (the outage may have hidden a rollback)."""

    def report(error: Exception) -> None:
        record("error", alias, namespace)
        recovery.check_now()

    return report


async def acached_list(
    queryset: QuerySet[Any], ttl: int = 300, *, key: Any = None, depends_on: Iterable[ModelType] = ()
) -> list[dict[str, Any]]:
    """:func:`cached_list` from async code (run in Django's sync thread, like the async ORM)."""
    return await sync_to_async(cached_list)(queryset, ttl, key=key, depends_on=depends_on)
