"""The headline figures of a run as plain data (``--json``), for tests and scripts."""

from __future__ import annotations

from typing import Any

from demo.load import LoadResult
from demo.results import DemoResults
from demo.scenarios import StampedeResult

__all__ = ["headline"]


def _load(load: LoadResult | None, *, hits: bool = True) -> dict[str, Any] | None:
    if load is None:
        return None
    figures: dict[str, Any] = {
        "requests": load.requests,
        "failures": load.failures,
        "failure_statuses": {str(status): count for status, count in load.failure_statuses.items()},
        "rps": round(load.rps, 1),
        "p50_ms": round(load.latency(0.5), 2),
        "p99_ms": round(load.latency(0.99), 2),
        "queries_per_request": round(load.queries_per_request, 3),
    }
    figures["hit_rate"] = round(load.hit_rate, 3) if hits else None
    return figures


def _stats_rows(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """cachewise's own counters per namespace (``cachewise stats --json``'s rows), or None."""
    if stats is None:
        return None
    return {row["namespace"]: row for row in [*stats["namespaces"], {**stats["total"], "namespace": "all"}]}


def headline(results: DemoResults) -> dict[str, Any]:
    """Per view, the stampede, the outage and the counter check, as JSON-ready values."""
    data: dict[str, Any] = {
        "views": {
            view.spec.feature: {
                "label": view.spec.label,
                "plain": _load(view.plain),
                "cached": _load(view.cached),
            }
            for view in results.views
        },
        "missing_features": results.missing_features,
        "cachewise_stats": _stats_rows(results.stats),
        "seconds": round(results.seconds, 1),
        "advisor": results.advisor,
    }
    if results.counter is not None:
        data["counter"] = {"sent": results.counter.sent, "flushed": results.counter.flushed_into_database}
    if results.stampede is not None:
        data["stampede"] = {
            "requesters": results.stampede.requesters,
            "naive_computes": results.stampede.naive_computes,
            "cached_computes": results.stampede.cached_computes,
            "naive_per_expiry": StampedeResult.per_expiry(results.stampede.naive_computes),
            "cached_failures": results.stampede.cached.failures,
        }
    if results.edit is not None:
        data["edit"] = {
            "workers": results.edit.workers,
            "first_fresh": results.edit.first_fresh(),
            "every_worker_after": results.edit.every_worker_after,
            "requests_after_commit": len(results.edit.after),
            "stale_after_commit": results.edit.stale_after,
        }
    if results.outage is not None:
        outage = results.outage
        data["outage"] = {
            "requests": outage.load.requests,
            "failures": outage.load.failures,
            "during": len(outage.phase("during")),
            "recovered_after": outage.recovered_after,
        }
    else:
        data["outage_skipped"] = results.outage_skipped
    return data
