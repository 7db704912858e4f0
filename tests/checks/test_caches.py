"""System checks of the caches: each check id fires with the bad configuration, stays silent with a good one.

Every test goes through ``run_checks`` (what ``manage.py check [--deploy]`` runs), so it also proves
the check is registered under ``Tags.caches`` and, for deploy-only checks, only under ``--deploy``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.core.checks import Error, Tags, Warning, run_checks
from django.core.checks.registry import registry
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.checks.caches import allowed_backend_options, check_backend_options
from cachewise.embedded import EmbeddedRedis, free_port

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
DJANGO_REDIS = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS_PKG = "django_redis.cache.RedisCache"
OURS = "cachewise.backends.redis.RedisCache"

DJANGO_CACHE_PAIR = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]
CACHEWISE_PAIR = [
    "cachewise.middleware.UpdateCacheMiddleware",
    "cachewise.middleware.FetchFromCacheMiddleware",
]
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def messages(check_id: str, *, deploy: bool = False) -> list[Any]:
    found = run_checks(tags=[Tags.caches], include_deployment_checks=deploy)
    return [message for message in found if message.id == check_id]


def redis_entry(
    backend: str = OURS, location: str = "redis://127.0.0.1:6399/0", **extra: Any
) -> dict[str, Any]:
    return {"BACKEND": backend, "LOCATION": location, "KEY_PREFIX": "p", **extra}


def site(update: str, fetch: str, *, auth: bool = True) -> list[str]:
    """A middleware list in the documented order: update first, fetch last."""
    return [update, SESSION, COMMON, *([AUTH] if auth else []), fetch]


# --------------------------------------------------------------------------- E001


@pytest.mark.parametrize("backend", [LOCMEM, DUMMY])
def test_e001_local_default_cache_in_production(backend: str) -> None:
    with override_settings(CACHES={"default": {"BACKEND": backend}}, DEBUG=False):
        [error] = messages("cachewise.E001", deploy=True)
        assert isinstance(error, Error)
        assert backend.rsplit(".", 1)[1] in error.msg
        assert "caches_from_env()" in (error.hint or "")
        assert messages("cachewise.E001") == []  # deploy-only: tests use LocMem on purpose


def test_e001_silent_with_redis_or_debug() -> None:
    assert messages("cachewise.E001", deploy=True) == []  # the fixture's Redis CACHES
    with override_settings(CACHES={"default": {"BACKEND": LOCMEM}}, DEBUG=True):
        assert messages("cachewise.E001", deploy=True) == []


# --------------------------------------------------------------------------- E002


# Called directly here; tests/checks/test_project.py shows `manage.py check` reporting it (the
# backend defers its own error to the first cache call, so Django's cache checks, which build
# every cache, no longer end in a traceback).


def test_e002_unknown_option_with_a_suggestion() -> None:
    entry = redis_entry(OPTIONS={"socket_timout": 0.5, "max_connections": 10})
    with override_settings(CACHES={"default": entry}):
        [error] = check_backend_options()
    assert isinstance(error, Error)
    assert error.id == "cachewise.E002"
    assert "'socket_timout'" in error.msg
    assert "Did you mean 'socket_timeout'?" in (error.hint or "")
    assert check_backend_options in registry.get_checks()
    assert "caches" in check_backend_options.tags


def test_e002_silent_with_known_options_and_for_other_backends() -> None:
    assert messages("cachewise.E002") == []
    entry = redis_entry(OURS, OPTIONS={"socket_timeout": 1.0, "max_connections": 10})
    other = redis_entry(DJANGO_REDIS, OPTIONS={"anything": 1})
    with override_settings(CACHES={"default": entry, "other": other}):
        assert check_backend_options() == []


def test_e002_reads_the_backends_own_list() -> None:
    from cachewise.backends import redis as backend

    assert allowed_backend_options() == backend.ALLOWED_OPTIONS


# --------------------------------------------------------------------------- W001


@pytest.mark.parametrize("backend", [OURS, DJANGO_REDIS, DJANGO_REDIS_PKG])
def test_w001_redis_cache_without_key_prefix(backend: str) -> None:
    with override_settings(CACHES={"default": redis_entry(backend, KEY_PREFIX="")}):
        [warning] = messages("cachewise.W001")
    assert isinstance(warning, Warning)
    assert warning.obj == "default"


def test_w001_silent_with_a_prefix_or_without_redis() -> None:
    assert messages("cachewise.W001") == []
    with override_settings(CACHES={"default": {"BACKEND": LOCMEM}}):
        assert messages("cachewise.W001") == []


# --------------------------------------------------------------------------- W002


@pytest.mark.parametrize(
    ("caches", "alias"),
    [
        ({"default": redis_entry()}, "default"),
        ({"default": redis_entry(), "sessions": redis_entry(KEY_PREFIX="s")}, "sessions"),
        (  # the db comes from OPTIONS when the URL names none: both on db 1
            {
                "default": redis_entry(DJANGO_REDIS, "redis://cache:6379", OPTIONS={"db": 1}),
                "sessions": redis_entry(DJANGO_REDIS, "redis://cache:6379/1"),
            },
            "sessions",
        ),
    ],
    ids=["default-alias", "same-url", "db-from-options"],
)
@pytest.mark.parametrize("engine", ["cache", "cached_db"])
def test_w002_sessions_in_the_page_cache_database(caches: dict[str, Any], alias: str, engine: str) -> None:
    with override_settings(
        CACHES=caches, SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}", SESSION_CACHE_ALIAS=alias
    ):
        [warning] = messages("cachewise.W002")
    assert "same Redis database" in warning.msg
    assert ("logs every user out" in warning.msg) == (engine == "cache")


def test_w002_silent_with_a_separate_database(cachewise_caches: dict[str, Any]) -> None:
    engine = "django.contrib.sessions.backends.cache"
    with override_settings(SESSION_ENGINE=engine, SESSION_CACHE_ALIAS="sessions"):
        assert messages("cachewise.W002") == []
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.db", SESSION_CACHE_ALIAS="default"
    ):
        assert messages("cachewise.W002") == []
    # The URL's database wins over OPTIONS["db"], as in redis-py.
    caches = {
        "default": redis_entry(DJANGO_REDIS, "redis://cache:6379/0", OPTIONS={"db": 1}),
        "sessions": redis_entry(DJANGO_REDIS, "redis://cache:6379/1"),
    }
    with override_settings(CACHES=caches, SESSION_ENGINE=engine, SESSION_CACHE_ALIAS="sessions"):
        assert messages("cachewise.W002") == []


# --------------------------------------------------------------------------- W003


@pytest.mark.parametrize(
    "entry",
    [
        redis_entry(DJANGO_REDIS),
        redis_entry(DJANGO_REDIS, OPTIONS={"socket_connect_timeout": 1}),
        redis_entry(DJANGO_REDIS_PKG, OPTIONS={"SOCKET_CONNECT_TIMEOUT": 1}),
        redis_entry(OURS, OPTIONS={"socket_timeout": None}),
    ],
    ids=["django-no-options", "django-connect-only", "django-redis", "cachewise-none"],
)
def test_w003_redis_cache_without_socket_timeout(entry: dict[str, Any]) -> None:
    with override_settings(CACHES={"default": entry}):
        [warning] = messages("cachewise.W003")
    assert "no socket timeout" in warning.msg


@pytest.mark.parametrize(
    "entry",
    [
        redis_entry(OURS),  # the backend defaults it
        redis_entry(DJANGO_REDIS, OPTIONS={"socket_timeout": 0.5}),
        redis_entry(DJANGO_REDIS, "redis://127.0.0.1:6399/0?socket_timeout=0.5"),
        redis_entry(DJANGO_REDIS_PKG, OPTIONS={"SOCKET_TIMEOUT": 0.5}),
        {"BACKEND": LOCMEM},
    ],
    ids=["cachewise-default", "django-option", "url-query", "django-redis", "locmem"],
)
def test_w003_silent_with_a_timeout(entry: dict[str, Any]) -> None:
    with override_settings(CACHES={"default": entry}):
        assert messages("cachewise.W003") == []


# --------------------------------------------------------------------------- W004


@pytest.mark.parametrize(
    ("middleware", "says"),
    [
        ([CACHEWISE_PAIR[1], SESSION, CACHEWISE_PAIR[0]], "UpdateCacheMiddleware is listed after"),
        ([SESSION, DJANGO_CACHE_PAIR[0], COMMON, DJANGO_CACHE_PAIR[1]], "SessionMiddleware is listed before"),
        ([CACHEWISE_PAIR[0], SESSION, CACHEWISE_PAIR[1], AUTH], "AuthenticationMiddleware is listed after"),
        ([SESSION, COMMON, CACHEWISE_PAIR[1]], "without its pair"),
        ([DJANGO_CACHE_PAIR[0], COMMON, CACHEWISE_PAIR[1]], "different libraries"),
    ],
    ids=["update-after-fetch", "vary-before-update", "after-fetch", "half-pair", "mixed"],
)
def test_w004_cache_middleware_in_the_wrong_order(middleware: list[str], says: str) -> None:
    with override_settings(MIDDLEWARE=middleware):
        found = messages("cachewise.W004")
    assert any(says in warning.msg for warning in found), [w.msg for w in found]


@pytest.mark.parametrize("pair", [CACHEWISE_PAIR, DJANGO_CACHE_PAIR], ids=["cachewise", "django"])
def test_w004_silent_in_the_documented_order(pair: list[str]) -> None:
    with override_settings(MIDDLEWARE=site(*pair)):
        assert messages("cachewise.W004") == []
    assert messages("cachewise.W004") == []  # no cache middleware at all


# --------------------------------------------------------------------------- W005


@pytest.mark.parametrize(
    "middleware",
    [site(*DJANGO_CACHE_PAIR), [SESSION, AUTH, "django.middleware.cache.CacheMiddleware"]],
    ids=["pair", "combined"],
)
def test_w005_django_site_cache_with_logins(middleware: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware):
        [warning] = messages("cachewise.W005")
    assert "cachewise.middleware" in warning.hint


def test_w005_silent_for_cachewise_middleware_or_without_logins() -> None:
    with override_settings(MIDDLEWARE=site(*CACHEWISE_PAIR)):
        assert messages("cachewise.W005") == []
    with override_settings(MIDDLEWARE=site(*DJANGO_CACHE_PAIR, auth=False)):
        assert messages("cachewise.W005") == []


# --------------------------------------------------------------------------- W006 / W007 / W008 (live)


def configure(server: EmbeddedRedis, **config: str) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        for name, value in config.items():
            client.config_set(name.replace("_", "-"), value)
    finally:
        client.close()


def live_ids(server_url: str) -> list[str]:
    with override_settings(CACHES=caches_from_url(server_url, key_prefix="p")):
        return sorted(str(m.id) for m in run_checks(tags=[Tags.caches], include_deployment_checks=True))


def test_w006_server_without_maxmemory(disposable_redis: EmbeddedRedis) -> None:
    with override_settings(CACHES=caches_from_url(disposable_redis.url, key_prefix="p")):
        [warning] = messages("cachewise.W006", deploy=True)
        assert messages("cachewise.W006") == []  # live checks are deploy-only
    assert "no maxmemory" in warning.msg
    assert warning.obj == "default"  # one message per server, though two aliases use it


def test_w006_silent_with_maxmemory(disposable_redis: EmbeddedRedis) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    assert not {"cachewise.W006", "cachewise.W007", "cachewise.W008"} & set(live_ids(disposable_redis.url))


def test_w007_noeviction_refuses_writes(disposable_redis: EmbeddedRedis) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="noeviction")
    with override_settings(CACHES=caches_from_url(disposable_redis.url, key_prefix="p")):
        [warning] = messages("cachewise.W007", deploy=True)
    assert "refuses every write" in warning.msg


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-ttl"])
def test_w007_silent_for_evicting_policies(disposable_redis: EmbeddedRedis, policy: str) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy=policy)
    assert "cachewise.W007" not in live_ids(disposable_redis.url)


def test_w008_unreachable_server_is_reported_without_hanging() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    ids = live_ids(url)
    assert time.monotonic() - started < 5
    assert ids.count("cachewise.W008") == 1
    assert "cachewise.W006" not in ids
    with override_settings(CACHES=caches_from_url(url, key_prefix="p")):
        [warning] = messages("cachewise.W008", deploy=True)
    assert "could not connect" in warning.msg
    assert "cachewise ping" in warning.hint


def test_w008_wrong_password_is_reported_without_the_password() -> None:
    with EmbeddedRedis(extra_args=["--requirepass", "s3cret"]) as server:
        url = f"redis://:wrong@127.0.0.1:{server.port}/0"
        with override_settings(CACHES=caches_from_url(url, key_prefix="p")):
            [warning] = messages("cachewise.W008", deploy=True)
    assert "refused the credentials" in warning.msg
    assert "wrong" not in warning.msg


def test_w008_silent_when_the_server_answers(disposable_redis: EmbeddedRedis) -> None:
    assert "cachewise.W008" not in live_ids(disposable_redis.url)


# --------------------------------------------------------------------------- W030


def test_w030_page_tracking_without_orm_invalidation() -> None:
    with override_settings(CACHEWISE_ORM_INVALIDATION=False):
        [warning] = messages("cachewise.W030")
    assert "CACHEWISE_PAGE_TRACK_QUERIES = False" in warning.hint
    with override_settings(CACHEWISE_ORM_INVALIDATION=False, CACHEWISE_PAGE_TRACK_QUERIES=False):
        assert messages("cachewise.W030") == []
    assert messages("cachewise.W030") == []
