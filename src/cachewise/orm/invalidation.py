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
counted and sent as ``cache_degraded``, recorded in the database for every other process (see
:mod:`cachewise.recovery`; inside the write's own transaction when the cache is already known to
be down), and escalated: this process bumps the global ORM epoch (which every stamp includes) as
soon as the cache answers again, and until then serves ORM reads from the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.core.cache import caches
from django.db import models, router, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from cachewise import recovery
from cachewise.conf import conf
from cachewise.exceptions import CacheServerError, CacheUnavailableError, UnconfirmedWriteError
from cachewise.monitoring.metrics import record
from cachewise.resilience import RateLimitedLog
from cachewise.signals import cache_degraded, cache_invalidated

from . import generations, txn
from .deps import ModelType, label_of, set_null_dependents, write_targets

__all__ = [
    "connect_receivers",
    "disconnect_receivers",
    "invalidate_model",
    "invalidate_rows",
    "schedule_coarse",
]

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


#: Called with the model labels of each write batch once its invalidation is delivered (the
#: advisor counts its change rate there; it sits above the ORM, so it registers).
_write_listeners: list[Callable[[Iterable[str]], None]] = []


def on_committed_write(listener: Callable[[Iterable[str]], None]) -> None:
    """Call ``listener(labels)`` after each committed, invalidated write batch (idempotent)."""
    if listener not in _write_listeners:
        _write_listeners.append(listener)


def _deliver(batch: txn.PendingInvalidation) -> None:
    alias = orm_alias()
    keys = list(batch.counter_keys)
    escalated = alias in _escalate
    if escalated:
        keys.append(generations.GLOBAL_EPOCH)
    try:
        generations.bump(
            alias, keys, counter_ttl(), replicas=conf.ORM_REPLICAS, replica_timeout=conf.ORM_REPLICA_TIMEOUT
        )
    except (CacheUnavailableError, CacheServerError) as exc:
        # The write has committed: an outage or a server error (OOM) is reported, recorded for
        # other processes and escalated, never dropped; raising would fail a committed write.
        _report_failure(alias, exc, batch.reasons)
        recovery.record(alias, "orm", keys)  # the write has committed: autocommit
        return
    except UnconfirmedWriteError as exc:
        _report_unconfirmed(alias, exc)  # delivered to the primary: go on as delivered
    if escalated:
        _escalate.pop(alias, None)
    for listener in list(_write_listeners):  # the advisor's change rate: committed, and now invalidated
        listener(batch.reasons)
    for label, reason in batch.reasons.items():
        namespace = generations.namespace_for(label)
        record("invalidate", alias, namespace)
        cache_invalidated.send(sender=invalidate_model, alias=alias, namespace=namespace, reason=reason)


#: One ERROR line per (alias, error type) every 10 s: during an outage every save fails the same
#: way, and a line per save buries everything else (the suppressed lines are counted).
_failure_log = RateLimitedLog(10.0, logger)


def _report_failure(alias: str, exc: Exception, reasons: dict[str, str]) -> None:
    with _escalation_lock:
        _escalate.setdefault(alias, 0.0)
    _failure_log.log(
        logging.ERROR,
        (alias, "unavailable" if isinstance(exc, CacheUnavailableError) else type(exc).__name__),
        "cachewise could not invalidate cached ORM data of %s on cache %r (%s); every ORM entry "
        "will be invalidated when the cache answers again",
        ", ".join(sorted(reasons)),
        alias,
        exc,
    )
    record("error", alias, "orm")
    # The save committed and its invalidation is recorded for later delivery: the caller saw no error.
    cache_degraded.send(
        sender=invalidate_model, alias=alias, operation="invalidate", error=exc, action="deferred"
    )


def _report_unconfirmed(alias: str, exc: UnconfirmedWriteError) -> None:
    """A bump no replica confirmed in time (``CACHEWISE_ORM_REPLICAS``): it is on the primary and
    every reader of that primary sees it. If the primary fails before replicating it, the promoted
    replica has another ``run_id``, so the recovery check moves the global ORM epoch there within
    ``CACHEWISE_RECOVERY_INTERVAL`` (:mod:`cachewise.recovery`): the bound without the option."""
    _failure_log.log(
        logging.WARNING,
        (alias, "unconfirmed"),
        "cachewise: %s; a failover now would serve the pre-save data until the recovery check "
        "(CACHEWISE_RECOVERY_INTERVAL)",
        exc,
    )
    record("error", alias, "orm")
    cache_degraded.send(
        sender=invalidate_model, alias=alias, operation="invalidate", error=exc, action="unconfirmed"
    )


