"""Every documented Sentinel LOCATION form, with three sentinels, one of them possibly down.

The topology (:class:`tests.ha_topology.SentinelSetup`) is a master, a replica and three
sentinels as real processes. A LOCATION names all three; the backend used to split it at the
commas before recognising the scheme and refuse it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from cachewise.backends.redis import RedisCache
from cachewise.caches_url import caches_from_url, split_location
from cachewise.checks.caches import check_redis_memory
from cachewise.checks.redis_probe import connect, redis_target
from cachewise.store.raw_client import get_redis_client
from tests.ha_topology import SERVICE, SentinelSetup

BACKEND = "cachewise.backends.redis.RedisCache"


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(sentinels=3)
    try:
        yield setup
    finally:
        setup.stop()


def _role(client: Any) -> str:
    return str(client.info("replication")["role"])


def _round_trip(alias: str = "default") -> None:
    cache = caches[alias]
    key = f"k{uuid.uuid4().hex[:8]}"
    cache.set(key, {"v": key})
    assert cache.get(key) == {"v": key}
    assert _role(get_redis_client(alias)) == "master"
    cache.delete(key)


def test_the_url_names_three_sentinels(sentinels: SentinelSetup) -> None:
    url = sentinels.url()
    assert url.count(",") == 2
    assert split_location(url) == [url]
    assert split_location("redis://a:1/0,redis://b:2/0") == ["redis://a:1/0", "redis://b:2/0"]


@pytest.mark.parametrize("form", ["string", "list"])
def test_a_plain_caches_entry(sentinels: SentinelSetup, form: str) -> None:
    location: Any = sentinels.url(2) if form == "string" else [sentinels.url(2)]
    entry = {"BACKEND": BACKEND, "LOCATION": location, "KEY_PREFIX": f"p{uuid.uuid4().hex[:8]}"}
    with override_settings(CACHES={"default": entry}):
        _round_trip()
        assert get_redis_client().connection_pool.connection_kwargs["db"] == 2


def test_caches_from_url_default_and_sessions(sentinels: SentinelSetup) -> None:
    configured = caches_from_url(sentinels.url(4), key_prefix=f"p{uuid.uuid4().hex[:8]}")
    assert configured["sessions"]["LOCATION"] == sentinels.url(5)
    with override_settings(CACHES=configured):
        _round_trip("default")
        _round_trip("sessions")
        assert get_redis_client("sessions").connection_pool.connection_kwargs["db"] == 5


def test_the_django_redis_sentinels_option(sentinels: SentinelSetup) -> None:
    entry = {
        "BACKEND": BACKEND,
        "LOCATION": f"redis://{SERVICE}/3",
        "KEY_PREFIX": f"p{uuid.uuid4().hex[:8]}",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "SENTINELS": [("127.0.0.1", s.port) for s in sentinels.sentinels],
        },
    }
    with override_settings(CACHES={"default": entry}):
        _round_trip()


def test_replica_reads_and_async_with_three_sentinels(sentinels: SentinelSetup) -> None:
    backend = RedisCache(
        sentinels.url(), {"KEY_PREFIX": f"r{uuid.uuid4().hex[:8]}", "OPTIONS": {"replica_reads": True}}
    )
    assert _role(backend.get_client(write=False)) == "slave"

    async def scenario() -> None:
        await backend.aset("k", 1)
        assert await backend.aget("k") == 1
        await backend.adisconnect()

    asyncio.run(scenario())
    backend.clear()


def test_probe_check_and_ping_resolve_the_master(sentinels: SentinelSetup) -> None:
    entry = {"BACKEND": BACKEND, "LOCATION": sentinels.url(1)}
    target = redis_target("default", entry)
    assert target is not None
    assert target.url == sentinels.url(1)
    client = connect(target, timeout=1.0)
    try:
        assert _role(client) == "master"
        assert client.connection_pool.connection_kwargs["db"] == 1
    finally:
        client.close()
    with override_settings(CACHES=caches_from_url(sentinels.url(), key_prefix="chk")):
        ids = {message.id for message in check_redis_memory()}
    assert ids == {"cachewise.W006"}  # the master answered (W008 would say unreachable)


def test_one_sentinel_of_three_down_before_start_up() -> None:
    """The first sentinel of the URL is dead before the process starts: the others answer."""
    setup = SentinelSetup(sentinels=3)
    try:
        setup.sentinels[0].kill()
        for location in (setup.url(), [setup.url()]):
            entry = {"BACKEND": BACKEND, "LOCATION": location, "KEY_PREFIX": f"d{uuid.uuid4().hex[:8]}"}
            with override_settings(CACHES={"default": entry}):
                _round_trip()
        with override_settings(CACHES=caches_from_url(setup.url(), key_prefix=f"d{uuid.uuid4().hex[:8]}")):
            _round_trip("default")
            _round_trip("sessions")
        with redis.Redis(port=setup.master.port) as master:
            assert _role(master) == "master"
    finally:
        setup.stop()
