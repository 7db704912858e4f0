"""get_redis_client(): the raw client behind an alias, for each Redis backend Django users run."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.test import override_settings

from cachewise import get_redis_client
from cachewise.exceptions import ConfigurationError
from cachewise.testing import RedisServerInfo


@pytest.mark.parametrize(
    "backend",
    [
        "cachewise.backends.redis.RedisCache",
        "django.core.cache.backends.redis.RedisCache",
        "django_redis.cache.RedisCache",
    ],
)
def test_raw_client_of_each_redis_backend(redis_server: RedisServerInfo, backend: str) -> None:
    from django.core.cache import caches

    prefix = f"r{uuid.uuid4().hex[:10]}"
    entry: dict[str, Any] = {"BACKEND": backend, "LOCATION": redis_server.url_for(12), "KEY_PREFIX": prefix}
    with override_settings(CACHES={"default": entry, "other": entry}):
        cache = caches["other"]
        cache.set("key", 5)
        client = get_redis_client("other")
        assert isinstance(client, redis.Redis)
        full_key = cache.make_and_validate_key("key") if hasattr(cache, "make_and_validate_key") else ""
        assert client.get(full_key) == b"5"
        client.delete(full_key)
        cache.close()


def test_non_redis_cache_is_a_configuration_error() -> None:
    entry = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    with override_settings(CACHES={"default": entry}), pytest.raises(ConfigurationError, match="not a Redis"):
        get_redis_client("default")
