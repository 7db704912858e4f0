"""Every Lua script runs one way: EVALSHA, and after the server forgot it (SCRIPT FLUSH, a
restart) exactly one SCRIPT LOAD, then never again."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from django.core.cache import caches

from cachewise import Counter
from cachewise.backends.redis import RedisCache
from cachewise.counters.redis import RedisBatches
from cachewise.embedded import EmbeddedRedis
from cachewise.monitoring import aggregate
from cachewise.monitoring.metrics import record
from cachewise.orm import generations
from cachewise.pagecache import budget
from cachewise.store import packs
from cachewise.store.adapter import Entry
from cachewise.store.choice import get_store
from cachewise.store.fill_budget import FillBudget
from cachewise.store.scripts import REGISTRY, counts, items, run, run_many, versions
from cachewise.store.stamped import StampedEntry, StampedFill
from cachewise.testing import RedisServerInfo, isolated_caches

pytestmark = pytest.mark.django_db(transaction=True)

#: Imported so that REGISTRY holds every script.
SCRIPT_MODULES = (items, versions, counts)


@pytest.fixture
def server(disposable_redis: EmbeddedRedis) -> Iterator[tuple[EmbeddedRedis, Any]]:
    info = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    with isolated_caches(info):
        client = redis.Redis.from_url(disposable_redis.url)
        client.config_set("maxmemory-policy", "noeviction")  # counters refuse evicting servers
        try:
            yield disposable_redis, client
        finally:
            client.close()


def _loads(client: Any) -> int:
    """SCRIPT commands so far (Redis 7.0 counts its subcommands together; between two reads here
    only cachewise's NOSCRIPT reloads send one)."""
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command("INFO", "commandstats")
        text = connection.read_response().decode()
    finally:
        client.connection_pool.release(connection)
    for line in text.splitlines():
        if line.startswith(("cmdstat_script:", "cmdstat_script|load:")):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def _tour(url: str) -> None:
    """Every operation that runs a script, once or more each."""
    store, cache = get_store("default"), cast(Any, caches["default"])
    store.read_waiting("item")
    token, read = store.acquire_read("item", 5)
    assert token is not None
    assert read is not None
    assert store.extend("item", token, 5)
    assert store.fill("item", Entry(1, 0.0, math.inf, 0.0), 60, token=token, fence=read.fence)
    token, read = store.acquire_read("capped", 5)
    assert token is not None
    assert read is not None
    cap = FillBudget("capped-budget", 1, 60, 10, lambda: True)
    assert store.fill("capped", Entry(1, 0.0, math.inf, 0.0), 60, token=token, fence=read.fence, budget=cap)
    store.settle_fence("other")
    folded = store.peek_or_lock("folded", ["c1"], 5)
    assert folded is not None
    held = folded[2]
    assert held is not None
    assert store.release("folded", held.token)
    lock = store.acquire("other", 5)
    assert lock is not None
    assert store.release("other", lock)
    store.invalidate("item")
    store.version("v", None)
    store.bump("v", None)
    store.version_clock("v", None)
    store.versioned_get("v", None, lambda version: f"data:v{version}")

    keys = ["c1", "c2"]
    _, stamp = generations.read("default", ["e"], keys, 600)
    assert stamp is not None
    generations.store("default", [StampedEntry("e", 1, 60, keys, stamp)])
    generations.store_batch("default", [StampedFill("r", 1, "c1", stamp[0])], ["c2"], stamp[1:], 60)
    own = f"own{uuid.uuid4().hex[:6]}"  # missing: the read runs the script that creates it
    packed = generations.read_packed("default", ["p"], [own, "c2"], 600, pack_head="pack:")
    assert packed.counters is not None
    pack = packs.Pack(
        "pack:",
        "r1",
        [packed.counters[1:], [packed.counters[0]], [{"a": 1}]],
        ["p"],
        [own],
        packed.counters[:1],
    )
    generations.store_packs("default", [pack], ["c2"], packed.counters[1:], 60)
    generations.bump("default", keys, 600)
    assert store.check_incarnation("incarnation", "epoch", 600) is not None

    counter = Counter(f"tour{uuid.uuid4().hex[:6]}")
    counter.incr(1)
    counter.incr_many({2: 1})
    counter.get_many([1, 2])

    def fail(pk: Any, delta: int) -> None:
        raise RuntimeError("apply failed: the batch goes back")

    with pytest.raises(RuntimeError):
        counter.flush(fail)
    counter.flush(lambda pk, delta: None)
    batches = RedisBatches(store, counter)  # type: ignore[arg-type]
    batches.discard(batches.run(), 0, [])

    record("hit", "default")
    assert aggregate.flush("default")
    budget.admit("default", "budget", 1, 60, 100)
    cache.set("n", 1)
    cache.incr("n")
    cache.incr("m", ignore_key_check=True)

    async def async_incr() -> None:
        try:
            await cache.aincr("n")
        finally:
            await cache.adisconnect()

    asyncio.run(async_incr())
    with cache.lock("lock", timeout=5) as held:
        held.extend(1)
        held.extend(5, replace_ttl=True)
    # The near cache's miss read (tests/backends/test_near.py covers it with the near cache on).
    run(store.client, items.READ_WITH_TTL, [cache.make_and_validate_key("n")], [])  # type: ignore[attr-defined]
    cleared = RedisCache(url, {"KEY_PREFIX": f"g{uuid.uuid4().hex[:6]}", "OPTIONS": {"clear": "generation"}})
    cleared.get("x")
    cleared.clear()
    cleared.close()


def test_every_script_reloads_once_after_script_flush(server: tuple[EmbeddedRedis, Any]) -> None:
    disposable, client = server
    _tour(disposable.url)
    assert all(client.script_exists(*(s.sha for s in REGISTRY.values())))  # the tour ran them all
    client.script_flush()
    before = _loads(client)
    _tour(disposable.url)  # every path still works
    assert _loads(client) - before == len(REGISTRY)  # exactly one reload per script
    assert all(client.script_exists(*(s.sha for s in REGISTRY.values())))
    before = _loads(client)
    _tour(disposable.url)
    assert _loads(client) == before


def test_pipelined_calls_reload_once_and_resend_only_what_was_refused(
    server: tuple[EmbeddedRedis, Any],
) -> None:
    _, client = server
    client.script_flush()
    before = _loads(client)
    calls = [([f"n{i}"], [i]) for i in range(5)]
    assert run_many(client, counts.INCR_ANYWAY, calls) == [0, 1, 2, 3, 4]
    assert _loads(client) - before == 1
    assert run_many(client, counts.INCR_ANYWAY, calls) == [0, 2, 4, 6, 8]  # each call ran once per batch
    assert run(client, counts.INCR_ANYWAY, ["n1"], [1]) == 3
    assert _loads(client) - before == 1
