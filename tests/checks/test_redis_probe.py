"""redis_probe: which server and database a CACHES entry really uses, as each backend reads it."""

from __future__ import annotations

import pytest
import redis

from cachewise.checks.redis_probe import (
    connect,
    explain_error,
    is_redis_backend,
    redis_target,
    target_or_error,
)
from cachewise.exceptions import ConfigurationError


@pytest.mark.parametrize(
    ("entry", "server"),
    [
        ({"LOCATION": "redis://cache:6380/3"}, ("cache", 6380, 3)),
        ({"LOCATION": "redis://cache", "OPTIONS": {"db": 2}}, ("cache", 6379, 2)),
        ({"LOCATION": "redis://cache/5", "OPTIONS": {"db": 2}}, ("cache", 6379, 5)),  # the URL wins
        ({"LOCATION": "redis://primary:6379/1,redis://replica:6379/1"}, ("primary", 6379, 1)),
        ({"LOCATION": ["redis://primary/4", "redis://replica/4"]}, ("primary", 6379, 4)),
        ({"LOCATION": "unix:///run/redis.sock?db=7"}, ("/run/redis.sock", 0, 7)),
    ],
)
def test_target_reads_the_database_the_backend_uses(
    entry: dict[str, object], server: tuple[str, int, int]
) -> None:
    target = redis_target("default", {"BACKEND": "django.core.cache.backends.redis.RedisCache", **entry})
    assert target is not None
    assert target.server == server


def test_non_redis_backends_have_no_target() -> None:
    assert redis_target("default", {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}) is None
    assert not is_redis_backend("django.core.cache.backends.db.DatabaseCache")
    assert not is_redis_backend("no.such.Backend")
    assert is_redis_backend("django_redis.cache.RedisCache")


def test_bad_location_names_the_alias_and_hides_the_password() -> None:
    entry = {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": "redis://:s3cret@cache:port/0"}
    with pytest.raises(ConfigurationError) as excinfo:
        target_or_error("sessions", entry)
    assert "CACHES['sessions']['LOCATION']" in str(excinfo.value)
    assert "s3cret" not in str(excinfo.value)


def test_password_from_options_is_used_and_scrubbed() -> None:
    entry = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"password": "hunter2"},
    }
    target = redis_target("default", entry)
    assert target is not None
    assert target.connection_kwargs["password"] == "hunter2"
    error = redis.AuthenticationError("invalid password hunter2")
    assert "hunter2" not in explain_error(error, target)


def test_connect_gives_up_quickly_on_a_closed_port() -> None:
    target = redis_target(
        "default", {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    )
    assert target is not None
    with pytest.raises(redis.ConnectionError) as excinfo:
        connect(target, timeout=0.5).ping()
    assert "could not connect to 127.0.0.1:1" in explain_error(excinfo.value, target)
