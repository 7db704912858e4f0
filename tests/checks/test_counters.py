"""cachewise.E030: counters on a Redis server whose eviction policy can drop their keys."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core.checks import Tags, run_checks
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis


def e030(server: EmbeddedRedis, **settings: Any) -> list[Any]:
    with override_settings(CACHES=caches_from_url(server.url, key_prefix="p", sessions=False), **settings):
        found = run_checks(tags=[Tags.caches], include_deployment_checks=True)
    return [message for message in found if message.id == "cachewise.E030"]


def policy(server: EmbeddedRedis, name: str, maxmemory: str = "64mb") -> None:
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", maxmemory)
    client.config_set("maxmemory-policy", name)
    client.close()


COUNTERS = {"CACHEWISE_COUNTERS": ["tests.counters_app.page_views"]}  # created with ttl=3600


@pytest.mark.parametrize("name", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_e030_counters_on_an_allkeys_server(disposable_redis: EmbeddedRedis, name: str) -> None:
    policy(disposable_redis, name)
    [error] = e030(disposable_redis, CACHEWISE_COUNTERS_ALIAS="default")
    assert name in error.msg
    assert "pending increments would be lost" in error.msg
    assert "CACHEWISE_COUNTERS_ALIAS" in error.hint
    assert error.obj == "default"


def test_e030_counters_with_a_ttl_on_a_volatile_server(disposable_redis: EmbeddedRedis) -> None:
    policy(disposable_redis, "volatile-lru")
    [error] = e030(disposable_redis, **COUNTERS)
    assert "cmd:views" in error.msg  # the counter whose keys have a TTL


@pytest.mark.parametrize("name", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_e030_silent_where_counters_without_ttl_are_kept(disposable_redis: EmbeddedRedis, name: str) -> None:
    policy(disposable_redis, name)
    assert e030(disposable_redis, CACHEWISE_COUNTERS_ALIAS="default") == []


def test_e030_silent_without_maxmemory_or_without_counters(disposable_redis: EmbeddedRedis) -> None:
    policy(disposable_redis, "allkeys-lru", maxmemory="0")
    assert e030(disposable_redis, **COUNTERS) == []
    policy(disposable_redis, "allkeys-lru")
    assert e030(disposable_redis) == [], "a project that declares no counters is not checked"
