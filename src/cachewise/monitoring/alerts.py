"""Alert thresholds (hit rate, memory, evictions, errors), applied to cache counts and Redis health.

Each alert has a stable ``code`` (used by ``stats --json``, the dashboard and docs/monitoring.md,
which explains what each means and what to do), a ``level`` and a human message. Thresholds are
settings (``CACHEWISE_ALERT_*``) with defaults from production practice (a hit rate under ~80% warns).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cachewise.conf import conf

from .health import RedisHealth

__all__ = ["CRITICAL", "WARNING", "Alert", "breaker_alerts", "health_alerts", "hit_rate_alerts"]

WARNING = "warning"
CRITICAL = "critical"
#: Policies that make Redis answer writes with an OOM error once maxmemory is reached.
REFUSING_POLICIES = frozenset({"noeviction"})


@dataclass(frozen=True)
class Alert:
    """One threshold crossed: ``code`` is stable, ``message`` is for people."""

    level: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def hit_rate_alerts(scope: str, hits: float, misses: float) -> list[Alert]:
    """Flag a hit rate under the thresholds, once there are enough lookups to judge."""
    lookups = hits + misses
    if lookups < conf.ALERT_MIN_LOOKUPS:
        return []
    rate = hits / lookups
    if rate < conf.ALERT_HIT_RATE_CRITICAL:
        level = CRITICAL
    elif rate < conf.ALERT_HIT_RATE_WARNING:
        level = WARNING
    else:
        return []
    return [Alert(level, "hit_rate", f"{scope}: hit rate {rate:.1%} over {lookups:.0f} lookups")]


def health_alerts(health: RedisHealth) -> list[Alert]:
    """Flag an unreachable Redis, evictions, a refusing policy, memory pressure and latency."""
    if not health.is_redis:
        return []
    if not health.reachable:
        return [Alert(CRITICAL, "redis_down", f"Redis unreachable: {health.error}")]
    alerts = _eviction_alerts(health)
    # With maxmemory 0 there is no limit at which a policy applies: the risk is the host running
    # out of memory, a warning (as `check --deploy` reports it, W006), not refused writes.
    if health.maxmemory_policy in REFUSING_POLICIES and health.maxmemory != 0:
        alerts.append(
            Alert(
                CRITICAL,
                "eviction_policy",
                f"maxmemory-policy is {health.maxmemory_policy}: writes fail once memory is full "
                "(use allkeys-lru)",
            )
        )
    if health.maxmemory == 0:
        alerts.append(
            Alert(WARNING, "maxmemory_unset", "maxmemory is 0: Redis can grow until the host swaps")
        )
    ratio = health.memory_ratio
    if ratio is not None and ratio >= conf.ALERT_MEMORY_RATIO:
        alerts.append(Alert(WARNING, "memory", f"used_memory is {ratio:.0%} of maxmemory"))
    latency = health.latency
    if latency is not None and latency.p99_ms > conf.ALERT_LATENCY_MS:
        alerts.append(
            Alert(
                WARNING,
                "latency",
                f"PING p99 {latency.p99_ms:.2f} ms (p50 {latency.p50_ms:.2f} ms), "
                f"threshold {conf.ALERT_LATENCY_MS} ms",
            )
        )
    return alerts


def _eviction_alerts(health: RedisHealth) -> list[Alert]:
    if health.evictions_recent:
        minutes = health.evictions_window_minutes
        return [
            Alert(WARNING, "evictions", f"{health.evictions_recent} keys evicted in the last {minutes} min")
        ]
    return []


def breaker_alerts(alias: str, state: str | None) -> list[Alert]:
    """Flag an open (or probing) circuit breaker: this process is not using the cache."""
    if state in (None, "closed"):
        return []
    return [Alert(CRITICAL, "breaker", f"cache {alias!r} circuit breaker is {state}")]
