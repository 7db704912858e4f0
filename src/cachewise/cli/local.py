"""Refuse operations that would act only on this process's private cache.

``manage.py`` runs in a process of its own. On a per-process cache (Django's LocMemCache) an
invalidation or a counter flush there touches only that process's empty copy, while every web
worker keeps its own: reporting success would be a lie, so these commands stop with exit 1.
"""

from __future__ import annotations

from django.core.cache import InvalidCacheBackendError, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

__all__ = ["refuse_per_process_cache"]


def refuse_per_process_cache(alias: str, action: str) -> None:
    """Raise ``CommandError`` when cache ``alias`` is a per-process cache (LocMem or a subclass)."""
    try:
        cache = caches[alias]
    except (InvalidCacheBackendError, ImproperlyConfigured):  # an unknown alias or a backend that
        # cannot be built: the operation itself reports it in its own words
        return
    if isinstance(cache, LocMemCache):
        raise CommandError(
            f"cache {alias!r} is a {type(cache).__name__}, a cache inside each process: {action} "
            "would act only on this command's own process, not on your web workers' caches, so "
            "nothing would change for them. Use a shared cache (Redis: CACHES = caches_from_env()), "
            "or do it inside the application process."
        )
