"""One stats report per alias: the numbers ``stats``, the dashboard and ``--json`` show.

:func:`build_report` combines the aggregated counters (every worker process, from Redis), the
Redis health, the circuit breaker of this process and the alerts those numbers raise. It never
raises for an unreachable Redis: ``report.health.reachable`` is False and an alert says so.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.signals import circuit_state_changed

from .aggregate import Point, Totals, read_series, read_totals
from .alerts import Alert, breaker_alerts, health_alerts, hit_rate_alerts
from .health import RedisHealth, redis_health

__all__ = ["NamespaceStats", "StatsReport", "breaker_state", "build_report", "namespace_stats"]

_COUNTS = {
    "hit": "hits",
    "miss": "misses",
    "stale": "stale",
    "recompute": "recomputes",
    "compute_seconds": "compute_seconds",
    "lock_wait": "lock_waits",
    "lock_wait_seconds": "lock_wait_seconds",
    "error": "errors",
    "degraded": "degraded",
    "invalidate": "invalidations",
    "near_hit": "near_hits",
    "near_miss": "near_misses",
    "near_invalidation": "near_invalidations",
    "near_bytes": "near_bytes",
}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


@dataclass
class NamespaceStats:
    """Counts of one namespace (or of the whole alias when ``namespace`` is ``"*"``)."""

    namespace: str
    hits: float = 0
    misses: float = 0
    stale: float = 0
    recomputes: float = 0
    compute_seconds: float = 0
    lock_waits: float = 0
    lock_wait_seconds: float = 0
    errors: float = 0
    degraded: float = 0
    invalidations: float = 0
    #: Near cache (``OPTIONS["near_cache"]``): keys served from process memory, keys read from
    #: Redis instead, copies dropped by an invalidation, and bytes held (summed over processes).
    near_hits: float = 0
    near_misses: float = 0
    near_invalidations: float = 0
    near_bytes: float = 0
    bypasses: dict[str, float] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        """``hits / (hits + misses)``; None before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    @property
    def hit_rate_display(self) -> str:
        """The hit rate as a percentage with one decimal, or an em dash before any lookup."""
        rate = self.hit_rate
        return "\u2014" if rate is None else f"{rate:.1%}"

    def add(self, event: str, value: float) -> None:
        """Add ``value`` for ``event`` (``bypass:<reason>`` goes to ``bypasses``)."""
        if event.startswith("bypass:"):
            reason = event.partition(":")[2]
            self.bypasses[reason] = self.bypasses.get(reason, 0) + value
        elif event in _COUNTS:
            name = _COUNTS[event]
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; counts that are whole numbers are ints."""
        data = {
            k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in asdict(self).items()
        }
        data["bypasses"] = {k: _number(v) for k, v in self.bypasses.items()}
        data["hit_rate"] = self.hit_rate
        return data


def namespace_stats(totals: Totals) -> tuple[list[NamespaceStats], NamespaceStats]:
    """Per-namespace stats sorted by lookups (busiest first), and their sum."""
    rows: dict[str, NamespaceStats] = {}
    total = NamespaceStats("*")
    for (event, namespace), value in totals.values.items():
        rows.setdefault(namespace, NamespaceStats(namespace)).add(event, value)
        total.add(event, value)
    ordered = sorted(rows.values(), key=lambda row: (-(row.hits + row.misses), row.namespace))
    return ordered, total


_SEEN_STATES: dict[str, str] = {}
_SEEN_LOCK = threading.Lock()


def _on_circuit_state_changed(alias: str, new: str, **kwargs: Any) -> None:
    with _SEEN_LOCK:
        if alias in _SEEN_STATES or len(_SEEN_STATES) < 64:  # aliases come from settings: bounded
            _SEEN_STATES[alias] = new


def connect_signals() -> None:
    """Track breaker states from ``circuit_state_changed`` (for backends without ``resilience``)."""

    circuit_state_changed.connect(_on_circuit_state_changed, dispatch_uid="cachewise.monitoring.breaker")


def breaker_state(alias: str) -> str | None:
    """This process's breaker state for ``alias``: "closed", "open", "half-open" or None if unknown.

    Read from the backend's ``resilience.breaker`` when it has one, else the last state announced
    by :data:`~cachewise.signals.circuit_state_changed`. Breakers are per process: each worker
    has its own, so the dashboard shows the state of the worker that rendered it.
    """
    try:
        resilience = getattr(caches[alias], "resilience", None)
    except (InvalidCacheBackendError, ImproperlyConfigured):  # its backend cannot be built
        resilience = None
    breaker = getattr(resilience, "breaker", None)
    if breaker is not None:
        return str(breaker.state)
    with _SEEN_LOCK:
        return _SEEN_STATES.get(alias)


@dataclass
class StatsReport:
    """Everything known about one alias at one moment."""

    alias: str
    totals: Totals
    namespaces: list[NamespaceStats]
    total: NamespaceStats
    health: RedisHealth
    breaker: str | None
    alerts: list[Alert]
    series: list[Point]

    @property
    def ok(self) -> bool:
        """False only when the alias's Redis did not answer (alerts alone are not a failure)."""
        return self.health.reachable or not self.health.is_redis

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``manage.py cachewise stats --json`` for this alias."""
        return {
            "alias": self.alias,
            "ok": self.ok,
            "source": self.totals.source,
            "aggregation_error": self.totals.error,
            "total": self.total.as_dict(),
            "namespaces": [row.as_dict() for row in self.namespaces],
            "redis": self.health.as_dict(),
            "breaker": self.breaker,
            "alerts": [alert.as_dict() for alert in self.alerts],
            "series": [
                {"minute": p.minute, "hits": p.hits, "misses": p.misses, "hit_rate": p.hit_rate}
                for p in self.series
            ],
        }


def build_report(alias: str = "default", *, pings: int = 20, series_minutes: int = 60) -> StatsReport:
    """Collect the report of ``alias`` (flushes this process's counters first)."""
    health = redis_health(alias, pings=pings)
    totals = read_totals(alias)
    namespaces, total = namespace_stats(totals)
    try:
        series = read_series(alias, series_minutes) if health.reachable else []
    except Exception:  # noqa: BLE001 - Redis went away between the two reads: no chart, the rest still shows
        series = []
    breaker = breaker_state(alias)
    alerts = health_alerts(health) + breaker_alerts(alias, breaker)
    alerts += hit_rate_alerts(f"alias {alias!r}", total.hits, total.misses)
    for row in namespaces:
        alerts += hit_rate_alerts(f"namespace {row.namespace!r}", row.hits, row.misses)
    return StatsReport(alias, totals, namespaces, total, health, breaker, alerts, series)
