"""System checks for how a project is set up around cachewise (see docs/checks.md).

The system checks of the caches themselves live in :mod:`cachewise.checks.caches`; these catch
the traps of adding cachewise to a project: a cache left without its URL, OPTIONS the backend
cannot use, ORM caching without the app that invalidates it, sessions that a second worker or the
server cannot see, and misspelt settings.

========================  =========================================================================
``cachewise.E003``        deploy: a cache from ``caches_from_env()`` whose variable (REDIS_URL) is unset
``cachewise.E004``        a cachewise cache whose OPTIONS or LOCATION cannot work (bad value)
``cachewise.E005``        ORM caching used while "cachewise" is not in INSTALLED_APPS (stale data)
``cachewise.E006``        deploy: cache-backed sessions on a per-process (LocMem) or Dummy cache
``cachewise.E007``        deploy, live: a Redis cache on a logical database the server does not have
``cachewise.W009``        with ``--database``: the counters' batch table is not migrated
``cachewise.W010``        an unknown ``CACHEWISE_*`` setting (with the closest known name)
``cachewise.W011``        counters used while "cachewise" is not in INSTALLED_APPS (flush not crash-safe)
========================  =========================================================================

E005 and W011 live in :mod:`cachewise.orm.app_check` and :mod:`cachewise.counters.app_check`:
importing the ORM or the counters registers them (the app's ``ready()`` never runs when it is not
installed); the others are registered when the app loads.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import connections, router

from cachewise.backends.near import NearCacheRefused
from cachewise.backends.options import ALLOWED_OPTIONS, BackendOptions
from cachewise.backends.unconfigured import BACKEND
from cachewise.checks.redis_probe import LIVE_CHECK_TIMEOUT, connect, is_cachewise_backend, redis_target
from cachewise.conf import CachewiseSettings
from cachewise.exceptions import ConfigurationError
from cachewise.monitoring.advisor.settings import AdvisorSettings

__all__ = [
    "check_backend_configuration",
    "check_counter_table",
    "check_redis_databases_exist",
    "check_sessions_cache_is_shared",
    "check_settings_names",
    "check_unconfigured_caches",
    "known_settings",
]

Messages = list[CheckMessage]

_LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
_DUMMY = "django.core.cache.backends.dummy.DummyCache"


def _caches() -> dict[str, dict[str, Any]]:
    configured: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {}) or {}
    return configured


# --------------------------------------------------------------------------- E003


@register(Tags.caches, deploy=True)
def check_unconfigured_caches(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E003 (deploy): ``caches_from_env()`` ran without its variable, so the alias has no server.

    Deploy-only: the placeholder exists so that build steps (collectstatic, makemigrations) run
    without a Redis URL; only a production process must have one.
    """

    return [
        Error(
            f"CACHES[{alias!r}] has no Redis URL: environment variable {entry.get('LOCATION')} was not "
            "set when settings were loaded (CACHES = caches_from_env()), so every use of this cache "
            "raises CacheNotConfiguredError.",
            hint=f"Set {entry.get('LOCATION')} to your Redis URL in the production environment, for "
            "example redis://:password@cache.internal:6379/0.",
            obj=alias,
            id="cachewise.E003",
        )
        for alias, entry in _caches().items()
        if entry.get("BACKEND") == BACKEND
    ]


# --------------------------------------------------------------------------- E004


