"""Prometheus exposition: a collector that reads the aggregated totals, not per-process counters.

:class:`CachewiseCollector` reads every alias's totals from Redis at scrape time (after flushing
the scraping process), so whichever Gunicorn worker answers ``/metrics`` returns the same,
whole-site numbers, without prometheus-client's multiprocess mode. When the project does run that
mode (``PROMETHEUS_MULTIPROC_DIR`` set), :func:`render` adds prometheus-client's
``MultiProcessCollector`` for the project's own metrics; otherwise it adds the default registry.
Never register :class:`CachewiseCollector` in a per-process registry that is also summed across
processes: its numbers are already totals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from cachewise.extras import missing_extra

try:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # the prometheus extra
    raise missing_extra("prometheus_client", "The Prometheus endpoint (cache/metrics/)", exc) from exc

from .aggregate import read_totals
from .health import RedisHealth, redis_health
from .report import breaker_state

__all__ = ["CONTENT_TYPE_LATEST", "CachewiseCollector", "render"]

#: event -> (metric name without _total, help)
_EVENT_METRICS = {
    "hit": ("cachewise_hits", "Cache lookups that found a value."),
    "miss": ("cachewise_misses", "Cache lookups that found nothing."),
    "stale": ("cachewise_stale", "Stale values served while one worker recomputed."),
    "recompute": ("cachewise_recomputes", "Values computed after a miss or an early refresh."),
    "compute_seconds": ("cachewise_compute_seconds", "Seconds spent computing values."),
    "lock_wait": ("cachewise_lock_waits", "Callers that waited for another worker's computation."),
    "lock_wait_seconds": ("cachewise_lock_wait_seconds", "Seconds spent waiting for single-flight locks."),
    "error": ("cachewise_errors", "Cache operations that failed (outage or unreadable payload)."),
    "degraded": ("cachewise_degraded", "Failed operations answered by the failure policy."),
    "invalidate": ("cachewise_invalidations", "Invalidations of cached data."),
    "near_hit": ("cachewise_near_hits", "Keys served from a process's near cache (OPTIONS near_cache)."),
    "near_miss": ("cachewise_near_misses", "Near-cacheable keys read from Redis instead."),
    "near_invalidation": ("cachewise_near_invalidations", "Near copies dropped by Redis invalidations."),
}
_STATES = ("closed", "open", "half-open")


class CachewiseCollector(Collector):
    """Collect cachewise's whole-site counters and Redis health for ``aliases``."""

    def __init__(self, aliases: Iterable[str] | None = None, pings: int = 5) -> None:
        self.aliases = list(aliases) if aliases is not None else None
        self.pings = pings

    def _aliases(self) -> list[str]:
        if self.aliases is not None:
            return self.aliases
        from django.conf import settings

        return list(settings.CACHES)

    def collect(self) -> Iterator[Any]:
        """Yield one family per metric, every alias as a label value."""
        events = {
            event: CounterMetricFamily(name, doc, labels=["alias", "namespace"])
            for event, (name, doc) in _EVENT_METRICS.items()
        }
        bypasses = CounterMetricFamily(
            "cachewise_bypasses",
            "Responses deliberately not cached, by reason.",
            labels=["alias", "namespace", "reason"],
        )
        others = CounterMetricFamily(
            "cachewise_events", "Other cachewise events.", labels=["alias", "namespace", "event"]
        )
        aggregated = GaugeMetricFamily(
            "cachewise_aggregated",
            "1 if the counts cover every worker (read from Redis), 0 if only this process.",
            labels=["alias"],
        )
        near_bytes = GaugeMetricFamily(
            "cachewise_near_bytes",
            "Bytes held by near caches, summed over the processes that reported them.",
            labels=["alias"],
        )
        breaker = GaugeMetricFamily(
            "cachewise_circuit_breaker_state",
            "1 for the current breaker state of the scraped process.",
            labels=["alias", "state"],
        )
        for alias in self._aliases():
            totals = read_totals(alias)
            aggregated.add_metric([alias], 1.0 if totals.source == "redis" and totals.error is None else 0.0)
            held = sum(value for (event, _), value in totals.values.items() if event == "near_bytes")
            if held:
                near_bytes.add_metric([alias], held)
            for (event, namespace), value in sorted(totals.values.items()):
                if event == "near_bytes":
                    continue
                if event in events:
                    events[event].add_metric([alias, namespace], value)
                elif event.startswith("bypass:"):
                    bypasses.add_metric([alias, namespace, event.partition(":")[2]], value)
                else:
                    others.add_metric([alias, namespace, event], value)
            state = breaker_state(alias)
            if state is not None:
                for name in _STATES:
                    breaker.add_metric([alias, name], 1.0 if name == state else 0.0)
        yield from events.values()
        yield from (bypasses, others, aggregated, near_bytes, breaker)
        yield from _redis_families([redis_health(alias, pings=self.pings) for alias in self._aliases()])


def _redis_families(healths: list[RedisHealth]) -> Iterator[Any]:
    labels = ["alias"]
    up = GaugeMetricFamily(
        "cachewise_redis_up", "1 if the alias's Redis answered INFO and PING.", labels=labels
    )
    gauges = {
        "used_memory": GaugeMetricFamily(
            "cachewise_redis_used_memory_bytes", "Redis used_memory.", labels=labels
        ),
        "maxmemory": GaugeMetricFamily(
            "cachewise_redis_maxmemory_bytes", "Redis maxmemory (0: unlimited).", labels=labels
        ),
        "connected_clients": GaugeMetricFamily(
            "cachewise_redis_connected_clients", "Redis connected_clients.", labels=labels
        ),
    }
    counters = {
        "evicted_keys": CounterMetricFamily(
            "cachewise_redis_evicted_keys", "Redis evicted_keys.", labels=labels
        ),
        "keyspace_hits": CounterMetricFamily(
            "cachewise_redis_keyspace_hits", "Redis keyspace_hits (whole server).", labels=labels
        ),
        "keyspace_misses": CounterMetricFamily(
            "cachewise_redis_keyspace_misses", "Redis keyspace_misses (whole server).", labels=labels
        ),
    }
    policy = GaugeMetricFamily(
        "cachewise_redis_maxmemory_policy",
        "1 for the configured maxmemory-policy.",
        labels=["alias", "policy"],
    )
    ping = GaugeMetricFamily(
        "cachewise_redis_ping_seconds", "PING round trip of the scrape's probe.", labels=["alias", "quantile"]
    )
    for health in healths:
        if not health.is_redis:
            continue
        up.add_metric([health.alias], 1.0 if health.reachable else 0.0)
        if not health.reachable:
            continue
        families: list[tuple[str, Any]] = [*gauges.items(), *counters.items()]
        for name, family in families:
            family.add_metric([health.alias], float(getattr(health, name)))
        policy.add_metric([health.alias, health.maxmemory_policy], 1.0)
        if health.latency is not None:
            ping.add_metric([health.alias, "0.5"], health.latency.p50_ms / 1000)
            ping.add_metric([health.alias, "0.99"], health.latency.p99_ms / 1000)
    yield up
    yield from gauges.values()
    yield from counters.values()
    yield from (policy, ping)


class _Forward(Collector):
    """Re-expose another registry's metrics (the default one) inside the per-scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        yield from self.source.collect()


def render(aliases: Iterable[str] | None = None) -> bytes:
    """The text exposition of cachewise's metrics plus the project's own prometheus-client metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CachewiseCollector(aliases))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    return generate_latest(registry)
