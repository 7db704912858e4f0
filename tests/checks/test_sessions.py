"""W025: cache sessions on a server that a flood of cache writes can make evict them (live, deploy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.checks import Tags, run_checks
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


def configure(server: EmbeddedRedis, **config: str) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        for name, value in config.items():
            client.config_set(name.replace("_", "-"), value)
    finally:
        client.close()


def ids(caches: dict[str, Any], *, engine: str = CACHE_SESSIONS, alias: str = "sessions") -> list[str]:
    with override_settings(CACHES=caches, SESSION_ENGINE=engine, SESSION_CACHE_ALIAS=alias):
        return sorted(str(m.id) for m in run_checks(tags=[Tags.caches], include_deployment_checks=True))


@pytest.fixture
def second_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-ttl"])
def test_w025_sessions_on_the_page_cache_server_under_an_evicting_policy(
    disposable_redis: EmbeddedRedis, policy: str
) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy=policy)
    caches = caches_from_url(disposable_redis.url, key_prefix="p")  # sessions on db 1, same server
    with override_settings(CACHES=caches, SESSION_ENGINE=CACHE_SESSIONS, SESSION_CACHE_ALIAS="sessions"):
        [warning] = [m for m in run_checks(include_deployment_checks=True) if m.id == "cachewise.W025"]
        assert "cachewise.W025" not in {m.id for m in run_checks()}  # live: deploy only
    assert f"maxmemory-policy {policy}" in warning.msg
    assert "sessions_url" in (warning.hint or "")
    assert warning.obj == "sessions"


def test_w025_sees_one_server_behind_two_spellings(disposable_redis: EmbeddedRedis) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    caches = caches_from_url(disposable_redis.url, key_prefix="p", sessions=False)
    caches["sessions"] = {**caches["default"], "LOCATION": f"redis://localhost:{disposable_redis.port}/3"}
    assert "cachewise.W025" in ids(caches)


def test_w025_sessions_in_the_default_alias(disposable_redis: EmbeddedRedis) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    caches = caches_from_url(disposable_redis.url, key_prefix="p", sessions=False)
    assert "cachewise.W025" in ids(caches, alias="default")


def test_w025_silent_with_sessions_on_their_own_server(
    disposable_redis: EmbeddedRedis, second_redis: EmbeddedRedis
) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    configure(second_redis, maxmemory="64mb", maxmemory_policy="noeviction")
    caches = caches_from_url(disposable_redis.url, key_prefix="p", sessions_url=second_redis.url)
    found = ids(caches)
    assert "cachewise.W025" not in found
    assert "cachewise.W007" not in found  # noeviction is right for a server of sessions alone


def test_w007_still_reported_for_a_noeviction_server_shared_with_the_cache(
    disposable_redis: EmbeddedRedis,
) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="noeviction")
    found = ids(caches_from_url(disposable_redis.url, key_prefix="p"))
    assert "cachewise.W007" in found
    assert "cachewise.W025" not in found  # noeviction never evicts a session


def test_w025_silent_for_database_sessions_and_cached_db(disposable_redis: EmbeddedRedis) -> None:
    configure(disposable_redis, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    caches = caches_from_url(disposable_redis.url, key_prefix="p")
    assert "cachewise.W025" not in ids(caches, engine="django.contrib.sessions.backends.db")
    # cached_db reads an evicted session back from the database: slower, never logged out.
    assert "cachewise.W025" not in ids(caches, engine="django.contrib.sessions.backends.cached_db")


def test_w025_silent_when_the_server_cannot_be_reached() -> None:
    caches = caches_from_url("redis://127.0.0.1:1/0", key_prefix="p")
    found = ids(caches)
    assert "cachewise.W025" not in found
    assert "cachewise.W008" in found
