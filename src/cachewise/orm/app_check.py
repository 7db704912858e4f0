"""cachewise.E005: ORM caching used while "cachewise" is not in ``INSTALLED_APPS``.

Without the app, ``ready()`` never connects the save/delete receivers, so cached rows and lists
are never invalidated: stale data, silently. For the same reason this check cannot be registered
in ``ready()``: importing :mod:`cachewise.orm` registers it (the rest of the checks live in
:mod:`cachewise.checks`, registered by the app).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Error, Tags, register

from .managers import CachewiseQuerySetMixin
from .rows import CachedRows

__all__ = ["check_orm_needs_the_app"]


def _models_using_cachewise() -> list[str]:
    users = []
    for model in apps.get_models():
        if any(isinstance(value, CachedRows) for value in vars(model).values()):
            users.append(f"{model._meta.label} (CachedRows)")
        elif any(
            issubclass(getattr(manager, "_queryset_class", object), CachewiseQuerySetMixin)
            for manager in model._meta.managers
        ):
            users.append(f"{model._meta.label} (CachewiseManager)")
    return users


@register(Tags.models)
def check_orm_needs_the_app(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E005: cachewise's ORM caching is imported, the app that invalidates it is not installed."""
    if apps.is_installed("cachewise"):
        return []
    used = _models_using_cachewise() or ["cachewise.orm (cached_list, CachedRows, CachewiseManager)"]
    return [
        Error(
            f"cachewise's ORM caching is used ({'; '.join(used)}) but 'cachewise' is not in "
            "INSTALLED_APPS: its invalidation receivers are never connected, so cached rows and "
            "lists stay stale after every write.",
            hint="Add 'cachewise' to INSTALLED_APPS and run `manage.py migrate cachewise`.",
            obj="INSTALLED_APPS",
            id="cachewise.E005",
        )
    ]
