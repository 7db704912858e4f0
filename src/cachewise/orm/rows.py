"""CachedRows: a model's rows by primary key, cached as plain dicts.

::

    class Article(models.Model):
        ...
        cached = CachedRows(fields=["id", "title", "author__name", "updated_at"], ttl=1800)

    Article.cached.get(42)          # {"id": 42, "title": ..., "author__name": ...} or None
    Article.cached.get_many(ids)    # {pk: dict} for the rows that exist

The rows of one fill are stored together, as one *pack* (``[shared stamp, own stamps, rows,
pks]``, at most ``_PACK`` rows, under ``orm.<app>.<model>:v1:pack:<fields-hash>:<random id>``),
and each row's key ``orm.<app>.<model>:v1:row:<fields-hash>:<pk>`` holds a pointer to its pack,
the random id (:mod:`cachewise.store.packs`); the row is found in the pack by its pk. A row is
the dict itself, aware datetimes in UTC: one decode (and one signature check) per pack builds
every dict, where one per row cost most of a hit. The fields hash (which also names this
layout) means a deploy that changes ``fields`` never reads rows of another shape.

The stamp holds, as read before the query: the row's own version (bumped by its save/delete),
the model's epoch (bumped by writes that do not name rows), the generation of every other model
the row query joins (``author__name`` reads Author: any Author write invalidates these rows), and
the global ORM epoch. The shared part is stored once per pack, the own version per row. A lookup
reads the pointers and the counters at one instant (one ``MGET``), then the packs they name (a
pack is written once under a random key: reading it later cannot mix versions); a row is served
only when its own version and the shared counters equal its stamp.

A pk with no row is cached too (as ``None`` under the same stamp): creating that row through
``save()`` bumps its row version, ``bulk_create`` bumps the epoch, so a remembered miss never
outlives a create cachewise can see.

Each RowCache remembers, per row (bounded), the pack its pointer named when last read or the
pack its own fill pointed it to: when every row of a chunk is remembered, the read is ONE ``MGET`` of the
counters and those packs, without the pointers. The stamps decide as before; rows the
remembered packs do not serve (written since, refilled elsewhere, gone) are read through their
pointers, under the counters already read.

Cost: a hit of 1,000 remembered rows is one ``MGET`` of ~1,000 keys (versions and packs; else two
``MGET``s: pointers and versions, two keys per row, then the packs), one decode per pack and a
stamp comparison per row; a miss adds the query and ONE fenced fill script per 1,000 rows. A pack
lives until its TTL even when its rows were refilled elsewhere (memory, never a stale read).

A call that fills ``_SEND_AND_GO`` rows or more sends its fill scripts and returns: a bounded
answer thread reads their answers (which rows to remember), and the thread's next read waits for
its own fills first (:func:`settle`). The scripts are the same fenced fills; only the wait moved.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import connections, models, router

from cachewise import recovery
from cachewise.compute.background import BoundedPool
from cachewise.exceptions import CachewiseError
from cachewise.keys import MAX_KEY_LENGTH, encode_part, make_key
from cachewise.missing import MISSING
from cachewise.monitoring.metrics import record
from cachewise.store.packs import Fill, Pack, PackedRead

from . import generations, observe, txn
from .arrays import IntIn, int_array_ok
from .deps import ModelType, label_of, labels, query_models
from .invalidation import counter_ttl, delivered, orm_alias

__all__ = ["CachedRows", "RowCache", "settle"]

#: Pks per read and per fill script: two keys a pk, well under the 8,000 values Lua's unpack()
#: takes, and a fill of about 2 ms on Redis. Each chunk costs a round trip or two.
_CHUNK = 1000
#: Rows per pack: a read of a few rows decodes the whole packs they are in (bounded overfetch).
_PACK = 100
#: Pks per query of misses (a query of every miss of a call, split only past this).
_QUERY_MAX = 5000
#: Rows whose pack ref a RowCache remembers (then emptied): ~80 bytes each, ~2.6 MB at most.
_REFS_MAX = 32_768
#: Names the stored layout in the fields hash: a layout change never reads old entries.
#: v4: a pack is ``[shared stamp, own stamps, rows]`` (columns, not a ``[own, row]`` list per
#: row): unpickling makes no list per row, and dicts of plain values are not tracked by the
#: garbage collector, so a 1,000-row read no longer sets off collections (~1.5 ms of a hit).
#: v6: a pointer holds the pack's random ref, not its whole key and the row's index (18 bytes
#: instead of ~70), and a pack holds its rows' pks (a row is found by its pk: no index to parse).
_LAYOUT = "pack-v6"
#: Rows a call fills from which its fill scripts are sent without waiting for their answers
#: (read by a pool thread): below it the wait is about one round trip, less than the hand-off.
_SEND_AND_GO = 256
#: How long :func:`settle` waits for one answer at most (a server that stopped answering is
#: bounded by the socket timeout already; this bounds a client configured without one).
_SETTLE_WAIT = 5.0
_UTC = datetime.timezone.utc
#: What a pack's rows may be: a row's dict, or None for a pk without a row.
_ROW_TYPES = frozenset({dict, type(None)})
#: The types of a batch of plain int pks.
_INTS = {int}


def _check_path(model: ModelType, path: str) -> Any:
    """The field ``path`` ends on; refuse unknown fields and to-many paths (one dict per pk)."""
    opts = model._meta
    field: Any = None
    parts = path.split("__")
    for index, part in enumerate(parts):
        try:
            field = opts.get_field(part)
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
    return field


#: Django's own fields whose values are immutable (str, int, bool, float, Decimal, UUID, dates,
#: times, durations): rows made only of these may share one decoded pack between reads, each
#: read copying the row dict. Exact classes: a subclass may turn its value into a list.
_IMMUTABLE_FIELDS: frozenset[type] = frozenset(
    {
        models.AutoField,
        models.BigAutoField,
        models.SmallAutoField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.PositiveIntegerField,
        models.PositiveBigIntegerField,
        models.PositiveSmallIntegerField,
        models.CharField,
        models.TextField,
        models.SlugField,
        models.EmailField,
        models.URLField,
        models.BooleanField,
        models.DateField,
        models.DateTimeField,
        models.TimeField,
        models.DurationField,
        models.DecimalField,
        models.FloatField,
        models.UUIDField,
        models.GenericIPAddressField,
    }
)


def _immutable(field: Any) -> bool:
    """Whether ``field``'s values are immutable (a foreign key: its target's)."""
    while type(field) in (models.ForeignKey, models.OneToOneField):
        field = field.target_field
    return type(field) in _IMMUTABLE_FIELDS


@functools.lru_cache(maxsize=256)
def _key_head(namespace: str, parts: tuple[str, ...]) -> str:
    return make_key(namespace, *parts) + ":"


def _key_with(namespace: str, parts: tuple[str, ...], pk: Any) -> str:
    """``make_key(namespace, *parts, pk)`` without re-validating the constant head per pk."""
    key = _key_head(namespace, parts) + encode_part(pk)
    return key if len(key) <= MAX_KEY_LENGTH else make_key(namespace, *parts, pk)


def _keys_of(plan: _Plan, parts: tuple[str, ...], pks: list[Any]) -> list[str]:
    """``_key_with(plan.namespace, parts, pk)`` of each pk.

    Plain ints (the usual pk) are spelled by ``int.__repr__`` and joined to the constant head
    in C-level passes (~0.07 ms for 1,000 pks).
    """
    head = _key_head(plan.namespace, parts)
    room = MAX_KEY_LENGTH - len(head) - 20  # 20 digits: a 64-bit int
    if room >= 0 and set(map(type, pks)) == _INTS and min(pks) > -(2**63) and max(pks) < 2**64:
        return [head + tail for tail in map(int.__repr__, pks)]
    return [_key_with(plan.namespace, parts, pk) for pk in pks]


_RV = ("rv",)


@dataclass(frozen=True)
class _Plan:
    """What a bound RowCache resolved once: query fields, dependencies, key parts."""

    namespace: str
    label: str
    pk_name: str
    values: tuple[str, ...]
    drop_pk: bool
    #: The keys of a row's dict (``values`` without the pk when it was not asked for).
    names: tuple[str, ...]
    #: Positions in ``names`` of datetimes stored in UTC (DateTimeFields with USE_TZ).
    utc: tuple[int, ...]
    #: The pk is an integer field: an int pk needs no ``to_python()``.
    int_pk: bool
    field_hash: str
    dep_counters: tuple[str, ...]
    #: Every value of a row is immutable: a near-cached pack may be decoded once for all reads.
    immutable: bool = False


class RowCache:
    """``Model.cached``: rows of one model by primary key (see :class:`CachedRows`)."""

    def __init__(self, model: ModelType, fields: Sequence[str], ttl: int) -> None:
        self.model = model
        self.fields = tuple(fields)
        self.ttl = ttl
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        #: pk -> the ref of the pack its pointer named when last read (bounded: _REFS_MAX).
        self._refs: dict[Any, Any] = {}
        #: ref -> when that pack has expired for certain (``time.monotonic()``): learnt at or
        #: after its write, plus the TTL it was written with. Past it, its rows skip the read of
        #: remembered packs (it would find nothing) and go to their pointers at once.
        self._until: dict[str, float] = {}

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
        final = {path: _check_path(self.model, path) for path in self.fields}
        pk_name = self.model._meta.pk.attname
        names = [name if name != "pk" else pk_name for name in self.fields]
        values = tuple(dict.fromkeys([pk_name, *names]))
        row_names = values if pk_name in names else values[1:]
        by_name = {pk_name if path == "pk" else path: field for path, field in final.items()}
        utc = tuple(
            index
            for index, name in enumerate(row_names)
            if settings.USE_TZ and isinstance(by_name.get(name), models.DateTimeField)
        )
        query = self.model._default_manager.filter(pk__in=[1]).values(*values).query
        label = label_of(self.model)
        deps = [dep for dep in labels(query_models(query, self.using)) if dep != label]
        digest = hashlib.sha256("\0".join([_LAYOUT, pk_name, *self.fields]).encode()).hexdigest()[:12]
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
            names=row_names,
            utc=utc,
            int_pk=isinstance(self.model._meta.pk, models.IntegerField),
            field_hash=digest,
            dep_counters=counters,
            immutable=all(map(_immutable, [self.model._meta.pk, *final.values()])),
        )

    def _normalise(self, pk: Any) -> Any:
        return self.model._meta.pk.to_python(pk)

    def key(self, pk: Any) -> str:
        """The cache key of the row ``pk`` (for inspection: it holds the row's pointer)."""
        plan = self.plan()
        return make_key(plan.namespace, "row", plan.field_hash, self._normalise(pk))

    def get(self, pk: Any) -> dict[str, Any] | None:
        """The row ``pk`` as a dict of the configured fields, or None when it does not exist."""
        pk = self._normalise(pk)
        return self.get_many([pk]).get(pk)

    def get_many(self, pks: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """``{pk: dict}`` for the rows of ``pks`` that exist: two plain reads per 1,000 pks, one
        query for the misses of the call."""
        plan = self.plan()
        if plan.int_pk:  # an integer field keeps an int as it is: skip to_python() per pk
            pks = pks if type(pks) is list else list(pks)
            if set(map(type, pks)) == _INTS:  # C-level passes for the usual batch
                wanted = list(dict.fromkeys(pks))
            else:
                normalise = self._normalise
                wanted = list(dict.fromkeys(pk if type(pk) is int else normalise(pk) for pk in pks))
        else:
            wanted = list(dict.fromkeys(self._normalise(pk) for pk in pks))
        return self._get_all(plan, wanted) if wanted else {}

    async def aget(self, pk: Any) -> dict[str, Any] | None:
        """:meth:`get` from async code (run in Django's sync thread, like the async ORM)."""
        return await sync_to_async(self.get)(pk)

    async def aget_many(self, pks: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        """:meth:`get_many` from async code."""
        return await sync_to_async(self.get_many)(list(pks))

    def _get_all(self, plan: _Plan, wanted: list[Any]) -> dict[Any, dict[str, Any]]:
        """Read every chunk (bounded commands), then ONE query for all misses, then the fills."""
        alias, using = orm_alias(), self.using
        if getattr(_sent, "fills", None):
            settle()  # this thread's own fills first: a read after a fill finds its rows
        bypass = txn.bypass_reason(using) or (None if delivered(alias) else "invalidation_pending")
        if bypass:
            record(f"bypass:{bypass}", alias, plan.namespace)
            return _present(_as_dicts(plan, self._query(plan, wanted)))
        found: dict[Any, dict[str, Any]] = {}
        chunks = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = self._read(alias, plan, wanted[start : start + _CHUNK], found)
            if chunk is not None:
                chunks.append(chunk)
        for chunk in chunks:
            found.update(chunk.hits(alias, plan))
        missed = [chunk.pks[i] for chunk in chunks for i in chunk.misses]
        if not missed:
            return found
        loaded = _as_dicts(plan, self._query(plan, missed))
        found.update(_present(loaded))
        if txn.fill_allowed(using):
            todo = [chunk for chunk in chunks if chunk.misses and chunk.read.counters is not None]
            if todo:
                self._store(alias, plan, todo, loaded)
        return found

    def _read(
        self, alias: str, plan: _Plan, pks: list[Any], found: dict[Any, dict[str, Any]]
    ) -> _Chunk | None:
        """Read one chunk: the rows it serves go into ``found``; the chunk of the rest, if any.

        When the pack ref of every pk is remembered, one ``MGET`` of the counters and those packs
        (:func:`generations.read_known`: half the keys, one round trip); the rows it does not
        serve (a pack refilled elsewhere, invalidated, gone) are read through their pointers.
        """
        refs: list[Any] = list(map(self._refs.get, pks))
        rv_keys = _keys_of(plan, _RV, pks)
        if None not in refs and self._alive(refs):
            counter_keys = [*rv_keys, *plan.dep_counters]
            read = generations.read_known(
                alias,
                refs,
                counter_keys,
                pack_head=_pack_head(plan),
                fail_open=_outage(alias, plan),
                share=plan.immutable,
            )
            counters = None if read is None else read.counters
            if read is not None and counters is None:  # failed open: all misses, no fill
                return _Chunk(pks, [], rv_keys, read)
            if read is not None and counters is not None:
                observe.reported(alias, counter_keys, counters)
                served, misses = _current_rows(pks, read, counters)
                found.update(served)
                if len(misses) < len(pks):
                    record("hit", alias, plan.namespace, len(pks) - len(misses))
                if not misses:
                    return None
                # A row whose remembered pack is gone (evicted, expired, cleared) is a miss at once:
                # its pointer named that pack, or one written since by a refill after the same
                # loss (then one query more, never a stale row). Pointers are read only for rows
                # whose pack is there but no longer serves them (written since, refilled elsewhere).
                gone = [i for i in misses if read.packs[read.slots[i] - 1] is MISSING]
                if gone:
                    lost = set(gone)
                    misses = [*(i for i in misses if i not in lost), *gone]
                    refs_of = self._refs
                    for i in gone:  # the next read of these rows goes through their pointers
                        refs_of.pop(pks[i], None)
                rest = [*(counters[i] for i in misses), *counters[len(pks) :]]
                pks, rv_keys = [pks[i] for i in misses], [rv_keys[i] for i in misses]
                return self._read_pointers(alias, plan, pks, rv_keys, rest, unread=len(gone))
        return self._read_pointers(alias, plan, pks, rv_keys)

    def _read_pointers(
        self,
        alias: str,
        plan: _Plan,
        pks: list[Any],
        rv_keys: list[str],
        counters: list[int] | None = None,
        unread: int = 0,
    ) -> _Chunk:
        """Read rows through their pointers; with ``counters`` (read by the remembered-pack read
        just before, for these rows) only the pointers and their packs, except for the last
        ``unread`` rows: misses without a read."""
        row_keys = _keys_of(plan, ("row", plan.field_hash), pks)
        head, outage = _pack_head(plan), _outage(alias, plan)
        asked = len(pks) - unread
        if counters is None:
            counter_keys = [*rv_keys, *plan.dep_counters]
            read = generations.read_packed(
                alias,
                row_keys,
                counter_keys,
                counter_ttl(),
                pack_head=head,
                fail_open=outage,
                share=plan.immutable,
            )
            observe.reported(alias, counter_keys, read.counters)  # a cached page rendering
        elif asked:
            read = generations.read_pointers(
                alias, row_keys[:asked], counters, pack_head=head, fail_open=outage
            )
        else:
            read = PackedRead([], [], counters)
        by_slot = [None, *read.refs]
        self._remember(zip(pks, map(by_slot.__getitem__, read.slots), strict=False), asked, read.refs)
        if unread:
            read = replace(read, slots=[*read.slots, *[0] * unread])
        return _Chunk(pks, row_keys, rv_keys, read)

    def _alive(self, refs: list[Any]) -> bool:
        """Whether every pack of ``refs`` may still be in Redis (none is past its TTL for certain)."""
        until, now = self._until, time.monotonic()
        return all(until.get(ref, 0.0) > now for ref in set(refs))

    def _remember(self, pairs: Iterable[tuple[Any, Any]], count: int, refs: Sequence[str]) -> None:
        """Remember ``(pk, ref)`` pairs: the pack a pointer named, or None where there was none,
        or the pack a fill just pointed the row to (never one whose row the fill's fence kept
        out: that pack may hold the row as it was before a write), and that the packs ``refs``
        have expired for certain one TTL from now. Bounded: emptied when full."""
        known, until = self._refs, self._until
        if len(known) + count > _REFS_MAX or len(until) + len(refs) > _REFS_MAX:
            known.clear()
            until.clear()
        if count <= _REFS_MAX:
            deadline = time.monotonic() + self.ttl
            for ref in refs:  # learnt again later: the first bound is the tighter one
                until.setdefault(ref, deadline)
            known.update(pairs)

    def _store(
        self, alias: str, plan: _Plan, chunks: list[_Chunk], loaded: dict[Any, dict[str, Any] | None]
    ) -> None:
        """One fenced fill per chunk of misses, in packs of ``_PACK`` rows: sent without waiting
        for the answers when the call filled ``_SEND_AND_GO`` rows or more (:func:`_answer_later`)."""
        fills = [self._fill_of(plan, chunk, loaded) for chunk in chunks]

        def fail_open(error: Exception) -> None:
            record("error", alias, plan.namespace)

        if sum(len(chunk.misses) for chunk in chunks) >= _SEND_AND_GO:
            sent = generations.send_packs(alias, fills, self.ttl, fail_open=fail_open)
            if sent is not None:
                _answer_later(lambda: self._learn(fills, sent.written()), alias, plan.namespace)
                return
        self._learn(
            fills,
            [
                generations.store_packs(
                    alias, fill.packs, fill.shared_keys, fill.shared_stamp, self.ttl, fail_open=fail_open
                )
                for fill in fills
            ],
        )

    def _fill_of(self, plan: _Plan, chunk: _Chunk, loaded: dict[Any, dict[str, Any] | None]) -> Fill:
        """The fill of ``chunk``'s misses: packs of at most ``_PACK`` rows, under its counters."""
        counters = chunk.read.counters
        assert counters is not None
        shared = counters[len(chunk.pks) :]
        misses, pks = chunk.misses, chunk.pks
        batch = []
        for start in range(0, len(misses), _PACK):
            part = misses[start : start + _PACK]
            batch.append(
                Pack(
                    _pack_head(plan),
                    os.urandom(9).hex(),
                    [
                        shared,
                        [counters[i] for i in part],
                        [loaded[pks[i]] for i in part],
                        [pks[i] for i in part],
                    ],
                    [chunk.row_keys[i] for i in part],
                    [chunk.rv_keys[i] for i in part],
                    [counters[i] for i in part],
                )
            )
        return Fill(batch, plan.dep_counters, shared)

    def _learn(self, fills: list[Fill], answers: list[list[bool] | None]) -> None:
        """Remember the packs of the rows whose pointer each fill wrote (its fence passed)."""
        for fill, written in zip(fills, answers, strict=True):
            if written:
                rows = ((pk, pack.ref) for pack in fill.packs for pk in pack.data[3])
                pairs = (pair for pair, ok in zip(rows, written, strict=True) if ok)
                self._remember(pairs, len(written), [pack.ref for pack in fill.packs])

    def _query(self, plan: _Plan, pks: list[Any]) -> dict[Any, tuple[Any, ...] | None]:
        """Read ``pks`` as value tuples (``names`` order); absent rows map to None.

        One query, or one per ``_QUERY_MAX`` pks (SQLite takes 999 parameters at most). On
        PostgreSQL, integer pks go as one array parameter (:mod:`.arrays`: a quarter less time).
        """
        rows: dict[Any, tuple[Any, ...] | None] = dict.fromkeys(pks)
        connection = connections[self.using]
        step = min(connection.features.max_query_params or _QUERY_MAX, _QUERY_MAX)
        manager = self.model._default_manager.using(self.using)
        for start in range(0, len(pks), step):
            part = pks[start : start + step]
            if plan.int_pk and int_array_ok(connection, part):
                queryset = manager.filter(IntIn(models.F("pk"), part))
            else:
                queryset = manager.filter(pk__in=part)
            for row in queryset.values_list(*plan.values):
                rows[row[0]] = row[1:] if plan.drop_pk else row
        return rows


@dataclass
class _Chunk:
    """One bounded read of ``get_many``: its pks, keys, what the store found, and what missed."""

    pks: list[Any]
    row_keys: list[str]
    rv_keys: list[str]
    read: PackedRead
    misses: tuple[int, ...] = ()

    def hits(self, alias: str, plan: _Plan) -> dict[Any, dict[str, Any]]:
        """The current rows of this chunk; records hits and misses, remembers the misses."""
        if self.read.counters is None:
            found: dict[Any, dict[str, Any]] = {}
            misses = list(range(len(self.pks)))
        else:
            found, misses = _current_rows(self.pks, self.read, self.read.counters)
        self.misses = tuple(misses)
        if len(misses) < len(self.pks):
            record("hit", alias, plan.namespace, len(self.pks) - len(misses))
        if misses:
            record("miss", alias, plan.namespace, len(misses))
        return found


#: Reads the answers of fills sent without waiting. Bounded: when it is behind, the caller
#: reads its own answers (as a fill that waits would have).
_answers = BoundedPool("cachewise-fill-answers", max_workers=1, max_pending=16)
#: Per thread: the fills it sent whose answers may not be read yet (:func:`settle`).
_sent = threading.local()
_log = logging.getLogger("cachewise.orm")


def _answer_later(read: Callable[[], None], alias: str, namespace: str) -> None:
    """Have ``read`` (which reads a sent fill's answers and learns from them) run on the answer
    thread; this thread's next read of rows waits for it first (:func:`settle`)."""
    done = threading.Event()

    def answer() -> None:
        try:
            read()
        except CachewiseError:  # a server error on a fill nobody waits for: counted and logged
            record("error", alias, namespace)
            _log.exception("cachewise: a CachedRows fill sent without waiting failed")
        finally:
            done.set()

    if not _answers.try_submit(answer):
        read()  # the answer thread is behind: read them here, as a fill that waits would
        return
    pending = getattr(_sent, "fills", None)
    if pending is None:
        pending = _sent.fills = []
    pending.append(done)


def _forget_sent_in_child() -> None:
    """After a fork the answer thread is gone: the child never waits for its parent's fills."""
    _sent.fills = []  # the child's one thread is the one that forked


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sent_in_child)


def settle() -> None:
    """Wait until the answers of every CachedRows fill this thread sent without waiting are read.

    ``get_many`` calls it first, so a thread always reads its own fills (and what they taught it);
    tests and tools that inspect Redis right after a large ``get_many`` call it too.
    """
    pending: list[threading.Event] | None = getattr(_sent, "fills", None)
    while pending:
        pending.pop().wait(_SETTLE_WAIT)


def _pack_head(plan: _Plan) -> str:
    """Where packs go: a pack's key is this and a random ref, so concurrent fills of the same rows
    never share one."""
    return _key_head(plan.namespace, ("pack", plan.field_hash))


def _outage(alias: str, plan: _Plan) -> Callable[[Exception], None]:
    """What a read or fill that failed open reports: the model's error count, and a recovery
    check before the next read is served (the outage may have hidden a rollback)."""

    def report(error: Exception) -> None:
        record("error", alias, plan.namespace)
        recovery.check_now()

    return report


def _current_rows(
    pks: list[Any], read: PackedRead, counters: list[int]
) -> tuple[dict[Any, dict[str, Any]], list[int]]:
    """The rows whose stamp is current, and the misses (indexes into ``pks``).

    The hit path of ``get_many``: a pack's shared stamp is compared once, then per row its own
    version and nothing else (the dict was built by the pack's decode). A row is looked up in
    its pack by its pk: a pack that does not hold it (a pointer moved to another pack) misses.
    """
    shared = counters[len(pks) :]
    current: list[Any] = [None]  # slot 0: no pointer
    for pack in read.packs:
        try:
            stamp, owns, rows, ids = pack
            fits = (
                stamp == shared
                and type(owns) is list
                and type(rows) is list
                and type(ids) is list
                and len(owns) == len(rows) == len(ids)
                and set(map(type, rows)) <= _ROW_TYPES  # checked per pack, not per row
            )
            current.append((owns, rows, dict(zip(ids, range(len(ids)), strict=True))) if fits else None)
        except (TypeError, ValueError):  # absent (MISSING), or not a pack of this layout
            current.append(None)
    copy = read.shared  # a shared pack's dicts go out as copies
    result: dict[Any, dict[str, Any]] = {}
    misses: list[int] = []
    for index, slot in enumerate(read.slots):
        entry = current[slot]
        if entry is not None:
            owns, rows, where = entry
            at = where.get(pks[index])
            if at is not None and owns[at] == counters[index]:
                row = rows[at]
                if row is not None:
                    result[pks[index]] = row.copy() if copy else row
                continue
        misses.append(index)  # no pointer, a stale row or pack, or not a pack of this layout
    return result, misses


def _as_dicts(plan: _Plan, rows: dict[Any, tuple[Any, ...] | None]) -> dict[Any, dict[str, Any] | None]:
    """The dict of each row (None for absent ones), aware datetimes at ``utc`` positions in UTC.

    One time zone object for every datetime: a pack pickles it once, not once per row.
    """
    names, utc, aware = plan.names, plan.utc, datetime.datetime
    # Not strict: every tuple has len(names) values by construction (values_list(*plan.values)
    # in _query), and a strict zip costs a third of this loop.
    result = {
        pk: None if values is None else dict(zip(names, values, strict=False)) for pk, values in rows.items()
    }
    for position in utc:  # psycopg hands UTC datetimes over in UTC already: usually no change
        name = names[position]
        for row in result.values():
            value = None if row is None else row[name]
            if isinstance(value, aware) and value.tzinfo is not _UTC and value.tzinfo is not None:
                row[name] = value.astimezone(_UTC)  # type: ignore[index]
    return result


def _present(rows: dict[Any, dict[str, Any] | None]) -> dict[Any, dict[str, Any]]:
    return {pk: row for pk, row in rows.items() if row is not None}


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
