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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import models
from django.utils import translation

from cachewise.exceptions import ConfigurationError
from cachewise.keys import encode_part, make_key
from cachewise.versions import Namespace

__all__ = ["NAMESPACE", "DependsOnError", "ScopedNamespace", "data_versions", "fragment_key"]

NAMESPACE = "fragment"


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
        return (self.namespace.name, self.scope, self.namespace.version(self.scope))


def _model_version(instance: models.Model) -> tuple[Any, ...]:
    label = instance._meta.label_lower
    if instance.pk is None:
        raise DependsOnError(f"depends_on got an unsaved {instance._meta.label} instance: it has no version")
    updated_at = getattr(instance, "updated_at", None)
    if updated_at is not None:
        return (label, instance.pk, updated_at)
    return (label, instance.pk, *_row_counters(instance))


def _row_counters(instance: models.Model) -> list[int]:
    # The ORM layer bumps these counters after every committed write of the row (rv), of the
    # model without row identity (epoch) and on escalation (global epoch): read all three.
    from cachewise.conf import conf
    from cachewise.orm import generations
    from cachewise.orm.deps import label_of

    if not conf.ORM_INVALIDATION:
        raise ConfigurationError(
            f"depends_on={instance._meta.label} instance: the model has no updated_at field and "
            "CACHEWISE_ORM_INVALIDATION is off, so nothing tells when the row changes; add an "
            "updated_at = DateTimeField(auto_now=True), or pass a Namespace you bump on writes"
        )
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


def _versions_of(value: Any, out: list[Any]) -> None:
    if isinstance(value, models.Model):
        out.append(_model_version(value))
    elif isinstance(value, ScopedNamespace):
        out.append(value.version())
    elif isinstance(value, Namespace):
        out.append(ScopedNamespace(value, None).version())
    elif isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], Namespace):
        out.append(ScopedNamespace(value[0], value[1]).version())
    elif isinstance(value, list | tuple | models.QuerySet):
        for item in value:
            _versions_of(item, out)
    elif value is None or value == "":
        raise DependsOnError(
            "depends_on resolved to nothing: check the variable name (a fragment that depends on "
            "nothing would never change)"
        )
    else:
        out.append(value)


def data_versions(depends_on: Iterable[Any]) -> list[Any]:
    """The data version of each ``depends_on`` value, in order (see the module docstring)."""
    out: list[Any] = []
    for value in depends_on:
        _versions_of(value, out)
    return out


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
    """The key of a fragment; values make_key cannot encode are keyed by ``str()`` like Django's."""
    return make_key(
        NAMESPACE,
        template_name,
        fragment_name,
        translation.get_language(),
        [_part(value) for value in vary_on],
        [_part(value) for value in versions],
    )
