"""Redis health: INFO-derived numbers, a latency probe and a bounded big-key scan.

Everything here is read-only and cheap for the server: ``INFO`` sections, ``PING``, ``SCAN`` with a
``COUNT`` and ``MEMORY USAGE`` per key (sampled by Redis itself), never ``KEYS`` and never a command
whose cost grows with the whole keyspace in one call. The big-key scan stops at a time budget and
a key count, and says whether it saw every key of the prefix.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.store.raw_client import redis_client_of

from .aggregate import evictions_since, record_eviction_sample

__all__ = ["BigKey", "BigKeysReport", "Latency", "RedisHealth", "big_keys", "probe_latency", "redis_health"]


@dataclass(frozen=True)
class Latency:
    """Round-trip times of ``samples`` PINGs, in milliseconds."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class RedisHealth:
    """What ``INFO`` and a PING probe say about the Redis behind one alias."""

    alias: str
    reachable: bool
    error: str | None = None
    #: False when the alias's backend is not Redis: nothing to probe, and not an outage
    is_redis: bool = True
    redis_version: str = ""
    keyspace_hits: int = 0
    keyspace_misses: int = 0
    used_memory: int = 0
    used_memory_human: str = ""
    maxmemory: int = 0
    maxmemory_policy: str = ""
    evicted_keys: int = 0
    #: evictions over the last ``evictions_window_minutes`` (None: no earlier sample yet)
    evictions_recent: int | None = None
    evictions_window_minutes: int = 0
    connected_clients: int = 0
    latency: Latency | None = None

    @property
    def hit_ratio(self) -> float | None:
        """Server-wide ``keyspace_hits / (hits + misses)``; None before any lookup."""
        lookups = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / lookups if lookups else None

    @property
    def hit_ratio_display(self) -> str:
        """The server hit ratio as a percentage, or an em dash before any lookup."""
        ratio = self.hit_ratio
        return "\u2014" if ratio is None else f"{ratio:.1%}"

    @property
    def memory_ratio(self) -> float | None:
        """``used_memory / maxmemory``; None when maxmemory is 0 (unlimited)."""
        return self.used_memory / self.maxmemory if self.maxmemory else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, derived ratios included."""
        data = asdict(self)
        data["hit_ratio"] = self.hit_ratio
        data["memory_ratio"] = self.memory_ratio
        return data


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def probe_latency(client: Any, samples: int = 20) -> Latency:
    """Time ``samples`` sequential PINGs (client-side round trip, the latency a view pays)."""
    timings: list[float] = []
    for _ in range(max(1, samples)):
        started = time.perf_counter()
        client.ping()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return Latency(len(timings), _percentile(timings, 0.5), _percentile(timings, 0.99), timings[-1])


def redis_health(alias: str = "default", *, pings: int = 20) -> RedisHealth:
    """Collect the health of the Redis behind ``alias``; never raises for an unreachable server."""
    try:
        client = redis_client_of(caches[alias])
    except (InvalidCacheBackendError, ImproperlyConfigured) as exc:  # its backend cannot be built
        return RedisHealth(alias, reachable=False, error=f"{type(exc).__name__}: {exc}")
    if client is None:
        return RedisHealth(alias, reachable=False, error="not a Redis backend", is_redis=False)
    try:
        return _collect(client, alias, pings)
    except Exception as exc:  # noqa: BLE001 - monitoring never fails the page showing it: the error is shown instead
        return RedisHealth(alias, reachable=False, error=f"{type(exc).__name__}: {exc}")


def _collect(client: Any, alias: str, pings: int) -> RedisHealth:
    info: dict[str, Any] = {}
    for section in ("server", "clients", "memory", "stats"):
        info.update(client.info(section))
    health = RedisHealth(
        alias,
        reachable=True,
        redis_version=str(info.get("redis_version", "")),
        keyspace_hits=int(info.get("keyspace_hits", 0)),
        keyspace_misses=int(info.get("keyspace_misses", 0)),
        used_memory=int(info.get("used_memory", 0)),
        used_memory_human=str(info.get("used_memory_human", "")),
        maxmemory=int(info.get("maxmemory", 0)),
        maxmemory_policy=str(info.get("maxmemory_policy", "")),
        evicted_keys=int(info.get("evicted_keys", 0)),
        connected_clients=int(info.get("connected_clients", 0)),
    )
    recent = evictions_since(client, alias, health.evicted_keys)
    if recent is not None:
        health.evictions_recent, health.evictions_window_minutes = recent
    record_eviction_sample(client, alias, health.evicted_keys)
    health.latency = probe_latency(client, pings) if pings > 0 else None
    return health


@dataclass(frozen=True)
class BigKey:
    """One key of the scan and its memory footprint as Redis reports it."""

    key: str
    bytes: int
    type: str


@dataclass
class BigKeysReport:
    """The largest keys found, and how much of the prefix the bounded scan covered."""

    match: str
    scanned: int = 0
    complete: bool = False
    seconds: float = 0.0
    keys: list[BigKey] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def default_match(alias: str) -> str:
    """``SCAN MATCH`` pattern for every key of ``alias``: its KEY_PREFIX followed by ``:``."""
    prefix = str(getattr(caches[alias], "key_prefix", "") or "")
    escaped = "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)
    return f"{escaped}:*" if prefix else "*"


def big_keys(
    client: Any,
    match: str,
    *,
    top: int = 20,
    time_budget: float = 2.0,
    max_keys: int = 100_000,
    count: int = 200,
) -> BigKeysReport:
    """Find the ``top`` largest keys matching ``match`` within ``time_budget`` s and ``max_keys``.

    Each step is one ``SCAN`` (``count`` keys of work on the server) then one pipelined round of
    ``MEMORY USAGE`` + ``TYPE`` for the keys it returned, so Redis serves other clients between
    steps. Keys deleted between SCAN and MEMORY USAGE are skipped.
    """
    report = BigKeysReport(match)
    started = time.monotonic()
    heap: list[tuple[int, str, str]] = []
    cursor = 0
    while True:
        cursor, batch = client.scan(cursor=cursor, match=match, count=count)
        _measure(client, batch, heap, top)
        report.scanned += len(batch)
        if cursor == 0:
            report.complete = True
            break
        if report.scanned >= max_keys or time.monotonic() - started >= time_budget:
            break
    report.seconds = time.monotonic() - started
    report.keys = [BigKey(key, size, kind) for size, key, kind in sorted(heap, reverse=True)]
    return report


def _measure(client: Any, batch: list[bytes], heap: list[tuple[int, str, str]], top: int) -> None:
    if not batch:
        return
    pipe = client.pipeline(transaction=False)
    for key in batch:
        pipe.memory_usage(key)
        pipe.type(key)
    replies = pipe.execute(raise_on_error=False)
    for index, key in enumerate(batch):
        size, kind = replies[2 * index], replies[2 * index + 1]
        if not isinstance(size, int):
            continue  # deleted meanwhile (None) or an error reply
        entry = (size, key.decode(errors="replace"), kind.decode() if isinstance(kind, bytes) else str(kind))
        if len(heap) < top:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
