"""System checks for configurations copied from django-redis (ids cachewise.W050-W052).

A django-redis OPTIONS key that cannot be translated (ShardClient, a custom client, serializer
or pool class...) is reported by ``cachewise.E004`` with the translation's message.

========================  =========================================================================
``cachewise.W050``        django-redis' global settings (``DJANGO_REDIS_*``, ``CACHE_HERD_TIMEOUT``)
                          while no django-redis cache is left: they have no effect on cachewise
``cachewise.W051``        ``CLIENT_CLASS`` HerdClient: plain ``get``/``set`` get no herd protection
``cachewise.W052``        ``COMPRESSOR`` gzip or lzma: cachewise writes zlib instead
========================  =========================================================================

Registered by :mod:`cachewise.checks.caches` (imported in the app's ``ready()``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from cachewise.backends.djredis_options import COMPRESSOR_FALLBACKS
from cachewise.checks.redis_probe import is_cachewise_backend

__all__ = [
    "check_django_redis_globals",
    "check_herd_client",
    "check_lossy_compressor",
]

#: django-redis' settings outside CACHES, and what replaces each under cachewise.
_GLOBALS = {
    "DJANGO_REDIS_IGNORE_EXCEPTIONS": "OPTIONS on_read_error / on_write_error (or IGNORE_EXCEPTIONS)",
    "DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS": "the cachewise.resilience logger (always on, rate-limited)",
    "DJANGO_REDIS_LOGGER": "the cachewise.resilience logger",
    "DJANGO_REDIS_SCAN_ITERSIZE": "the itersize argument of delete_pattern() / iter_keys()",
    "DJANGO_REDIS_CONNECTION_FACTORY": "nothing: cachewise builds its own pools (OPTIONS SENTINELS works)",
    "DJANGO_REDIS_CLOSE_CONNECTION": "nothing: connections return to a shared pool after each command",
    "CACHE_HERD_TIMEOUT": "get_or_compute()/@cached with stale_ttl or stampede='xfetch'",
}

Messages = list[CheckMessage]


def _cachewise_caches() -> Iterator[tuple[str, dict[str, Any]]]:
    for alias, entry in (getattr(settings, "CACHES", {}) or {}).items():
        if is_cachewise_backend(entry.get("BACKEND")):
            yield alias, entry


def _path(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else f"{getattr(value, '__module__', '')}.{getattr(value, '__name__', '')}"
    )


@register(Tags.caches)
def check_django_redis_globals(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W050: django-redis' global settings left behind once no cache uses django-redis."""
    caches = getattr(settings, "CACHES", {}) or {}
    if any(str(entry.get("BACKEND", "")).startswith("django_redis.") for entry in caches.values()):
        return []
    if not any(True for _ in _cachewise_caches()):
        return []
    return [
        CheckWarning(
            f"settings.{name} is a django-redis setting: cachewise ignores it.",
            hint=f"Use {instead}, and remove the setting.",
            id="cachewise.W050",
        )
        for name, instead in _GLOBALS.items()
        if hasattr(settings, name)
    ]


@register(Tags.caches)
def check_herd_client(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W051: HerdClient promised herd protection on get/set; cachewise gives it through get_or_compute."""
    return [
        CheckWarning(
            f"CACHES[{alias!r}] names django-redis' HerdClient: cachewise's plain get()/set() "
            "do not serve a stale value to everyone while one caller recomputes.",
            hint="Move the hot recomputations to cachewise.get_or_compute(..., stale_ttl=...) or "
            "@cached(stampede='lock'|'xfetch'), which make that promise; then remove CLIENT_CLASS.",
            obj=alias,
            id="cachewise.W051",
        )
        for alias, entry in _cachewise_caches()
        if _path((entry.get("OPTIONS") or {}).get("CLIENT_CLASS", "")).endswith("HerdClient")
    ]


@register(Tags.caches)
def check_lossy_compressor(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W052: gzip/lzma have no id in cachewise's header byte, so values are compressed with zlib."""
    return [
        CheckWarning(
            f"CACHES[{alias!r}]['OPTIONS']['COMPRESSOR'] is django-redis' gzip or lzma compressor: "
            "cachewise compresses with zlib instead (values it writes are zlib, whatever this says).",
            hint="Write OPTIONS={'compressor': 'zlib'} (or 'zstd', 'lz4') to say what happens.",
            obj=alias,
            id="cachewise.W052",
        )
        for alias, entry in _cachewise_caches()
        if _path((entry.get("OPTIONS") or {}).get("COMPRESSOR", "")) in COMPRESSOR_FALLBACKS
    ]
