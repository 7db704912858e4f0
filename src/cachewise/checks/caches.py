"""System checks of the caches and their Redis servers (``manage.py check [--deploy]``).

Every check has a stable id, a message saying what is wrong and why it matters, and a hint saying
what to change; docs/checks.md explains each. Registered with ``Tags.caches`` when the app loads
(``CachewiseConfig.ready`` imports this module).

========================  =========================================================================
``cachewise.E001``        deploy: the default cache is LocMem or Dummy while ``DEBUG`` is False
``cachewise.E002``        unknown keys in a cachewise backend's ``OPTIONS`` (a misspelt option)
``cachewise.W001``        a Redis cache without ``KEY_PREFIX``
``cachewise.W002``        cache-backed sessions in the same Redis database as another cache
``cachewise.W003``        a Redis cache without a socket timeout
``cachewise.W004``        cache middleware in the wrong order, or half of the pair
``cachewise.W005``        Django's site-wide cache middleware on a site with logins
``cachewise.W006``        deploy, live: the Redis server has no ``maxmemory``
``cachewise.W007``        deploy, live: ``maxmemory-policy noeviction`` (writes refused when full)
``cachewise.W008``        deploy, live: the Redis server could not be reached to run W006/W007
``cachewise.W025``        deploy, live: cache sessions share an evicting Redis server with a cache
``cachewise.E030``        deploy, live: counters on a Redis server that can evict them (``counter_checks``)
``cachewise.E060``        ``near_cache`` on Cluster, Sentinel or replica reads (``checks.near``)
========================  =========================================================================

The live checks connect with a short timeout of their own and never retry, so a server that is
down costs at most about a second per server and is reported (W008), never waited on.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning

from cachewise.backends import redis as backend

from .redis_probe import (
    LIVE_CHECK_TIMEOUT,
    RedisTarget,
    configured_caches,
    connect,
    explain_error,
    is_cachewise_backend,
    redis_targets,
)

__all__ = [
    "LIVE_CHECK_TIMEOUT",
    "allowed_backend_options",
    "check_backend_options",
    "check_default_cache_is_shared",
    "check_key_prefix",
    "check_middleware_order",
    "check_redis_memory",
    "check_sessions_database",
    "check_sessions_eviction",
    "check_site_cache_with_authentication",
    "check_socket_timeouts",
]

#: Seconds the live checks wait for a Redis server (connect, then each reply).

_LOCAL_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache": "LocMemCache",
    "django.core.cache.backends.dummy.DummyCache": "DummyCache",
}
_CACHE_SESSION_ENGINES = {
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
}
_FAMILIES = ("django.middleware.cache.", "cachewise.middleware.")
_UPDATE, _FETCH = "UpdateCacheMiddleware", "FetchFromCacheMiddleware"
#: Middleware that adds a Vary header or a cookie to responses (Django's own list for cache order).
_RESPONSE_CHANGERS = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.locale.LocaleMiddleware",
)
_AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"
_DJANGO_SITE_CACHE = tuple(f"django.middleware.cache.{name}" for name in (_UPDATE, _FETCH, "CacheMiddleware"))

#: What the backend accepted when this check was written; used only if the backend module does
#: not export ALLOWED_OPTIONS itself.
_FALLBACK_ALLOWED_OPTIONS = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "max_connections",
        "pool_timeout",
        "username",
        "password",
        "db",
    }
)

Messages = list[CheckMessage]


# --------------------------------------------------------------------------- configuration


@register(Tags.caches, deploy=True)
def check_default_cache_is_shared(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E001 (deploy): LocMem or Dummy as the default cache with ``DEBUG=False``.

    An Error, because it breaks correctness rather than speed: a per-process cache cannot see an
    invalidation made in another worker (stale pages after a write), and its locks and counters
    coordinate nothing; DummyCache drops cache-backed sessions. Deploy-only, because tests and
    local runs use LocMem on purpose and Django's test runner sets ``DEBUG=False``.
    """
    backend = configured_caches().get("default", {}).get("BACKEND", "")
    name = _LOCAL_BACKENDS.get(backend)
    if settings.DEBUG or name is None:
        return []
    return [
        Error(
            f"The default cache is {name} while DEBUG is False: each process has its own cache (or "
            "none), so an invalidation in one worker never reaches the others and they keep "
            "serving stale data; cache locks and counters do not coordinate across processes.",
            hint="Use a shared Redis: CACHES = caches_from_env() (from cachewise) with REDIS_URL set.",
            id="cachewise.E001",
        )
    ]


