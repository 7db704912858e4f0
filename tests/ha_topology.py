"""Real high-availability topologies on loopback, for the failover tests and ``bench/failover.py``.

:class:`SentinelSetup`: a master, a replica and three sentinels (quorum 2) monitoring them.
:class:`ClusterSetup`: a Redis Cluster of three masters with one replica each. Every server is
an :class:`~cachewise.embedded.EmbeddedRedis` process on a free loopback port, with short
failure-detection settings (``down-after-milliseconds``, ``cluster-node-timeout``) so a
failover takes one to three seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import redis

from cachewise.embedded import EmbeddedRedis, free_port

SERVICE = "hamaster"
SLOTS = 16384


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SentinelSetup:
    """A master, a replica and ``sentinels`` sentinels (quorum 2) monitoring them as ``SERVICE``."""

    def __init__(self, sentinels: int = 3, down_after_ms: int = 400) -> None:
        self.servers: list[EmbeddedRedis] = []
        try:
            self.master = self._start(EmbeddedRedis())
            self.replica = self._start(
                EmbeddedRedis(extra_args=["--replicaof", "127.0.0.1", str(self.master.port)])
            )
            config = (
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 4000\n"
            )
            self.sentinels = [
                self._start(EmbeddedRedis(config_text=config, extra_args=["--sentinel"]))
                for _ in range(sentinels)
            ]
            wait_for(self._ready, 20, "the sentinels to see the replica and each other", step=0.1)
        except BaseException:
            self.stop()
            raise

    def _start(self, server: EmbeddedRedis) -> EmbeddedRedis:
        self.servers.append(server)
        return server.start()

    def _ready(self) -> bool:
        for sentinel in self.sentinels:
            with redis.Redis(port=sentinel.port, decode_responses=True) as client:
                master = client.sentinel_master(SERVICE)
                replicas = client.sentinel_slaves(SERVICE)
                if int(master["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return False
                if not replicas or replicas[0]["master-link-status"] != "ok":
                    return False
        return True

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def named_master(self) -> int | None:
        """The port of the master the first live sentinel names."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                with redis.Redis(port=sentinel.port, socket_timeout=0.5) as client:
                    address = client.sentinel_get_master_addr_by_name(SERVICE)
                    return int(address[1]) if address else None
            except redis.RedisError:
                continue
        return None

    def failover_done(self) -> bool:
        """The sentinels name the replica as the master (+switch-master)."""
        return self.named_master() == self.replica.port

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
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


class ClusterSetup:
    """Three masters (slots split in thirds) with one replica each, ``cluster-node-timeout`` short."""

    def __init__(self, full_coverage: bool = False, node_timeout_ms: int = 500) -> None:
        self.nodes: list[EmbeddedRedis] = []
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-require-full-coverage", "yes" if full_coverage else "no",
            "--cluster-allow-reads-when-down", "no" if full_coverage else "yes",
            "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip
        try:
            for _ in range(6):
                self.nodes.append(self._start_node(args))
            self.masters, self.replicas = self.nodes[:3], self.nodes[3:]
            clients = [redis.Redis(port=node.port) for node in self.nodes]
            bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
            for index in range(3):
                clients[index].execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER", "ADDSLOTS", *range(bounds[index], bounds[index + 1])
                )
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)  # type: ignore[no-untyped-call]
            ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]  # type: ignore[no-untyped-call]
            wait_for(lambda: all(self._knows(client, ids) for client in clients), 20, "the nodes to meet")
            for index in range(3):
                clients[3 + index].execute_command("CLUSTER", "REPLICATE", ids[index])  # type: ignore[no-untyped-call]
            wait_for(lambda: self._healthy(clients), 30, "the cluster and its replicas", step=0.05)
            for client in clients:
                client.close()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _start_node(args: list[str]) -> EmbeddedRedis:
        for _ in range(5):
            node = EmbeddedRedis(port=_cluster_port(), databases=1, extra_args=args)
            try:
                return node.start()
            except Exception:  # lost the port race: try another pair
                continue
        raise RuntimeError("cluster node did not start")

    @staticmethod
    def _knows(client: redis.Redis, ids: list[str]) -> bool:
        known = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        text = known.decode() if isinstance(known, bytes) else str(known)
        return all(node_id in text for node_id in ids) and "handshake" not in text

    def _healthy(self, clients: list[redis.Redis]) -> bool:
        for client in clients:
            if client.cluster("INFO")["cluster_state"] != "ok":
                return False
        return all(client.info("replication").get("master_link_status") == "up" for client in clients[3:])

    def url(self, master: int = 0) -> str:
        """The cluster through the master ``master`` (a client starting after that master died
        needs another one to learn the slot map from)."""
        return f"redis+cluster://127.0.0.1:{self.masters[master].port}/0"

    def owner_port(self, slot: int) -> int | None:
        """The port of the master serving ``slot``, as a live node says."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with redis.Redis(port=node.port, socket_timeout=0.5) as client:
                    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            return int(master[1])
            except redis.RedisError:
                continue
        return None

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def key_slot(key: str) -> int:
    """The hash slot of ``key`` (with its ``{tag}``), as redis-py computes it."""
    from redis.crc import key_slot as slot

    return int(slot(key.encode()))
