"""System check W025: sessions that a flood of cache writes can evict (deploy, live).

Kept apart from :mod:`cachewise.checks.caches` (imported by it, so ``ready()`` registers it too). Also
tells :func:`cachewise.checks.caches.check_redis_memory` which servers hold sessions alone: for those,
``noeviction`` is the recommended policy, not a mistake (W007 stays silent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from .redis_probe import LIVE_CHECK_TIMEOUT, RedisTarget, connect, redis_targets

__all__ = ["check_sessions_eviction", "sessions_only_servers"]

Messages = list[CheckMessage]


def _cache_sessions_alias() -> str | None:
    """The alias holding sessions when they live only in the cache (``backends.cache``), else None.

    ``cached_db`` is not counted: an evicted session is read back from the database.
    """
    if getattr(settings, "SESSION_ENGINE", "") != "django.contrib.sessions.backends.cache":
        return None
    return str(getattr(settings, "SESSION_CACHE_ALIAS", "default"))


def sessions_only_servers() -> set[tuple[str, int]]:
    """Servers (host, port) on which the cache-sessions alias is the only alias configured."""
    alias = _cache_sessions_alias()
    if alias is None or alias == "default":
        return set()
    by_server: dict[tuple[str, int], set[str]] = {}
    for name, _entry, target in redis_targets():
        by_server.setdefault((target.host, target.port), set()).add(name)
    return {address for address, names in by_server.items() if names == {alias}}


def _server_identity(target: RedisTarget) -> tuple[str, dict[str, Any]] | None:
    """``(run_id, memory info)`` of the server behind ``target``; None when it cannot be asked.

    The run id tells that two aliases use one server even when their URLs spell it differently
    (``localhost`` and ``127.0.0.1``, a DNS alias).
    """
    client = None
    try:
        client = connect(target, LIVE_CHECK_TIMEOUT)
        run_id = str(client.info("server").get("run_id", ""))
        memory: dict[str, Any] = client.info("memory")
        return run_id, memory
    except Exception:  # noqa: BLE001 - unreachable: W008 reports it, this check has nothing to add
        return None
    finally:
        if client is not None:
            client.close()


def _sessions_neighbours(alias: str) -> tuple[list[str], dict[str, Any]] | None:
    """Aliases on the sessions' server besides theirs, and its memory info (None: unknown)."""
    targets = {name: target for name, _entry, target in redis_targets()}
    if alias not in targets:
        return None
    identities = {name: _server_identity(target) for name, target in targets.items()}
    own = identities[alias]
    if own is None:
        return None
    others = [name for name, found in identities.items() if name != alias and found and found[0] == own[0]]
    return others, own[1]


@register(Tags.caches, deploy=True)
def check_sessions_eviction(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W025 (deploy, live): cache sessions on a server that evicts, shared with another cache.

    Redis evicts per server, not per logical database, and every session has a TTL, so under
    any ``allkeys-*`` or ``volatile-*`` policy a flood of page or data writes evicts sessions
    (logs users out). Sessions alone on their server, or on a ``noeviction`` server, are safe.
    """
    alias = _cache_sessions_alias()
    found = None if alias is None else _sessions_neighbours(alias)
    if alias is None or found is None:
        return []
    others, info = found
    policy = str(info.get("maxmemory_policy", ""))
    if (
        (alias != "default" and not others)
        or policy == "noeviction"
        or not int(info.get("maxmemory", 0) or 0)
    ):
        return []
    shared = ", ".join(repr(name) for name in others) or "'default' (pages and data)"
    return [
        CheckWarning(
            f"Sessions (SESSION_CACHE_ALIAS={alias!r}) share a Redis server with the cache {shared}, "
            f"and that server evicts (maxmemory-policy {policy}): a flood of cache writes, such as "
            "anonymous requests for pages nobody asked for before, evicts sessions and logs users "
            "out. Logical databases do not help: eviction is per server, and sessions have TTLs, "
            "so volatile-* policies evict them too.",
            hint="Put sessions on a Redis server of their own with maxmemory-policy noeviction: "
            "caches_from_url(url, sessions_url=...) or SESSIONS_REDIS_URL with caches_from_env(). "
            "See docs/configuration.md, 'Sessions and counters under cache pressure'.",
            obj=alias,
            id="cachewise.W025",
        )
    ]
