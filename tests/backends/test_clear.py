"""``OPTIONS["clear"] = "generation"``: clear() in one command whatever the database holds.

The default (``"scan"``) is exact in every process at once but SCANs the whole database; the
generation mode moves the cache to new keys with one INCR. What a user must see: cleared keys
are gone at once in the clearing process and within REFRESH_SECONDS in every other one, keys of
other prefixes are untouched, and the cost does not grow with them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis

from cachewise.backends import generation
from cachewise.backends.redis import RedisCache
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import ConfigurationError


def make_cache(url: str, prefix: str, **options: Any) -> RedisCache:
    alias = f"clear-{uuid.uuid4().hex[:8]}"
    return RedisCache(
        url, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": alias, "clear": "generation", **options}}
    )


def _commands(client: redis.Redis) -> dict[str, int]:
    return {name[8:]: int(stats["calls"]) for name, stats in client.info("commandstats").items()}


def test_generation_clear_is_one_command_among_many_foreign_keys(disposable_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(disposable_redis.url)
    for start in range(0, 100_000, 10_000):
        client.mset({f"foreign:{i}": "v" for i in range(start, start + 10_000)})
    cache = make_cache(disposable_redis.url, "own")
    cache.set_many({f"k{i}": i for i in range(2000)})
    assert cache.get("k5") == 5
    client.config_resetstat()
    cache.clear()
    sent = _commands(client)
    sent.pop("config", None)  # the CONFIG RESETSTAT itself
    # One script on the server clock: no SCAN, no UNLINK, whatever the db holds.
    assert sent == {"evalsha": 1, "time": 1, "get": 1, "set": 1}
    assert cache.get("k5") is None
    assert cache.get_many(["k1", "k2"]) == {}
    assert client.get("foreign:5") == b"v"  # other prefixes untouched
    cache.set("k5", "new")
    assert cache.get("k5") == "new"
    assert client.dbsize() == 100_000 + 2000 + 1 + 1  # old keys left to expire, the counter, k5


def test_other_processes_see_the_clear_within_the_refresh_period(disposable_redis: EmbeddedRedis) -> None:
    """A second setup (as another process has) on the same prefix reads the new generation."""
    prefix = f"p{uuid.uuid4().hex[:6]}"
    clearing = make_cache(disposable_redis.url, prefix)
    other = make_cache(disposable_redis.url, prefix)  # another alias: its own Generation object
    assert clearing._generation is not other._generation
    clearing.set("k", "old")
    assert other.get("k") == "old"
    clearing.clear()
    assert clearing.get("k") is None
    deadline = time.monotonic() + generation.REFRESH_SECONDS + 0.5
    while other.get("k") is not None:
        assert time.monotonic() < deadline, "the other process still reads the cleared key"
        time.sleep(0.05)
    other.set("k", "fresh")
    assert clearing.get("k") == "fresh"  # both write and read the new generation


def test_async_clear_moves_to_a_new_generation(disposable_redis: EmbeddedRedis) -> None:
    cache = make_cache(disposable_redis.url, f"a{uuid.uuid4().hex[:6]}")

    async def run() -> Any:
        await cache.aset("k", 1)
        await cache.aclear()
        value = await cache.aget("k")
        await cache.adisconnect()
        return value

    assert asyncio.run(run()) is None


def test_a_lost_generation_key_never_brings_old_entries_back(disposable_redis: EmbeddedRedis) -> None:
    """The generation restarts at the clock when its key is gone (evicted, FLUSHDB, restart)."""
    client = redis.Redis.from_url(disposable_redis.url)
    prefix = f"l{uuid.uuid4().hex[:6]}"
    first = make_cache(disposable_redis.url, prefix)
    first.set("k", "old")
    client.delete(f"{prefix}:__generation__")  # as an eviction would
    fresh = make_cache(disposable_redis.url, prefix)  # a process started after the loss
    assert fresh.get("k") is None
    first.clear()
    assert first.get("k") is None
    first.set("k", "new")
    time.sleep(generation.REFRESH_SECONDS + 0.1)
    assert fresh.get("k") == "new"


def test_scan_stays_the_default_and_unknown_modes_are_refused(disposable_redis: EmbeddedRedis) -> None:
    default = RedisCache(disposable_redis.url, {"KEY_PREFIX": "d", "OPTIONS": {"alias": "d-default"}})
    assert default._generation is None
    with pytest.raises(ConfigurationError, match="OPTIONS\\['clear'\\]"):
        make_cache(disposable_redis.url, "x", clear="fast").get("k")
