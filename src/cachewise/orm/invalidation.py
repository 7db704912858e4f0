"""Invalidation of cached ORM data: signal receivers, the write mixin's hook, ``invalidate_model``.

Each write bumps counters (see :mod:`cachewise.orm.generations`):

* ``gen`` of every model it changes: lists that read the model stop matching;
* ``rv:<pk>`` of a saved or deleted row (and of the same row in MTI parents): that row's cached
  dict stops matching, the model's other rows stay cached;
* ``epoch`` of the model for writes that do not name their rows (``QuerySet.update``,
  ``bulk_create``, ``bulk_update``, ``QuerySet.delete``, :func:`invalidate_model`): every row;
* for deletes, ``gen`` and ``epoch`` of models whose foreign keys are set to NULL/default by the
  deletion collector without any signal.

Counters are bumped after the outermost transaction commits, all of a transaction's counters in
one round trip (:mod:`cachewise.orm.txn`); a rollback drops them. A bump that fails is logged,
counted and sent as ``cache_degraded``, and escalated: the process bumps the global ORM epoch
(which every stamp includes) as soon as the cache answers again, and until then serves ORM reads
from the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import models, router
from django.db.models.signals import m2m_changed, post_delete, post_save

from cachewise.conf import conf
from cachewise.monitoring.metrics import record
from cachewise.signals import cache_degraded, cache_invalidated

from . import generations, txn
from .deps import ModelType, label_of, set_null_dependents, write_targets

__all__ = ["connect_receivers", "disconnect_receivers", "invalidate_model", "schedule_coarse"]

logger = logging.getLogger("cachewise.orm")

_escalation_lock = threading.Lock()
_escalate: dict[str, float] = {}  # alias -> time of the last attempt to bump the global epoch
_RETRY_INTERVAL = 1.0


def orm_alias() -> str:
    """The cache alias ORM data lives in (``CACHEWISE_ORM_CACHE``, default ``"default"``)."""
    return conf.ORM_CACHE


def counter_ttl() -> int:
    """Lifetime of version counters (``CACHEWISE_ORM_COUNTER_TTL``); expiry only costs misses."""
    return conf.ORM_COUNTER_TTL


def _deliver(batch: txn.PendingInvalidation) -> None:
    alias = orm_alias()
    keys = list(batch.counter_keys)
    escalated = alias in _escalate
    if escalated:
        keys.append(generations.GLOBAL_EPOCH)
    try:
        generations.bump(alias, keys, counter_ttl())
    except Exception as exc:
        _report_failure(alias, exc, batch.reasons)
        return
    if escalated:
        _escalate.pop(alias, None)
    for label, reason in batch.reasons.items():
        namespace = generations.namespace_for(label)
        record("invalidate", alias, namespace)
        cache_invalidated.send(sender=invalidate_model, alias=alias, namespace=namespace, reason=reason)


def _report_failure(alias: str, exc: Exception, reasons: dict[str, str]) -> None:
    with _escalation_lock:
        _escalate.setdefault(alias, 0.0)
    logger.error(
        "cachewise could not invalidate cached ORM data of %s on cache %r (%s); every ORM entry "
        "will be invalidated when the cache answers again",
        ", ".join(sorted(reasons)),
        alias,
        exc,
    )
    record("error", alias, "orm")
    cache_degraded.send(
        sender=invalidate_model, alias=alias, operation="invalidate", error=exc, action="raised"
    )


def delivered(alias: str) -> bool:
    """True when no invalidation of ``alias`` is outstanding in this process.

    When one is, retry the escalation (at most once a second): bump the global epoch, which
    makes every stamped ORM entry unreachable. Readers bypass the cache until it succeeds.
    """
    if alias not in _escalate:
        return True
    with _escalation_lock:
        last = _escalate.get(alias)
        if last is None:
            return True
        if time.monotonic() - last < _RETRY_INTERVAL:
            return False
        _escalate[alias] = time.monotonic()
    try:
        generations.bump(alias, [generations.GLOBAL_EPOCH], counter_ttl())
    except Exception:
        return False
    _escalate.pop(alias, None)
    logger.warning(
        "cachewise invalidated every cached ORM entry on cache %r after a failed invalidation", alias
    )
    return True


def _row_counters(model: ModelType, instance: models.Model) -> Iterator[str]:
    for target in write_targets(model):
        label = label_of(target)
        yield generations.counter_key(label, "gen")
        yield generations.counter_key(label, "rv", getattr(instance, target._meta.pk.attname))


def _coarse_counters(targets: Iterable[ModelType]) -> Iterator[str]:
    for target in targets:
        label = label_of(target)
        yield generations.counter_key(label, "gen")
        yield generations.counter_key(label, "epoch")


def _delete_dependents(model: ModelType) -> list[ModelType]:
    return [dep for target in write_targets(model) for dep in set_null_dependents(target)]


def _on_save(sender: ModelType, instance: models.Model, using: str, **kwargs: Any) -> None:
    targets = write_targets(sender)
    txn.schedule(using, _row_counters(sender, instance), map(label_of, targets), "save", _deliver)


def _on_delete(sender: ModelType, instance: models.Model, using: str, **kwargs: Any) -> None:
    dependents = _delete_dependents(sender)
    keys = [*_row_counters(sender, instance), *_coarse_counters(dependents)]
    labels = map(label_of, [*write_targets(sender), *dependents])
    txn.schedule(using, keys, labels, "delete", _deliver)


def _on_m2m_changed(
    sender: ModelType, instance: models.Model, action: str, model: ModelType, using: str, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    touched = [*write_targets(sender), *write_targets(type(instance)), *write_targets(model)]
    keys = [generations.counter_key(label_of(target), "gen") for target in touched]
    txn.schedule(using, keys, map(label_of, touched), "m2m", _deliver)


def schedule_coarse(model: ModelType, using: str, reason: str, *, delete: bool = False) -> None:
    """Invalidate every cached row and list of ``model`` after the current transaction commits."""
    targets = write_targets(model)
    if delete:
        targets = [*targets, *_delete_dependents(model)]
    txn.schedule(using, _coarse_counters(targets), map(label_of, targets), reason, _deliver)


def invalidate_model(model: ModelType, *, using: str | None = None) -> None:
    """Invalidate every cached row and list that reads ``model`` (after commit, if in one).

    Call it after writes cachewise cannot see: raw SQL, ``cursor.execute``, another program
    writing the same tables. ``using`` is the database the write went to (the router's write
    database for ``model`` by default); inside a transaction on it, the invalidation waits for
    the outermost commit.
    """
    db = using or router.db_for_write(model)
    schedule_coarse(model, db, "manual")


_RECEIVERS = (
    (post_save, _on_save, "cachewise.orm.post_save"),
    (post_delete, _on_delete, "cachewise.orm.post_delete"),
    (m2m_changed, _on_m2m_changed, "cachewise.orm.m2m_changed"),
)


def connect_receivers() -> None:
    """Connect the invalidation receivers for every model (idempotent; called from ready())."""
    for signal, receiver, uid in _RECEIVERS:
        signal.connect(receiver, dispatch_uid=uid, weak=False)


def disconnect_receivers() -> None:
    """Disconnect the receivers (tests, or projects that invalidate by hand)."""
    for signal, _, uid in _RECEIVERS:
        signal.disconnect(dispatch_uid=uid)
