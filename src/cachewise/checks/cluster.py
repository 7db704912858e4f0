"""Deploy checks of a Redis Cluster under a cache: would one dead node stop the whole cache?

========================  =========================================================================
``cachewise.W080``        deploy, live: a cluster node has ``cluster-require-full-coverage yes``
``cachewise.W081``        deploy, live: the cluster's settings could not be read (unreachable, or
                          ``CONFIG`` disabled, as on some managed services)
``cachewise.E082``        ``CACHEWISE_ORM_REPLICAS`` on an ORM cache that cannot ``WAIT`` (a
                          cluster, or a cache that is not Redis): every save would raise after
                          its commit
``cachewise.W083``        ``CACHEWISE_ORM_REPLICA_TIMEOUT`` not below the ORM cache's
                          ``socket_timeout``: a slow replica would read as an outage
========================  =========================================================================

With ``cluster-require-full-coverage yes`` (Redis' default) every node stops serving as soon as
one slot has no master: a single dead master with no replica to promote takes the whole cluster
down, so the per-node breakers (docs/backend.md) can only keep the other keys up with ``no``.
``cluster-allow-reads-when-down yes`` also keeps reads on a node whose cluster is marked down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning

from cachewise.conf import conf
from cachewise.exceptions import ConfigurationError

from .redis_probe import RedisTarget, connect, explain_error, is_cachewise_backend, redis_target

LIVE_CHECK_TIMEOUT = 1.0
HINT = (
    "Set cluster-require-full-coverage no (and cluster-allow-reads-when-down yes) on every node "
    "(CONFIG SET, and in the nodes' config files): a dead master then costs only the keys of its "
    "slots until its replica is promoted. See docs/backend.md, 'Redis Cluster'."
)


def _cluster_targets() -> list[tuple[str, RedisTarget]]:
    found: dict[tuple[str, int], tuple[str, RedisTarget]] = {}
    for alias, entry in (getattr(settings, "CACHES", {}) or {}).items():
        if not is_cachewise_backend(entry.get("BACKEND")):
            continue
        location = entry.get("LOCATION")
        text = location[0] if isinstance(location, (list, tuple)) and location else str(location or "")
        cluster = "+cluster://" in text or bool((entry.get("OPTIONS") or {}).get("cluster"))
        if not cluster:
            continue
        plain = text.replace("redis+cluster://", "redis://").replace("rediss+cluster://", "rediss://")
        try:
            target = redis_target(alias, {**entry, "LOCATION": plain})
        except ConfigurationError:
            continue  # E004 reports it
        if target is not None:
            found.setdefault((target.host, target.port), (alias, target))
    return list(found.values())


def _settings_of(target: RedisTarget) -> list[tuple[str, dict[str, str]]]:
    """(node, its two settings) for every master of the cluster ``target`` belongs to."""
    client = connect(target, LIVE_CHECK_TIMEOUT)
    try:
        nodes = [(target.host, target.port)]
        for _start, _end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            nodes.append((host or target.host, int(master[1])))
    finally:
        client.close()
    out = []
    for host, port in dict.fromkeys(nodes):
        node = RedisTarget(target.alias, f"redis://{host}:{port}/0", host, port, 0, target.connection_kwargs)
        node_client = connect(node, LIVE_CHECK_TIMEOUT)
        try:
            values: dict[str, str] = {}
            for name in ("cluster-require-full-coverage", "cluster-allow-reads-when-down"):
                values.update({str(k): str(v) for k, v in node_client.config_get(name).items()})
        finally:
            node_client.close()
        out.append((f"{host}:{port}", values))
    return out


@register(Tags.caches, deploy=True)
def check_cluster_coverage(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W080/W081 (deploy, live): a cache cluster that would stop whole when one node dies."""
    messages: list[CheckMessage] = []
    for alias, target in _cluster_targets():
        try:
            nodes = _settings_of(target)
        except Exception as exc:  # noqa: BLE001 - never let `check --deploy` crash
            messages.append(
                CheckWarning(
                    f"Could not read the Redis Cluster settings of cache {alias!r}: "
                    f"{explain_error(exc, target, LIVE_CHECK_TIMEOUT)}",
                    hint=f"Check them by hand on every node: {HINT}",
                    obj=alias,
                    id="cachewise.W081",
                )
            )
            continue
        whole = [name for name, values in nodes if values.get("cluster-require-full-coverage") == "yes"]
        if whole:
            messages.append(
                CheckWarning(
                    f"Redis Cluster of cache {alias!r} stops whole when one node dies: "
                    f"cluster-require-full-coverage is yes on {', '.join(whole)}, so every node "
                    "refuses commands while any slot has no master (a dead master before its "
                    "replica is promoted, or for good if it has none).",
                    hint=HINT,
                    obj=alias,
                    id="cachewise.W080",
                )
            )
    return messages


_REDIS_BACKENDS = ("django.core.cache.backends.redis.RedisCache", "django_redis.cache.RedisCache")


@register(Tags.caches)
def check_orm_replicas(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E082/W083: ``CACHEWISE_ORM_REPLICAS`` where ``WAIT`` cannot run, or would trip the breaker."""
    if conf.ORM_REPLICAS <= 0:
        return []
    alias = conf.ORM_CACHE
    entry = (getattr(settings, "CACHES", {}) or {}).get(alias) or {}
    backend, options = entry.get("BACKEND"), entry.get("OPTIONS") or {}
    location = entry.get("LOCATION")
    text = location[0] if isinstance(location, (list, tuple)) and location else str(location or "")
    cluster = "+cluster://" in text or bool(options.get("cluster"))
    if cluster or not (is_cachewise_backend(backend) or backend in _REDIS_BACKENDS):
        where = "a Redis Cluster" if cluster else f"{backend!r}"
        return [
            CheckError(
                f"CACHEWISE_ORM_REPLICAS={conf.ORM_REPLICAS} but the ORM cache {alias!r} is {where}: "
                "it cannot confirm bumps with WAIT, so every save would raise ConfigurationError "
                "after its commit.",
                hint="Use a single Redis primary or Sentinel for CACHEWISE_ORM_CACHE, or set "
                "CACHEWISE_ORM_REPLICAS = 0. See docs/orm.md, 'When a replica is promoted'.",
                obj=alias,
                id="cachewise.E082",
            )
        ]
    socket_timeout = options.get("socket_timeout", 0.5 if is_cachewise_backend(backend) else None)
    if socket_timeout is not None and float(socket_timeout) <= conf.ORM_REPLICA_TIMEOUT:
        return [
            CheckWarning(
                f"CACHEWISE_ORM_REPLICA_TIMEOUT={conf.ORM_REPLICA_TIMEOUT} s is not below the "
                f"socket_timeout ({socket_timeout} s) of the ORM cache {alias!r}: WAIT holds the "
                "connection, so a replica slower than the socket timeout reads as an outage and "
                "opens the circuit breaker.",
                hint="Keep CACHEWISE_ORM_REPLICA_TIMEOUT well below socket_timeout (0.1 s vs 0.5 s "
                "by default).",
                obj=alias,
                id="cachewise.W083",
            )
        ]
    return []