def invalidations_pending() -> bool:
    """True when an invalidation of any alias is outstanding in this process (a cheap test)."""
    return bool(_escalate)


def known_down(alias: str) -> bool:
    """True when this process already knows the cache of ``alias`` is unreachable."""
    if alias in _escalate:
        return True

    resilience = getattr(caches[alias], "resilience", None)
    return resilience is not None and resilience.breaker.state != "closed"


def delivered(alias: str) -> bool:
    """True when no invalidation of ``alias`` is outstanding in this process.

    First run the periodic recovery checks (:func:`cachewise.recovery.tick`: invalidations other
    processes recorded during an outage, a server restarted from an older snapshot). When an
    invalidation of this process is outstanding, retry the escalation (at most once a second):
    bump the global epoch, which makes every stamped ORM entry unreachable. Readers bypass the
    cache until it succeeds.
    """
    recovery.tick()
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
    except (CacheUnavailableError, CacheServerError):  # still failing: keep bypassing the cache
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


def _schedule(using: str, keys: Iterable[str], labels: Iterable[str], reason: str) -> None:
    """``txn.schedule`` with ``_deliver``; recorded in the write's transaction if the cache is down.

    A bump after commit would fail anyway: the record commits with the write, so no crash of
    this process between the commit and the failed bump can lose the invalidation.
    """
    keys = list(keys)
    alias = orm_alias()
    if known_down(alias) and transaction.get_connection(using).in_atomic_block:
        recovery.record(alias, "orm", keys, using=using)
    txn.schedule(using, keys, labels, reason, _deliver)


def _on_save(sender: ModelType, instance: models.Model, using: str, **kwargs: Any) -> None:
    targets = write_targets(sender)
    _schedule(using, _row_counters(sender, instance), map(label_of, targets), "save")


def _on_delete(sender: ModelType, instance: models.Model, using: str, **kwargs: Any) -> None:
    dependents = _delete_dependents(sender)
    keys = [*_row_counters(sender, instance), *_coarse_counters(dependents)]
    labels = map(label_of, [*write_targets(sender), *dependents])
    _schedule(using, keys, labels, "delete")


def _on_m2m_changed(
    sender: ModelType, instance: models.Model, action: str, model: ModelType, using: str, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    touched = [*write_targets(sender), *write_targets(type(instance)), *write_targets(model)]
    keys = [generations.counter_key(label_of(target), "gen") for target in touched]
    _schedule(using, keys, map(label_of, touched), "m2m")


def schedule_coarse(model: ModelType, using: str, reason: str, *, delete: bool = False) -> None:
    """Invalidate every cached row and list of ``model`` after the current transaction commits."""
    targets = write_targets(model)
    if delete:
        targets = [*targets, *_delete_dependents(model)]
    _schedule(using, _coarse_counters(targets), map(label_of, targets), reason)


def invalidate_model(model: ModelType, *, using: str | None = None) -> None:
    """Invalidate every cached row and list that reads ``model`` (after commit, if in one).

    Call it after writes cachewise cannot see: raw SQL, ``cursor.execute``, another program
    writing the same tables. ``using`` is the database the write went to (the router's write
    database for ``model`` by default); inside a transaction on it, the invalidation waits for
    the outermost commit.
    """
    db = using or router.db_for_write(model)
    schedule_coarse(model, db, "manual")


def invalidate_rows(model: ModelType, pks: Iterable[Any], *, using: str | None = None) -> None:
    """Invalidate the cached rows ``pks`` of ``model`` and the lists that read it, not its other rows.

    For writes that name their rows but send no signal (an ``UPDATE ... WHERE pk = ...`` on a plain
    queryset, as ``cachewise.increment_field`` does); after the commit, if in one.
    """
    db = using or router.db_for_write(model)
    targets = write_targets(model)
    keys = [generations.counter_key(label_of(target), "gen") for target in targets]
    keys += [generations.counter_key(label_of(target), "rv", pk) for target in targets for pk in pks]
    txn.schedule(db, keys, map(label_of, targets), "rows", _deliver)


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
