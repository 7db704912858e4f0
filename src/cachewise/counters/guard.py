"""Counters refuse a Redis server whose eviction policy could drop their keys.

Under ``maxmemory`` with an ``allkeys-*`` policy, Redis evicts any key when memory is full, and
an evicted live hash or pending batch is increments lost without a trace (issue 13: 5,623 of
6,000 lost to ordinary cache traffic). Under ``volatile-*`` only keys with a TTL are evicted:
counters are stored without one unless created with ``ttl=``. Under ``noeviction`` a full server
refuses writes, so ``incr`` raises: loud, never silent.

So ``incr``, ``incr_many`` and ``flush`` read the server's ``maxmemory`` and
``maxmemory-policy`` (``CONFIG GET``, once a minute per process and cache) and raise
:class:`~cachewise.exceptions.ConfigurationError` when the counter's keys could be evicted. A
server that does not allow ``CONFIG`` (some managed services) cannot be checked: that is logged
once and the counter works. ``manage.py check --deploy`` reports the same as
``cachewise.E030`` (:func:`cachewise.checks.caches.check_counter_eviction`).
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from cachewise.exceptions import CacheServerError, ConfigurationError

if TYPE_CHECKING:
    from cachewise.store.redis import RedisStore

    from .counter import Counter

__all__ = ["can_evict", "ensure_kept", "eviction_settings"]

logger = logging.getLogger("cachewise.counters")

CHECK_EVERY = 60.0
_UNKNOWN = ("", 0)
_seen: weakref.WeakKeyDictionary[Any, tuple[float, tuple[str, int]]] = weakref.WeakKeyDictionary()
_warned: set[str] = set()


def can_evict(policy: str, maxmemory: int, *, ttl: bool) -> bool:
    """Whether a server with ``policy`` and ``maxmemory`` may evict keys (with a TTL if ``ttl``)."""
    if maxmemory <= 0 or not policy or policy == "noeviction":
        return False
    return policy.startswith("allkeys-") or (ttl and policy.startswith("volatile-"))


def eviction_settings(client: Any) -> tuple[str, int]:
    """``(maxmemory-policy, maxmemory)`` of ``client``'s server; the strictest on a Cluster."""
    reply = client.config_get("maxmemory*")
    nodes = [reply] if "maxmemory-policy" in reply else [v for v in reply.values() if isinstance(v, dict)]
    worst = _UNKNOWN
    for node in nodes:
        policy, maxmemory = _text(node.get("maxmemory-policy", "")), int(node.get("maxmemory", 0) or 0)
        if can_evict(policy, maxmemory, ttl=False) or not worst[0]:
            worst = (policy, maxmemory)
    return worst


def ensure_kept(store: RedisStore, counter: Counter) -> None:
    """Raise ConfigurationError if ``store``'s server may evict ``counter``'s keys."""
    now = time.monotonic()
    seen = _seen.get(store)
    if seen is None or now - seen[0] > CHECK_EVERY:
        seen = (now, _read(store))
        _seen[store] = seen
    policy, maxmemory = seen[1]
    if can_evict(policy, maxmemory, ttl=counter.ttl is not None):
        raise ConfigurationError(
            f"{counter!r}: the Redis server of cache {store.alias!r} has maxmemory-policy {policy} "
            f"(maxmemory {maxmemory}), which can evict pending counts: increments would be lost. "
            "Put counters on a cache whose server uses noeviction, or volatile-* with counters "
            "created without ttl (CACHEWISE_COUNTERS_ALIAS, docs/counters.md)."
        )


def _read(store: RedisStore) -> tuple[str, int]:
    try:
        return store.call("incr", lambda: eviction_settings(store.client))
    except CacheServerError as exc:  # CONFIG disabled or renamed: the policy cannot be known
        if store.alias not in _warned:
            _warned.add(store.alias)
            logger.warning(
                "counters on cache %r: could not read the server's eviction policy (%s); make sure "
                "it cannot evict counter keys (docs/counters.md)",
                store.alias,
                exc,
            )
        return _UNKNOWN


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