def allowed_backend_options() -> frozenset[str]:
    """The OPTIONS keys cachewise's RedisCache accepts: its ``ALLOWED_OPTIONS`` when it has one."""
    allowed = getattr(backend, "ALLOWED_OPTIONS", None)
    return frozenset(allowed) if allowed is not None else _FALLBACK_ALLOWED_OPTIONS


@register(Tags.caches)
def check_backend_options(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """E002: unknown keys in the OPTIONS of a cachewise cache, with the closest valid spelling."""
    messages: Messages = []
    for alias, entry in configured_caches().items():
        if not is_cachewise_backend(entry.get("BACKEND")):
            continue
        allowed = allowed_backend_options()
        for key in sorted(set(entry.get("OPTIONS") or {}) - allowed, key=str):
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            messages.append(
                Error(
                    f"CACHES[{alias!r}]['OPTIONS'] has the unknown key {key!r}: the backend refuses "
                    "it, and a misspelt option would otherwise silently keep its default.",
                    hint=(f"Did you mean {close[0]!r}? " if close else "")
                    + f"Accepted keys: {', '.join(sorted(allowed))}.",
                    obj=alias,
                    id="cachewise.E002",
                )
            )
    return messages


@register(Tags.caches)
def check_key_prefix(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W001: a Redis cache without KEY_PREFIX shares its key space with everything on the server."""
    return [
        CheckWarning(
            f"CACHES[{alias!r}] is a Redis cache without KEY_PREFIX: its keys collide with any other "
            "project or environment using the same Redis database.",
            hint="Set a KEY_PREFIX unique to this project and environment, e.g. 'blog-prod' "
            "(caches_from_url() sets one).",
            obj=alias,
            id="cachewise.W001",
        )
        for alias, entry, _target in redis_targets()
        if not entry.get("KEY_PREFIX")
    ]


@register(Tags.caches)
def check_sessions_database(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W002: cache-backed sessions in the same Redis database (host, port, db) as another cache."""
    engine = getattr(settings, "SESSION_ENGINE", "")
    if engine not in _CACHE_SESSION_ENGINES:
        return []
    session_alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    targets = {alias: target for alias, _entry, target in redis_targets()}
    sessions = targets.get(session_alias)
    if sessions is None:
        return []
    shared = [alias for alias, target in targets.items() if target.server == sessions.server]
    if session_alias == "default" or len(shared) > 1:
        others = [alias for alias in shared if alias != session_alias] or ["default"]
        effect = (
            "clearing that cache logs every user out"
            if engine.endswith(".cache")
            else "clearing that cache empties the session cache, and sessions compete with pages for memory"
        )
        return [
            CheckWarning(
                f"Sessions (SESSION_ENGINE={engine!r}, SESSION_CACHE_ALIAS={session_alias!r}) are stored "
                f"in the same Redis database as the cache {', '.join(map(repr, others))} "
                f"({sessions.display}): {effect}.",
                hint="Give sessions their own alias on another logical database: caches_from_url() "
                "adds a 'sessions' alias on the URL's database + 1; set SESSION_CACHE_ALIAS = 'sessions'.",
                obj=session_alias,
                id="cachewise.W002",
            )
        ]
    return []


def _has_socket_timeout(entry: Mapping[str, Any], target: RedisTarget) -> bool:
    options = entry.get("OPTIONS") or {}
    if "socket_timeout=" in target.url:
        return True
    if is_cachewise_backend(entry.get("BACKEND")):
        # The backend defaults it (0.5 s); only an explicit None switches it off.
        return "socket_timeout" not in options or options["socket_timeout"] is not None
    if str(entry.get("BACKEND", "")).startswith("django_redis."):  # its own upper-case OPTIONS
        pool_kwargs = options.get("CONNECTION_POOL_KWARGS") or {}
        return options.get("SOCKET_TIMEOUT") is not None or pool_kwargs.get("socket_timeout") is not None
    return options.get("socket_timeout") is not None


@register(Tags.caches)
def check_socket_timeouts(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W003: a Redis cache with no socket timeout lets one stalled server block every worker."""
    return [
        CheckWarning(
            f"CACHES[{alias!r}] has no socket timeout: when Redis stalls or a packet is lost, every "
            "worker blocks on its cache call (for minutes, or redis-py's default), and the site "
            "goes down with the cache instead of getting slower.",
            hint="Set OPTIONS socket_timeout and socket_connect_timeout to well under a second "
            "(django-redis: SOCKET_TIMEOUT and SOCKET_CONNECT_TIMEOUT); caches_from_url() does.",
            obj=alias,
            id="cachewise.W003",
        )
        for alias, entry, target in redis_targets()
        if not _has_socket_timeout(entry, target)
    ]


# --------------------------------------------------------------------------- middleware


def _middleware() -> list[str]:
    return [str(path) for path in getattr(settings, "MIDDLEWARE", None) or []]


def _cache_middleware(stack: list[str], name: str) -> tuple[int, str] | None:
    for index, path in enumerate(stack):
        if any(path == family + name for family in _FAMILIES):
            return index, path
    return None


def _order_problems(stack: list[str]) -> list[str]:
    update, fetch = _cache_middleware(stack, _UPDATE), _cache_middleware(stack, _FETCH)
    if update is None and fetch is None:
        return []
    if update is None or fetch is None:
        present = (update or fetch or (0, ""))[1]
        return [f"{present} is installed without its pair, so pages are never stored or never served"]
    problems = []
    if update[1].rsplit(".", 1)[0] != fetch[1].rsplit(".", 1)[0]:
        problems.append(f"{update[1]} and {fetch[1]} come from different libraries and use different keys")
    if update[0] > fetch[0]:
        problems.append(f"{_UPDATE} is listed after {_FETCH}")
    outer = [path for path in stack[: update[0]] if path in _RESPONSE_CHANGERS]
    if outer:
        problems.append(
            f"{', '.join(outer)} is listed before {_UPDATE}, so the Vary header or cookie it adds is "
            "not seen when the page is stored, and one visitor's page can be served to another"
        )
    inner = stack[fetch[0] + 1 :]
    if inner:
        problems.append(f"{', '.join(inner)} is listed after {_FETCH} and is skipped on every cache hit")
    return problems


@register(Tags.caches)
def check_middleware_order(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W004: UpdateCacheMiddleware must come first (before middleware that adds Vary or cookies)
    and FetchFromCacheMiddleware last, as a pair from the same library (Django's or cachewise's)."""
    return [
        CheckWarning(
            f"Cache middleware in the wrong order: {problem}.",
            hint=f"List the {_UPDATE} first and the {_FETCH} last in MIDDLEWARE, both from the same "
            "module (cachewise.middleware or django.middleware.cache).",
            obj="MIDDLEWARE",
            id="cachewise.W004",
        )
        for problem in _order_problems(_middleware())
    ]


@register(Tags.caches)
def check_site_cache_with_authentication(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> Messages:
    """W005: Django's site-wide cache middleware on a site with AuthenticationMiddleware.

    Django's middleware stores every GET/HEAD page not marked private, whoever asked; cachewise's
    middleware does not store pages of logged-in users (or keys them per user) nor responses
    that set a cookie, so only Django's is flagged.
    """
    stack = _middleware()
    django_cache = [path for path in stack if path in _DJANGO_SITE_CACHE]
    if not django_cache or _AUTHENTICATION not in stack:
        return []
    return [
        CheckWarning(
            f"{django_cache[0]} caches whole pages for everyone on a site with logins "
            f"({_AUTHENTICATION}): a page that shows user data without marking itself private or "
            "touching the session is stored and served to other visitors, and every logged-in "
            "user's pages are stored once per session cookie.",
            hint="Use cachewise.middleware.UpdateCacheMiddleware / FetchFromCacheMiddleware (never "
            "shares a logged-in user's page) or cache per view with cachewise.decorators.cache_page.",
            obj="MIDDLEWARE",
            id="cachewise.W005",
        )
    ]


# --------------------------------------------------------------------------- live (deploy)


def _servers() -> dict[tuple[str, int], RedisTarget]:
    """One target per Redis server (host, port): aliases on other databases share its memory."""
    servers: dict[tuple[str, int], RedisTarget] = {}
    for _alias, _entry, target in redis_targets():
        servers.setdefault((target.host, target.port), target)
    return servers


def _memory_info(target: RedisTarget) -> dict[str, Any]:
    client = None
    try:
        client = connect(target, LIVE_CHECK_TIMEOUT)
        info: dict[str, Any] = client.info("memory")
        return info
    finally:
        if client is not None:
            client.close()


def _memory_messages(target: RedisTarget, info: Mapping[str, Any]) -> Messages:
    maxmemory = int(info.get("maxmemory", 0) or 0)
    policy = str(info.get("maxmemory_policy", ""))
    if maxmemory == 0:
        return [
            CheckWarning(
                f"Redis at {target.address} has no maxmemory: it grows until the machine runs out "
                "of memory (swap, or the OOM killer stops the server) instead of evicting old entries.",
                hint="Set maxmemory (e.g. 75% of the memory Redis may use) and "
                "maxmemory-policy allkeys-lru or allkeys-lfu.",
                obj=target.alias,
                id="cachewise.W006",
            )
        ]
    if policy == "noeviction":
        return [
            CheckWarning(
                f"Redis at {target.address} has maxmemory-policy noeviction: once memory is full it "
                "refuses every write, so pages stop being cached and invalidations (version bumps), "
                "stampede locks and counters fail with OOM errors.",
                hint="Use maxmemory-policy allkeys-lru or allkeys-lfu; cachewise's version counters "
                "tolerate eviction (a lost counter restarts above every old version).",
                obj=target.alias,
                id="cachewise.W007",
            )
        ]
    return []


@register(Tags.caches, deploy=True)
def check_redis_memory(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W006/W007 (deploy, live): maxmemory and eviction policy of each Redis server; W008 if unreachable.

    Only ``noeviction`` is flagged as a policy. ``allkeys-*`` may evict a version counter, which
    cachewise tolerates by design (a lost counter restarts from the clock, above every version it
    handed out, so old entries stay dead: a burst of misses, never stale data). ``volatile-*``
    evicts only keys with a TTL, which every cachewise entry has by default (TIMEOUT=300).
    """
    messages: Messages = []
    alone = sessions_only_servers()
    for address, target in _servers().items():
        try:
            info = _memory_info(target)
        except Exception as exc:  # noqa: BLE001 - any failure: report it, never let `check --deploy` crash
            messages.append(
                CheckWarning(
                    f"Could not reach Redis for cache {target.alias!r} to check its memory settings: "
                    f"{explain_error(exc, target, LIVE_CHECK_TIMEOUT)}",
                    hint="Run the deploy checks where the Redis server is reachable, or run "
                    f"`manage.py cachewise ping --alias {target.alias}` to diagnose.",
                    obj=target.alias,
                    id="cachewise.W008",
                )
            )
            continue
        found = _memory_messages(target, info)
        if address in alone:  # noeviction is the right policy for a server of sessions alone
            found = [message for message in found if message.id != "cachewise.W007"]
        messages.extend(found)
    return messages


# --------------------------------------------------------------------------- django-redis settings
# W050-W052 live with the django-redis translation they check; E060 with the near cache.
from . import djredis, near  # noqa: E402, F401  (registers their checks)

# --------------------------------------------------------------------------- sessions in an outage
# W035 lives in its own module; importing it registers the check.
from .session_outage import check_session_outage_answer  # noqa: E402, F401

# --------------------------------------------------------------------------- sessions vs eviction
# W025 lives in its own module; importing it registers the check.
from .sessions import check_sessions_eviction, sessions_only_servers  # noqa: E402