@register(Tags.caches)
def check_backend_configuration(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E004: OPTIONS values or a LOCATION that cachewise's backend refuses (unknown keys: E002).

    The backend reports these at its first operation rather than when it is built (Django's own
    cache checks build every cache, and a traceback there would hide this message).
    """
    messages: Messages = []
    for alias, entry in _caches().items():
        options = entry.get("OPTIONS") or {}
        if not is_cachewise_backend(entry.get("BACKEND")) or set(options) - ALLOWED_OPTIONS:
            continue
        try:
            BackendOptions(entry.get("LOCATION") or "", options)
        except NearCacheRefused:
            continue  # reported by cachewise.E060 (cachewise.backends.near_checks)
        except ConfigurationError as exc:
            messages.append(
                Error(
                    f"CACHES[{alias!r}] cannot work: {exc}. Every operation on this cache raises this error.",
                    hint="Correct the value in CACHES (docs/backend.md lists every option).",
                    obj=alias,
                    id="cachewise.E004",
                )
            )
    return messages


# --------------------------------------------------------------------------- E005


# (E005 and W011 live beside what they guard: cachewise.orm.app_check, cachewise.counters.app_check.)


# --------------------------------------------------------------------------- E006


_CACHE_SESSION_ENGINE = "django.contrib.sessions.backends.cache"
_CACHED_DB_SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"


@register(Tags.caches, deploy=True)
def check_sessions_cache_is_shared(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E006 (deploy): cache-backed sessions on a cache each process keeps for itself.

    With LocMem each worker has its own sessions: a user logged in by one worker is anonymous
    on the next, and a logout in one worker leaves the session alive in the others' caches
    (also with ``cached_db``). DummyCache with the ``cache`` engine stores no session at all.
    """
    engine = getattr(settings, "SESSION_ENGINE", "")
    if engine not in (_CACHE_SESSION_ENGINE, _CACHED_DB_SESSION_ENGINE):
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    backend = _caches().get(alias, {}).get("BACKEND", "")
    if backend != _LOCMEM and not (backend == _DUMMY and engine == _CACHE_SESSION_ENGINE):
        return []
    name = backend.rsplit(".", 1)[-1]
    return [
        Error(
            f"Sessions (SESSION_ENGINE={engine!r}) are stored in CACHES[{alias!r}], a {name}: "
            + (
                "it stores nothing, so nobody stays logged in."
                if backend == _DUMMY
                else "each process has its own copy, so a user logged in by one worker is unknown "
                "to the others, and a logout leaves the session alive in the other workers."
            ),
            hint="Point SESSION_CACHE_ALIAS at a shared Redis alias (caches_from_env() adds "
            "'sessions'), or use SESSION_ENGINE = 'django.contrib.sessions.backends.db'.",
            obj=alias,
            id="cachewise.E006",
        )
    ]


# --------------------------------------------------------------------------- E007


def _missing_database(target: Any) -> str | None:
    """The server's refusal when ``target``'s database does not exist; None when it does, or
    when the server cannot be asked (W008 reports an unreachable server)."""

    client = None
    try:
        client = connect(target, LIVE_CHECK_TIMEOUT)  # SELECTs the database on connect
        client.ping()
    except Exception as exc:  # noqa: BLE001 - only "DB index is out of range" is this check's business
        text = str(exc)
        return text if "DB index" in text or "invalid DB" in text else None
    finally:
        if client is not None:
            client.close()
    return None


def _redis_targets() -> Iterator[tuple[str, Any]]:

    for alias, entry in _caches().items():
        try:
            target = redis_target(alias, entry)
        except ConfigurationError:
            continue
        if target is not None and target.db != 0:
            yield alias, target


@register(Tags.caches, deploy=True)
def check_redis_databases_exist(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E007 (deploy, live): a Redis cache on a logical database its server does not have.

    A stock server has 16 (``databases 16``): ``redis://host/16`` fails every command of that
    alias, and for sessions that means nobody can log in. Database 0 always exists.
    """
    messages: Messages = []
    for alias, target in _redis_targets():
        refusal = _missing_database(target)
        if refusal is None:
            continue
        messages.append(
            Error(
                f"CACHES[{alias!r}] uses database {target.db} of {target.address}, which the server "
                f"does not have ({refusal}): every command of this cache fails"
                + (", so nobody can log in." if alias == _session_alias() else "."),
                hint="Use a database below the server's `databases` setting (16 by default: 0-15); "
                "with caches_from_url() pass sessions_db= or use a lower database in the URL.",
                obj=alias,
                id="cachewise.E007",
            )
        )
    return messages


def _session_alias() -> str | None:
    engine = getattr(settings, "SESSION_ENGINE", "")
    if engine not in (_CACHE_SESSION_ENGINE, _CACHED_DB_SESSION_ENGINE):
        return None
    return str(getattr(settings, "SESSION_CACHE_ALIAS", "default"))


# --------------------------------------------------------------------------- W009


@register(Tags.database)
def check_counter_table(
    app_configs: Sequence[AppConfig] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> Messages:
    """W009 (``check --database``, ``migrate``): the table Counter.flush records batches in is missing.

    Database checks run only when a command names databases, as Django's own do: a plain
    ``check`` opens no database connection. A Warning, not an Error: ``migrate`` runs this
    before migrating, and an Error would stop the very command that fixes it.
    """
    if not databases or not apps.is_installed("cachewise"):
        return []
    from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

    messages: Messages = []
    table = CounterBatch._meta.db_table
    for alias in databases:
        if not router.allow_migrate_model(alias, CounterBatch):
            continue
        with connections[alias].cursor() as cursor:
            tables = connections[alias].introspection.table_names(cursor)
        if table not in tables:
            messages.append(
                CheckWarning(
                    f"The {table!r} table is missing from database {alias!r}: Counter.flush records "
                    "every applied batch there (what makes a flush exactly-once) and fails without it.",
                    hint="Run `manage.py migrate cachewise`.",
                    obj=alias,
                    id="cachewise.W009",
                )
            )
    return messages


# --------------------------------------------------------------------------- W010


def known_settings() -> frozenset[str]:
    """Every ``CACHEWISE_*`` setting cachewise reads: the properties of ``conf`` (and the advisor's)."""
    names = {name for name, value in vars(CachewiseSettings).items() if isinstance(value, property)}
    names |= {
        f"ADVISOR_{name}" for name, value in vars(AdvisorSettings).items() if isinstance(value, property)
    }
    return frozenset(f"CACHEWISE_{name}" for name in names)


@register(Tags.caches)
def check_settings_names(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W010: a ``CACHEWISE_*`` setting cachewise does not read, most likely a misspelt one."""
    known = known_settings()
    messages: Messages = []
    for name in sorted(n for n in dir(settings) if n.startswith("CACHEWISE_") and n not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        messages.append(
            CheckWarning(
                f"Setting {name} is not a cachewise setting: it is ignored, and whatever it was "
                "meant to change keeps its default.",
                hint=(f"Did you mean {close[0]}? " if close else "")
                + "docs/configuration.md lists every CACHEWISE_* setting.",
                obj=name,
                id="cachewise.W010",
            )
        )
    return messages
