"""Failure domains that follow the topology, and breakers that close when a new master is named.

Redis Cluster: one circuit breaker per node (``alias@host:port``), not per alias. The node's
connection pool (:class:`GuardedNodePool`) refuses a connection while its breaker is open, and
:meth:`ClusterDomains.attribute` feeds each outage to the breaker of the node it came from
(redis-py names the node on the error). So a dead master stops the keys of its slots only: keys
on the other masters keep their full service, where a per-alias breaker would stop the whole
cache, and a bigger cluster would be *less* available than one server.

Sentinel and Cluster: the breaker does not have to wait out its ``cooldown``. When a breaker
opens, a watcher thread (one per topology, alive only while a breaker it watches is open) polls
every :data:`WATCH_INTERVAL` seconds:

* Sentinel: which master the sentinels name (``SENTINEL get-master-addr-by-name``, skipping a
  sentinel that is down), and whether that master answers ``ROLE`` as a master: then the breaker
  closes. Polling was chosen over a ``+switch-master`` subscription: it needs no connection that
  must itself survive the failure of a sentinel, and it also closes the breaker when the old
  master simply comes back; 100 ms of polling is small next to a promotion of 1-3 s.
* Cluster: ``CLUSTER SLOTS`` from a node whose breaker is closed; once the node of an open
  breaker owns no slot any more (its replica was promoted), the client's slot map is refreshed
  and the breaker closes (keys now route to the new master, whose breaker is closed). A node that
  still owns its slots and answers ``PING`` again (restarted) closes its breaker too.

The async cluster client (``redis.asyncio.cluster``) has no guarded pools: its outages are
accounted per node, but its calls are not refused while a node's breaker is open.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel

from cachewise.resilience import CLOSED, HALF_OPEN, Breaker, Resilience

from .connection import ConnectionSettings, WaitingConnectionPool
from .sentinel import sentinel_arguments

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

__all__ = [
    "WATCH_INTERVAL",
    "ClusterDomains",
    "GuardedNodePool",
    "NodeCircuitOpenError",
    "attach",
    "cluster_domains_for",
]

logger = logging.getLogger("cachewise.resilience")

#: Seconds between two looks at the topology while a breaker is open.
WATCH_INTERVAL = 0.1
#: A watcher gives up after this many seconds; the breaker's own probe goes on, and the next
#: opening starts a new watcher.
WATCH_LIMIT = 600.0
#: Socket timeouts of the watcher's own short-lived connections.
PROBE_TIMEOUT = 0.3
_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


class NodeCircuitOpenError(MaxConnectionsError):
    """The breaker of a cluster node is open: the call was refused without touching the network.

    A ``MaxConnectionsError`` for redis-py's cluster client, which then neither drops the node's
    connections nor asks for a topology refresh (the watcher looks at the topology instead); not
    an outage of its own for the breakers (``counts_as_outage``), as it never reached the server.
    """

    counts_as_outage = False


class _Watcher:
    """A daemon thread that runs ``probe(open breakers)`` every WATCH_INTERVAL while any is open."""

    def __init__(self, name: str, probe: Callable[[list[Breaker]], None]) -> None:
        self.name = name
        self.probe = probe
        self._watched: set[Breaker] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, breaker: Breaker) -> None:
        """The breaker's ``on_open`` hook: watch it (start the thread if none runs)."""
        with self._lock:
            self._watched.add(breaker)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"cachewise-watch {self.name}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + WATCH_LIMIT
        while True:
            with self._lock:
                self._watched = {breaker for breaker in self._watched if breaker.state != CLOSED}
                if not self._watched or time.monotonic() > deadline:
                    self._watched.clear()
                    self._thread = None
                    return
                watched = list(self._watched)
            try:
                self.probe(watched)
            except (RedisError, OSError) as exc:  # a sentinel or node still down: look again later
                logger.debug("%s: topology probe failed: %s", self.name, exc)
            except Exception:  # a bug in a probe: said loudly, and the watcher goes on watching
                logger.exception("%s: topology probe failed", self.name)
            time.sleep(WATCH_INTERVAL)


def _probe_client(host: str, port: int, kwargs: dict[str, Any]) -> redis.Redis:
    """A one-connection client with short timeouts and no retries (closed by the caller)."""
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=PROBE_TIMEOUT,
        socket_connect_timeout=PROBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
        **{name: kwargs[name] for name in ("username", "password", "db", "client_name") if kwargs.get(name)},
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- Sentinel -----------------------------------------------------------------------------------


class SentinelWatch:
    """Close the breaker of a Sentinel service once the master the sentinels name answers."""

    def __init__(self, settings: ConnectionSettings) -> None:
        parsed, self.kwargs, sentinel_kwargs = sentinel_arguments(settings.url, settings.kwargs)
        sentinel_kwargs.update(
            socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT, retry=Retry(NoBackoff(), 0)
        )
        self.service = parsed.service
        self.sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.watcher = _Watcher(f"sentinel {parsed.service}", self.probe)

    def probe(self, breakers: Sequence[Breaker]) -> None:
        host, port = self.sentinel.discover_master(self.service)  # type: ignore[no-untyped-call, unused-ignore]
        with _probe_client(host, int(port), self.kwargs) as client:
            role = client.execute_command("ROLE")
        if _text(role[0]) == "master":
            for breaker in breakers:
                breaker.topology_changed(
                    f"the sentinels name {host}:{port} as the master of {self.service!r} and it answers"
                )


# -- Cluster ------------------------------------------------------------------------------------


