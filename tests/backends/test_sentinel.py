"""Redis Sentinel: the contract suite through a sentinel, replica reads, and a real failover.

Each topology is three EmbeddedRedis processes on loopback: a master, a replica
(``--replicaof``) and a sentinel (``--sentinel`` with a config file it can rewrite), with short
sentinel timeouts so that a failover takes about a second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

import tests.backends.test_contract as contract
from cachewise.backends.redis import RedisCache
from cachewise.caches_url import caches_from_url
from cachewise.checks.caches import check_redis_memory
from cachewise.checks.redis_probe import connect, explain_error, redis_target
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import ConfigurationError
from cachewise.store.raw_client import get_redis_client

SERVICE = "cwmaster"


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Topology:
    """A master, a replica and a sentinel monitoring them as ``SERVICE``; stop() ends all three."""

    def __init__(self) -> None:
        self.servers: list[EmbeddedRedis] = []
        self.master = self._start(EmbeddedRedis())
        self.replica = self._start(
            EmbeddedRedis(extra_args=["--replicaof", "127.0.0.1", str(self.master.port)])
        )
        config = (
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
        )
        self.sentinel = self._start(EmbeddedRedis(config_text=config, extra_args=["--sentinel"]))
        with redis.Redis(port=self.sentinel.port, decode_responses=True) as sentinel:
            _wait_for(lambda: self._replica_ready(sentinel), 10, "the sentinel to see the replica")

    def _start(self, server: EmbeddedRedis) -> EmbeddedRedis:
        self.servers.append(server)
        return server.start()

    @staticmethod
    def _replica_ready(sentinel: redis.Redis) -> bool:
        replicas = sentinel.sentinel_slaves(SERVICE)
        return bool(replicas) and replicas[0]["master-link-status"] == "ok"

    def url(self, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/{db}"

    def failover_done(self) -> bool:
        """The sentinel has switched the service to the replica (+switch-master)."""
        with redis.Redis(port=self.sentinel.port, decode_responses=True) as sentinel:
            return int(sentinel.sentinel_master(SERVICE)["port"]) == self.replica.port

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    setup = Topology()
    try:
        yield setup
    finally:
        setup.stop()


def _backend(url: str, **options: Any) -> RedisCache:
    return RedisCache(url, {"KEY_PREFIX": f"s{uuid.uuid4().hex[:10]}", "TIMEOUT": 300, "OPTIONS": options})


@pytest.fixture
def cache(topology: Topology) -> Iterator[RedisCache]:
    backend = _backend(topology.url())
    try:
        yield backend
    finally:
        backend.clear()
        asyncio.run(backend.adisconnect())


class TestSentinelContract(contract.TestContract):
    """Every test of the Django cache contract, through Redis Sentinel."""


def _role(client: redis.Redis) -> str:
    return str(client.info("replication")["role"])


def test_writes_land_on_the_master_and_replicate(cache: RedisCache, topology: Topology) -> None:
    cache.set("key", {"v": 1})
    full_key = cache.make_and_validate_key("key")
    assert _role(cache.get_client()) == "master"
    with redis.Redis(port=topology.master.port) as master, redis.Redis(port=topology.replica.port) as replica:
        assert master.exists(full_key)
        _wait_for(lambda: bool(replica.exists(full_key)), 5, "replication")
    # Without replica_reads, reads go to the master too (a replica may lag behind).
    assert _role(cache.get_client(write=False)) == "master"


def test_replica_reads_only_when_asked(topology: Topology) -> None:
    backend = _backend(topology.url(), replica_reads=True)
    assert _role(backend.get_client()) == "master"
    assert _role(backend.get_client(write=False)) == "slave"
    backend.set("key", 42)
    with redis.Redis(port=topology.replica.port) as replica:
        key = backend.make_and_validate_key("key")
        _wait_for(lambda: bool(replica.exists(key)), 5, "replication")
    assert backend.get("key") == 42
    backend.clear()


def test_caches_from_url_puts_sessions_on_the_next_database_of_the_service(topology: Topology) -> None:
    configured = caches_from_url(topology.url(2), key_prefix=f"p{uuid.uuid4().hex[:8]}")
    assert configured["sessions"]["LOCATION"] == topology.url(3)
    with override_settings(CACHES=configured):
        caches["sessions"].set("session", "data")
        assert caches["sessions"].get("session") == "data"
        client = get_redis_client("sessions")
        assert client.connection_pool.connection_kwargs["db"] == 3
        assert _role(client) == "master"
        with redis.Redis(port=topology.master.port, db=3) as master:
            assert master.exists(caches["sessions"].make_and_validate_key("session"))
        caches["sessions"].clear()


def test_async_api_through_sentinel(cache: RedisCache) -> None:
    async def scenario() -> None:
        await cache.aset_many({f"k{i}": i for i in range(10)})
        assert await cache.aget_many([f"k{i}" for i in range(10)]) == {f"k{i}": i for i in range(10)}
        assert await cache.aincr("k1", 10) == 11
        assert _role(cache.get_client()) == "master"
        await cache.adisconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("location", "options", "says"),
    [
        ("redis+sentinel://127.0.0.1:26379/", {}, "no service name"),
        ("redis+sentinel:///cwmaster/0", {}, "no sentinel hosts"),
        ("redis+sentinel://127.0.0.1:263790/cwmaster/0", {}, "invalid port"),
        ("redis+sentinel://127.0.0.1:26379/cwmaster/x", {}, "invalid database"),
        ("redis://127.0.0.1:6379/0", {"replica_reads": True}, "need a Sentinel LOCATION"),
        ("redis+sentinel://127.0.0.1:26379/cwmaster/0", {"cluster": True}, "cannot be combined"),
    ],
)
def test_malformed_sentinel_configuration_is_refused(
    location: str, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        RedisCache(location, {"OPTIONS": options}).get("key")
    if not options:
        with pytest.raises(ConfigurationError, match=says):
            caches_from_url(location, key_prefix="p")


def test_probe_resolves_the_master_through_the_sentinel(topology: Topology) -> None:
    entry = {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": topology.url(1)}
    target = redis_target("default", entry)
    assert target is not None
    assert target.db == 1
    client = connect(target, timeout=1.0)
    try:
        assert client.ping()
        assert _role(client) == "master"
        assert client.connection_pool.connection_kwargs["db"] == 1
    finally:
        client.close()
    wrong = redis_target(
        "default", {**entry, "LOCATION": f"redis+sentinel://127.0.0.1:{topology.sentinel.port}/nope"}
    )
    assert wrong is not None
    with pytest.raises(redis.ConnectionError) as excinfo:
        connect(wrong, timeout=1.0)
    assert "no sentinel named a healthy master" in explain_error(excinfo.value, wrong)


def test_failover_reads_fail_open_then_the_new_master_serves() -> None:
    """The master crashes: while the sentinel promotes the replica the caller sees misses, never an
    exception; then the client finds the new master through the sentinel, with no restart."""
    setup = Topology()
    backend = _backend(setup.url(), cooldown=0.3, failure_threshold=3)
    try:
        backend.set("before", "old master")
        setup.master.kill()
        reads = 0
        deadline = time.monotonic() + 10
        while not setup.failover_done():
            assert time.monotonic() < deadline, "the sentinel did not fail over within 10 s"
            assert backend.get("before", "fallback") in ("fallback", "old master")  # never raises
            reads += 1
            time.sleep(0.02)
        assert reads > 0

        def write_and_read() -> bool:
            backend.set("after", "new master")  # fails open (skipped) until the new master answers
            return bool(backend.get("after") == "new master")

        _wait_for(write_and_read, 8, "writes and reads on the new master")
        assert _role(backend.get_client()) == "master"
        with redis.Redis(port=setup.replica.port) as new_master:
            assert new_master.get(backend.make_and_validate_key("after")) is not None
    finally:
        asyncio.run(backend.adisconnect())
        setup.stop()


def test_deploy_memory_check_reads_the_master_found_by_the_sentinel(topology: Topology) -> None:
    with override_settings(CACHES=caches_from_url(topology.url(), key_prefix="chk")):
        ids = {message.id for message in check_redis_memory()}
    assert ids == {"cachewise.W006"}  # the master answered: it has no maxmemory (W008: unreachable)
    broken = f"redis+sentinel://127.0.0.1:{topology.sentinel.port}/nope/0"
    with override_settings(CACHES=caches_from_url(broken, key_prefix="chk")):
        messages = check_redis_memory()
    assert {message.id for message in messages} == {"cachewise.W008"}
    assert "no sentinel named a healthy master" in messages[0].msg
