"""pytest plugin and helpers: a real Redis for the test session, isolated caches per test.

Loaded automatically (entry point ``pytest11``) wherever cachewise is installed; it only adds
fixtures, and starts nothing until one is used:

``redis_server`` (session)
    The server tests run against: ``REDIS_URL`` when set, else an :class:`EmbeddedRedis` started
    for the session and stopped at its end (also on failure or Ctrl-C).
``cachewise_caches`` (function)
    Overrides ``settings.CACHES`` with ``caches_from_url()`` on ``redis_server`` under a key prefix
    unique to the test, and deletes every key with that prefix afterwards, so tests never see each
    other's data even against a shared server. Yields the ``CACHES`` dict.
``redis_client`` (function)
    A raw ``redis.Redis`` on the ``default`` alias' database, for asserting what is stored.
``disposable_redis`` (function)
    A fresh :class:`EmbeddedRedis` of the test's own, for killing or pausing mid-test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from cachewise.caches_url import _with_db

from .caches_url import caches_from_url, parse_redis_url
from .embedded import EmbeddedRedis

__all__ = [
    "RedisServerInfo",
    "cachewise_caches",
    "delete_prefixed",
    "disposable_redis",
    "isolated_caches",
    "redis_client",
    "redis_server",
]


@dataclass(frozen=True)
class RedisServerInfo:
    """Where the test Redis listens; ``db`` is the first logical database tests may use."""

    host: str
    port: int
    db: int
    base_url: str
    embedded: EmbeddedRedis | None = None

    def url_for(self, db: int) -> str:
        """URL of logical database ``db`` on this server (same scheme and credentials)."""

        return _with_db(self.base_url, db)

    @property
    def url(self) -> str:
        """URL of the first test database."""
        return self.url_for(self.db)


def delete_prefixed(url: str, prefix: str) -> int:
    """Delete every key containing ``prefix`` in the database of ``url``; return how many."""
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
        return deleted
    finally:
        client.close()


def _server_from_env() -> RedisServerInfo | None:
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return None
    parsed = parse_redis_url(url)
    return RedisServerInfo(parsed["host"], parsed["port"], parsed["db"], url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServerInfo]:
    """The Redis the test session uses: REDIS_URL if set, else a private embedded server."""
    external = _server_from_env()
    if external is not None:
        yield external
        return
    server = EmbeddedRedis().start()
    try:
        yield RedisServerInfo(server.host, server.port, 0, server.url, server)
    finally:
        server.stop()


class isolated_caches:
    """Point ``settings.CACHES`` at ``server`` under a fresh key prefix; clean up on exit."""

    def __init__(self, server: RedisServerInfo, **kwargs: Any) -> None:
        self.server = server
        self.prefix = kwargs.pop("key_prefix", None) or f"t{uuid.uuid4().hex[:10]}"
        self.caches = caches_from_url(server.url, key_prefix=self.prefix, **kwargs)
        self._override: Any = None

    def __enter__(self) -> dict[str, dict[str, Any]]:
        self._override = override_settings(CACHES=self.caches)
        self._override.enable()
        return self.caches

    def __exit__(self, *exc_info: object) -> None:
        try:
            for alias in self.caches:
                if alias in caches:
                    caches[alias].close()
        finally:
            self._override.disable()
            for entry in self.caches.values():
                delete_prefixed(entry["LOCATION"], self.prefix)


@pytest.fixture
def cachewise_caches(redis_server: RedisServerInfo) -> Iterator[dict[str, dict[str, Any]]]:
    """``settings.CACHES`` on the test Redis under a prefix unique to this test, cleaned after."""
    with isolated_caches(redis_server) as caches:
        yield caches


@pytest.fixture
def redis_client(cachewise_caches: dict[str, dict[str, Any]]) -> Iterator[Any]:
    """A raw redis-py client on the database of the ``default`` alias."""
    client = redis.Redis.from_url(cachewise_caches["default"]["LOCATION"])
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def disposable_redis() -> Iterator[EmbeddedRedis]:
    """A private redis-server for this test alone: kill it, restart it, pause it."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()
