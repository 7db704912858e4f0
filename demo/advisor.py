"""The advisor's view of the uncached phase, next to what the cached phase then measured.

The Gunicorn workers record every ``/plain/`` request (``AdvisorMiddleware``, first in the demo's
``MIDDLEWARE``; ``CACHEWISE_ADVISOR_INCLUDE`` limits it to the uncached twins) and flush to Redis
with their metrics. After the load runs this process asks the advisor for its ranking and puts
each recommendation next to the figures the demo measured on the route's cached twin: the hit
rate and the speed-up the strategy the blog actually uses delivered.
"""

from __future__ import annotations

from typing import Any

from demo.results import DemoResults

__all__ = ["recommendations"]

PLAIN_SUFFIX = "-plain"


def _twins(results: DemoResults) -> dict[str, Any]:
    """URL name of each view's uncached twin -> its ViewResult."""
    from django.urls import Resolver404, resolve

    twins: dict[str, Any] = {}
    for view in results.views:
        try:
            match = resolve(view.spec.plain_paths[0].split("?", 1)[0])
        except Resolver404:
            continue
        twins[match.view_name] = view
    return twins


def recommendations(results: DemoResults, limit: int = 6) -> list[dict[str, Any]]:
    """The advisor's top routes, each with the cached twin's measured figures (empty without it)."""
    try:
        from cachewise.monitoring.advisor import advice
    except ImportError:  # a checkout without the advisor
        return []
    twins = _twins(results)
    rows = []
    for item in advice.build(save_predictions=False).advice[:limit]:
        view = twins.get(item.route)
        cached = view.cached if view is not None else None
        rows.append({
            "route": item.route,
            "strategy": item.strategy,
            "ttl": item.ttl,
            "expected_hit_rate": item.expected_hit_rate,
            "db_seconds_saved_per_hour": item.db_seconds_saved_per_hour,
            "requests": item.requests,
            "db_ms": item.db_ms,
            "warnings": item.warnings,
            "page_safe": item.page_safe,
            "twin": view.spec.short if view is not None else None,
            "measured_hit_rate": cached.hit_rate if cached is not None else None,
            "measured_speedup": view.speedup if view is not None else None,
        })  # fmt: skip
    return rows
