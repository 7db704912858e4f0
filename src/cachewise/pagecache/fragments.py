"""Fragment keys for ``{% cache %}``: the template, the language, the vary values, the data versions.

A fragment cached by name only goes stale the moment its data changes. The key built here holds,
besides Django's fragment name and vary-on values, the template the tag sits in, the active
language, and the *data version* of every ``depends_on`` object, so that an edit produces a new
key on the next request with no invalidation code:

=================================  ======================================================
``depends_on=`` value              data version in the key
=================================  ======================================================
model instance with ``updated_at`` label, pk and ``updated_at`` (free: no round trip)
other model instance               label, pk and the ORM's version counters of that row
                                   (bumped after commit on every save/delete/bulk write;
                                   needs ``CACHEWISE_ORM_INVALIDATION``, the default)
``Namespace``                      its version for scope ``None`` (``ns.bump(None)``)
``(Namespace, scope)`` or          its version for ``scope`` (``ns.bump(scope)``)
``ns|scope:value``
``int``/``str``/date...            the value itself (an explicit version)
list/tuple of the above            each of them
=================================  ======================================================

A ``depends_on`` that resolves to nothing (a typo, a missing context variable) raises instead of
silently caching forever.

The versions are read when the tag renders, but the view loaded the data *before*: a write that
commits in between would otherwise be rendered from the old data and stored under the new
version. So a fill is only stored when the data is proven not older than the versions:

* a model instance with ``updated_at`` keys the fragment by the data it holds: always safe;
* any other instance is read again from the primary database *after* its versions were read
  (only on a miss, one query per instance): the fragment is stored only if the row still holds
  the values the instance was rendered from, and only where such a read sees committed data
  (:func:`cachewise.orm.txn.fill_allowed`);
* a ``Namespace`` version is read together with the server clock (Redis): the fragment is stored
  only if the scope was last bumped before the current request started (``request_started``).
  Outside a request, and on backends whose versions do not follow a clock, nothing tells when
  the data was loaded and the fill is stored as before (see docs/guarantees.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from django.db import models, router

from cachewise import recovery
from cachewise.compute.namespace import Namespace
from cachewise.conf import conf
from cachewise.exceptions import CacheUnavailableError, ConfigurationError
from cachewise.keys import encode_part, private_key
from cachewise.orm import generations, txn
from cachewise.orm.deps import label_of
from cachewise.orm.invalidation import delivered
from cachewise.store.choice import get_store

from . import active

__all__ = [
    "NAMESPACE",
    "DependsOnError",
    "ScopedNamespace",
    "data_versions",
    "fragment_key",
    "mark_request_finished",
    "mark_request_started",
    "resolve",
]

NAMESPACE = "fragment"

#: ``time.monotonic()`` when the current request started; data a view renders is loaded after.
_request_started: ContextVar[float | None] = ContextVar("cachewise_request_started", default=None)

#: Returns True when a rendered fragment may be stored under the versions read for it.
Check = Callable[[], bool]


def mark_request_started(**kwargs: Any) -> None:
    """``request_started`` receiver: remember when the request began (connected in ``ready()``)."""
    _request_started.set(time.monotonic())


def mark_request_finished(**kwargs: Any) -> None:
    """``request_finished`` receiver: code the thread runs next is outside any request."""
    _request_started.set(None)


class DependsOnError(ValueError):
    """A ``depends_on`` value that cannot give a data version: a bug in the template or model."""


class ScopedNamespace:
    """A ``(Namespace, scope)`` pair, as built in templates by ``ns|scope:value``."""

    __slots__ = ("namespace", "scope")

    def __init__(self, namespace: Namespace, scope: Any) -> None:
        self.namespace = namespace
        self.scope = scope

    def version(self) -> tuple[str, Any, int]:
        """The namespace name, the scope and the scope's current version (one round trip)."""
        return self.versioned()[0]

    def versioned(self) -> tuple[tuple[str, Any, int], Check]:
        """The version as :meth:`version`, and a check: "not bumped since the request began"."""

        recovery.tick()
        namespace = self.namespace
        version, clock = get_store(namespace.alias).version_clock(
            namespace.counter_key(self.scope), namespace.ttl
        )
        return (namespace.name, self.scope, version), _bumped_before_request(version, clock)