class ClusterDomains:
    """The per-node breakers of one Redis Cluster client, and its watcher."""

    def __init__(self, alias: str, breaker_settings: dict[str, Any], kwargs: dict[str, Any]) -> None:
        self.alias = alias
        self.breaker_settings = dict(breaker_settings)
        self.kwargs = kwargs
        #: The sync RedisCluster these domains guard (set by the pool registry once built).
        self.client: RedisCluster | None = None
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()
        self.watcher = _Watcher(f"cluster {alias}", self.probe)

    def for_node(self, name: str) -> Breaker:
        """The breaker of node ``host:port`` (made on first use)."""
        breaker = self._breakers.get(name)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(name)
                if breaker is None:
                    breaker = Breaker(self.alias, label=f"{self.alias}@{name}", **self.breaker_settings)
                    breaker.on_open.append(self.watcher)
                    self._breakers[name] = breaker
        return breaker

    def breakers(self) -> dict[str, Breaker]:
        """Every node breaker made so far, by ``host:port``."""
        with self._lock:
            return dict(self._breakers)

    def attribute(self, exc: BaseException) -> Breaker | None:
        """The breaker of the node ``exc`` came from, or None when the error does not name one."""
        target = getattr(exc, "connection", None)
        host, port = getattr(target, "host", None), getattr(target, "port", None)
        if host is None or port is None:
            found = _ADDRESS.search(str(exc))
            if found is None:
                return None
            host, port = found.group(1).strip("[]"), found.group(2)
        return self.for_node(f"{host}:{port}")

    def pool_class(self) -> type[GuardedNodePool]:
        """A connection pool class whose pools consult these domains."""
        return type("GuardedNodePool", (GuardedNodePool,), {"domains": self})

    def probe(self, breakers: Sequence[Breaker]) -> None:
        client = self.client
        if client is None:
            return
        open_names = {breaker.label.rpartition("@")[2]: breaker for breaker in breakers}
        owners = self._slot_owners(client, set(open_names))
        if owners is None:
            return
        moved = [name for name in open_names if name not in owners]
        if moved:
            # The promotion happened: route the slots to their new masters before closing.
            client.nodes_manager.initialize()
            for name in moved:
                open_names[name].topology_changed(f"the cluster moved the slots of {name} to another master")
        for name, breaker in open_names.items():
            if name not in moved and self._answers(name):
                breaker.topology_changed(f"cluster node {name} answers again")

    def _slot_owners(self, client: RedisCluster, avoid: set[str]) -> set[str] | None:
        """The ``host:port`` of every master that owns slots, as a node that is not down says."""
        candidates = [node for node in client.nodes_manager.nodes_cache.values() if node.name not in avoid]
        candidates += [node for node in client.nodes_manager.startup_nodes.values() if node.name not in avoid]
        for node in candidates:
            try:
                with _probe_client(node.host, int(node.port), self.kwargs) as probe:
                    slots = probe.execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            owners = set()
            for entry in slots:
                master = entry[2]
                host = _text(master[0]) or node.host
                owners.add(f"{host}:{int(master[1])}")
            return owners
        return None

    def _answers(self, name: str) -> bool:
        host, _, port = name.rpartition(":")
        try:
            with _probe_client(host.strip("[]"), int(port), self.kwargs) as probe:
                return bool(probe.ping())
        except redis.RedisError:
            return False


class GuardedNodePool(WaitingConnectionPool):
    """The pool of one cluster node: refuses connections while the node's breaker is open.

    A successful call through a half-open breaker (the probe) closes it when its connection comes
    back still connected (redis-py drops a connection that failed before releasing it).
    """

    domains: ClusterDomains

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = f"{self.connection_kwargs.get('host')}:{self.connection_kwargs.get('port')}"
        self.breaker = self.domains.for_node(self.node)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.allow():
            raise NodeCircuitOpenError(
                f"cache {self.domains.alias!r}: circuit open for cluster node {self.node}"
            )
        return super().get_connection(*args, **kwargs)

    def release(self, connection: Any) -> None:
        if self.breaker.state == HALF_OPEN and getattr(connection, "_sock", None) is not None:
            self.breaker.record_success()
        super().release(connection)


_CLUSTERS: dict[tuple[Any, ...], ClusterDomains] = {}
_SENTINELS: dict[tuple[Any, ...], SentinelWatch] = {}
_LOCK = threading.Lock()


def cluster_domains_for(settings: ConnectionSettings) -> ClusterDomains | None:
    """The failure domains registered for this cluster client, if any (used by the pool registry)."""
    return _CLUSTERS.get(settings.key)


def attach(
    alias: str, servers: Sequence[ConnectionSettings], breaker: Breaker, resilience: Resilience
) -> None:
    """Give an alias the failure domains of its topology: node breakers on a cluster, a watcher
    on Sentinel. Nothing for a plain server (its breaker keeps its cooldown)."""
    first = servers[0]
    if first.cluster:
        with _LOCK:
            domains = _CLUSTERS.get(first.key)
            if domains is None:
                settings = {
                    name: getattr(breaker, name)
                    for name in ("failure_threshold", "failure_window", "cooldown", "timeout_threshold")
                }
                domains = _CLUSTERS[first.key] = ClusterDomains(alias, settings, first.kwargs)
        resilience.attribute = domains.attribute
    elif first.sentinel_role:
        with _LOCK:
            watch = _SENTINELS.get(first.key)
            if watch is None:
                watch = _SENTINELS[first.key] = SentinelWatch(first)
        if watch.watcher not in breaker.on_open:
            breaker.on_open.append(watch.watcher)
