"""caches_from_url / caches_from_env: the CACHES they build, and the errors for URLs that cannot work."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from cachewise.caches_url import (
    SESSIONS_TIMEOUT,
    caches_from_env,
    caches_from_url,
    parse_redis_url,
    redact_url,
)
from cachewise.exceptions import CacheNotConfiguredError, ConfigurationError


def test_defaults_are_the_production_defaults() -> None:
    caches_ = caches_from_url("redis://cache.internal:6379/0", key_prefix="shop")
    default, sessions = caches_["default"], caches_["sessions"]
    assert set(caches_) == {"default", "sessions"}
    assert default["BACKEND"] == sessions["BACKEND"] == "cachewise.backends.redis.RedisCache"
    assert default["LOCATION"] == "redis://cache.internal:6379/0"
    assert sessions["LOCATION"] == "redis://cache.internal:6379/1"
    assert default["KEY_PREFIX"] == "shop"
    assert sessions["KEY_PREFIX"] == "shop-sess"
    assert default["VERSION"] == sessions["VERSION"] == 1
    assert default["TIMEOUT"] == 300
    assert sessions["TIMEOUT"] == SESSIONS_TIMEOUT == 14 * 24 * 3600
    for entry in (default, sessions):
        assert 0 < entry["OPTIONS"]["socket_timeout"] <= 1
        assert 0 < entry["OPTIONS"]["socket_connect_timeout"] <= 1
        assert entry["OPTIONS"]["max_connections"] > 0


def test_key_prefix_defaults_to_the_settings_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "blog.settings.production")
    assert caches_from_url("redis://h/0")["default"]["KEY_PREFIX"] == "blog"


def test_password_username_and_db_are_kept_in_both_aliases() -> None:
    caches_ = caches_from_url("redis://app:s3cret@cache.internal:6380/4", key_prefix="p")
    assert caches_["default"]["LOCATION"] == "redis://app:s3cret@cache.internal:6380/4"
    assert caches_["sessions"]["LOCATION"] == "redis://app:s3cret@cache.internal:6380/5"


def test_tls_scheme_is_kept() -> None:
    caches_ = caches_from_url("rediss://:pw@cache.example.com:6380/2", key_prefix="p")
    assert caches_["sessions"]["LOCATION"] == "rediss://:pw@cache.example.com:6380/3"


def test_unix_socket_takes_the_db_from_the_query() -> None:
    caches_ = caches_from_url("unix:///run/redis/redis.sock?db=2", key_prefix="p")
    assert caches_["default"]["LOCATION"] == "unix:///run/redis/redis.sock?db=2"
    assert caches_["sessions"]["LOCATION"] == "unix:///run/redis/redis.sock?db=3"
    assert parse_redis_url("unix:///run/redis/redis.sock")["db"] == 0


def test_arguments_override_the_defaults() -> None:
    caches_ = caches_from_url(
        "redis://h:6379/3",
        key_prefix="blog",
        version=4,
        timeout=None,
        sessions_db=9,
        sessions_timeout=3600,
        options={"socket_timeout": 2.0, "serializer": "json"},
    )
    assert caches_["default"]["VERSION"] == 4
    assert caches_["default"]["TIMEOUT"] is None
    assert caches_["sessions"]["LOCATION"] == "redis://h:6379/9"
    assert caches_["sessions"]["TIMEOUT"] == 3600
    assert caches_["default"]["OPTIONS"]["socket_timeout"] == 2.0
    assert caches_["default"]["OPTIONS"]["socket_connect_timeout"] == 0.3
    assert caches_["default"]["OPTIONS"]["serializer"] == "json"
    assert set(caches_from_url("redis://h/0", key_prefix="p", sessions=False)) == {"default"}


def test_parse_redis_url_reports_every_part() -> None:
    assert parse_redis_url("rediss://me:pw@cache.example.com:6390/7") == {
        "scheme": "rediss",
        "host": "cache.example.com",
        "port": 6390,
        "db": 7,
        "username": "me",
        "has_password": True,
    }
    assert parse_redis_url("redis://localhost")["port"] == 6379
    assert parse_redis_url("redis://localhost/0?db=5")["db"] == 5


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://:s3cret@cache:6379/0", "scheme 'http'"),
        ("cache.internal:6379", "scheme"),
        ("redis://:s3cret@/0", "no host"),
        ("redis://:s3cret@cache:99999/0", "invalid port"),
        ("redis://:s3cret@cache:port/0", "invalid port"),
        ("redis://:s3cret@cache:0/0", "invalid port"),
        ("redis://:s3cret@cache:6379/cache", "invalid database 'cache'"),
        ("redis://:s3cret@cache:6379/-1", "invalid database"),
        ("redis://:s3cret@cache:6379/²", "invalid database"),
        ("redis://:s3cret@cache:6379/0?db=x", "invalid database 'x'"),
        ("unix://", "no socket path"),
        ("redis://:s3cret@[::1/0", "cannot be parsed"),
    ],
)
def test_malformed_url_names_the_problem_and_hides_the_password(url: str, says: str) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        caches_from_url(url, key_prefix="p")
    assert isinstance(excinfo.value, ConfigurationError)
    assert says in str(excinfo.value)
    assert "s3cret" not in str(excinfo.value)
    assert excinfo.value.__cause__ is None  # no chained traceback that might quote the URL


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"key_prefix": "my prefix"}, "key_prefix"),
        ({"key_prefix": ""}, "key_prefix"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"sessions_db": 0}, "sessions_db=0 is the page cache's database"),
        ({"sessions_db": -1}, "sessions_db must be"),
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=says):
        caches_from_url("redis://h:6379/0", **{"key_prefix": "p", **kwargs})


def test_missing_redis_url_gives_caches_that_fail_at_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    configured = caches_from_env()  # settings import: no error
    assert set(configured) == {"default", "sessions"}
    with override_settings(CACHES=configured):
        with pytest.raises(CacheNotConfiguredError, match="environment variable REDIS_URL was not set"):
            caches["default"].get("key")
        with pytest.raises(ImproperlyConfigured, match="REDIS_URL=redis://"):
            caches["sessions"].set("key", 1)
        caches["default"].close()  # Django closes caches after every request: that must not raise
    monkeypatch.setenv("CACHE_URL", " ")
    blank = caches_from_env("CACHE_URL", sessions=False)
    assert set(blank) == {"default"}
    with override_settings(CACHES=blank), pytest.raises(CacheNotConfiguredError, match="CACHE_URL"):
        caches["default"].add("key", 1)


def test_sessions_never_go_past_the_sixteen_databases_of_a_stock_server() -> None:
    assert caches_from_url("redis://h/14", key_prefix="p")["sessions"]["LOCATION"] == "redis://h/15"
    with pytest.raises(ImproperlyConfigured, match=r"database 16.*sessions_db=14"):
        caches_from_url("redis://h/15", key_prefix="p")
    explicit = caches_from_url("redis://h/15", key_prefix="p", sessions_db=14)
    assert explicit["sessions"]["LOCATION"] == "redis://h/14"
    assert set(caches_from_url("redis://h/15", key_prefix="p", sessions=False)) == {"default"}


def test_caches_from_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@cache:6379/2\n")
    caches_ = caches_from_env(key_prefix="blog", timeout=60)
    assert caches_["default"]["LOCATION"] == "redis://:pw@cache:6379/2"
    assert caches_["sessions"]["LOCATION"] == "redis://:pw@cache:6379/3"
    assert caches_["default"]["TIMEOUT"] == 60


def test_env_error_for_a_bad_url_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://admin:hunter2@cache:70000/0")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        caches_from_env()
    assert "hunter2" not in str(excinfo.value)
    assert "redis://admin:***@cache:70000/0" in str(excinfo.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cret@h/0", "redis://user:***@h/0"),
        ("redis://:p@ss/w?rd@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("redis://h/0?password=s3cret&db=1", "redis://h/0?password=***&db=1"),
        ("unix:///tmp/r.sock?db=1&password=s3cret", "unix:///tmp/r.sock?db=1&password=***"),
    ],
)
def test_redact_url_never_shows_the_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_two_aliases_write_to_separate_databases(cachewise_caches: dict[str, Any]) -> None:
    """What `caches_from_url` promises, seen on the server: sessions survive a cache FLUSHDB."""
    default_db = parse_redis_url(cachewise_caches["default"]["LOCATION"])["db"]
    sessions_db = parse_redis_url(cachewise_caches["sessions"]["LOCATION"])["db"]
    assert sessions_db == default_db + 1
    caches["default"].set("page", "p", 30)
    caches["sessions"].set("session", "s", 30)
    for alias, db in (("default", default_db), ("sessions", sessions_db)):
        client = redis.Redis.from_url(cachewise_caches[alias]["LOCATION"])
        try:
            stored = [
                key.decode() for key in client.scan_iter(match=f"*{cachewise_caches[alias]['KEY_PREFIX']}*")
            ]
        finally:
            client.close()
        assert len(stored) == 1, (alias, db, stored)
        assert stored[0].endswith(":page" if alias == "default" else ":session")


def test_sessions_url_puts_sessions_on_another_server() -> None:
    caches_ = caches_from_url(
        "redis://cache.internal:6379/0",
        key_prefix="shop",
        sessions_url="redis://:pw@sessions.internal:6379/2",
    )
    sessions = caches_["sessions"]
    assert sessions["LOCATION"] == "redis://:pw@sessions.internal:6379/2"
    assert (sessions["KEY_PREFIX"], sessions["TIMEOUT"]) == ("shop-sess", SESSIONS_TIMEOUT)
    assert caches_["default"]["LOCATION"] == "redis://cache.internal:6379/0"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"sessions_url": "redis://cache.internal:6379/5"}, "is the cache's own server"),
        ({"sessions_url": "redis://other:6379/0", "sessions_db": 3}, "not both"),
        ({"sessions_url": "http://other/0"}, "has scheme 'http'"),
    ],
)
def test_sessions_url_that_cannot_keep_sessions_apart_is_refused(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        caches_from_url("redis://cache.internal:6379/0", key_prefix="shop", **kwargs)


def test_caches_from_env_reads_the_sessions_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    monkeypatch.setenv("SESSIONS_REDIS_URL", "redis://sessions.internal:6379/0")
    assert caches_from_env(key_prefix="p")["sessions"]["LOCATION"] == "redis://sessions.internal:6379/0"
    monkeypatch.setenv("SESSIONS_REDIS_URL", "")
    assert caches_from_env(key_prefix="p")["sessions"]["LOCATION"] == "redis://cache.internal:6379/1"