def _bumped_before_request(version: int, clock: int | None) -> Check:
    """A version is >= the server time (us) of its last bump: compare it with the request start.

    The start is placed on the server clock by durations measured here only (no clock skew):
    ``clock`` was read at most ``elapsed`` after the request started, so ``clock - elapsed`` is
    at or before the start, which errs on the side of not storing.
    """
    started = _request_started.get()
    if started is None or clock is None:
        return _always
    elapsed_us = int((time.monotonic() - started) * 1_000_000)
    return (lambda: True) if version < clock - elapsed_us else _never


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def _model_version(instance: models.Model, checks: list[Check]) -> tuple[Any, ...]:
    label = instance._meta.label_lower
    if instance.pk is None:
        raise DependsOnError(f"depends_on got an unsaved {instance._meta.label} instance: it has no version")
    updated_at = getattr(instance, "updated_at", None)
    if updated_at is not None:
        return (label, instance.pk, updated_at)
    version = (label, instance.pk, *_row_counters(instance))
    checks.append(lambda: _row_unchanged(instance))  # after the counters were read
    return version


def _row_unchanged(instance: models.Model) -> bool:
    """True when the primary database still holds the values ``instance`` was loaded with."""
    model = type(instance)
    using = router.db_for_write(model)  # a lagging replica would agree with old data
    if not txn.fill_allowed(using):  # a snapshot may predate the counters just read
        return False
    deferred = instance.get_deferred_fields()
    names = [f.attname for f in model._meta.concrete_fields if f.attname not in deferred]
    current = model._base_manager.using(using).filter(pk=instance.pk).values(*names).first()
    return current is not None and all(current[name] == getattr(instance, name) for name in names)


def _row_counters(instance: models.Model) -> list[int]:
    # The ORM layer bumps these counters after every committed write of the row (rv), of the
    # model without row identity (epoch) and on a global bump (global version): read all three.
    if not conf.ORM_INVALIDATION:
        raise ConfigurationError(
            f"depends_on={instance._meta.label} instance: the model has no updated_at field and "
            "CACHEWISE_ORM_INVALIDATION is off, so nothing tells when the row changes; add an "
            "updated_at = DateTimeField(auto_now=True), or pass a Namespace you bump on writes"
        )
    if not delivered(conf.ORM_CACHE):
        raise CacheUnavailableError("an ORM invalidation is pending: the fragment is rendered uncached")
    label = label_of(type(instance))
    keys = [
        generations.counter_key(label, "rv", instance.pk),
        generations.counter_key(label, "epoch"),
        generations.GLOBAL_EPOCH,
    ]
    _, counters = generations.read(conf.ORM_CACHE, [], keys, conf.ORM_COUNTER_TTL)
    if counters is None:
        raise ConfigurationError(f"the ORM version counters of {label} could not be read")
    return counters


def _scoped(scoped: ScopedNamespace, out: list[Any], checks: list[Check]) -> None:
    version, check = scoped.versioned()
    out.append(version)
    checks.append(check)


def _versions_of(value: Any, out: list[Any], checks: list[Check]) -> None:
    if isinstance(value, models.Model):
        out.append(_model_version(value, checks))
    elif isinstance(value, ScopedNamespace):
        _scoped(value, out, checks)
    elif isinstance(value, Namespace):
        _scoped(ScopedNamespace(value, None), out, checks)
    elif isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], Namespace):
        _scoped(ScopedNamespace(value[0], value[1]), out, checks)
    elif isinstance(value, list | tuple | models.QuerySet):
        for item in value:
            _versions_of(item, out, checks)
    elif value is None or value == "":
        raise DependsOnError(
            "depends_on resolved to nothing: check the variable name (a fragment that depends on "
            "nothing would never change)"
        )
    else:
        out.append(value)


def resolve(depends_on: Iterable[Any]) -> tuple[list[Any], list[Check]]:
    """The data versions of ``depends_on`` and the checks a fill under them must pass.

    Run the checks after rendering, before storing: each returns False when the data rendered
    may be older than the versions (see the module docstring).
    """
    out: list[Any] = []
    checks: list[Check] = []
    for value in depends_on:
        _versions_of(value, out, checks)
    return out, checks


def data_versions(depends_on: Iterable[Any]) -> list[Any]:
    """The data version of each ``depends_on`` value, in order (see the module docstring)."""
    return resolve(depends_on)[0]


def _part(value: Any) -> Any:
    # Django's tag keys vary-on values by str(); keep that for types make_key cannot encode.
    try:
        encode_part(value)
    except TypeError:
        return str(value)
    return value


def fragment_key(
    template_name: str | None, fragment_name: str, vary_on: Sequence[Any], versions: Sequence[Any]
) -> str:
    """The key of a fragment, its parts hashed (:func:`~cachewise.keys.private_key`): vary-on values
    such as a user's e-mail never appear in key names. Values make_key cannot encode are keyed by
    ``str()`` like Django's."""
    return private_key(
        NAMESPACE,
        template_name,
        fragment_name,
        active.language(),
        [_part(value) for value in vary_on],
        [_part(value) for value in versions],
    )
