"""The ranking: every recorded route's advice, best saving first, with its verification.

:func:`build` reads the fleet's counters (:mod:`.store`), advises each route
(:mod:`.estimate`), ranks them by the database time a cache would save per hour, and sets each
advised route's *prediction* aside the first time it is advised (kept until ``advise --reset``),
so that once the advice is applied a later run shows what was measured next to what was predicted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import estimate, store
from .settings import advisor_settings

__all__ = ["Ranking", "build"]


@dataclass
class Ranking:
    """The advice for every route, best first, and what it was computed from."""

    advice: list[estimate.Advice] = field(default_factory=list)
    seconds: float = 0.0
    writes_per_minute: dict[str, float] = field(default_factory=dict)
    source: str = "redis"
    error: str | None = None

    def recommended(self) -> list[estimate.Advice]:
        """Routes with a strategy (not ``none``), best first."""
        return [item for item in self.advice if item.strategy != "none"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``advise --json``)."""
        return {
            "source": self.source,
            "error": self.error,
            "seconds_observed": self.seconds,
            "writes_per_minute": self.writes_per_minute,
            "routes": [item.as_dict() for item in self.advice],
        }


def _rank_key(item: estimate.Advice) -> tuple[bool, float, float]:
    return (item.strategy == "none", -item.db_seconds_saved_per_hour, -item.requests)


def build(*, now: float | None = None, save_predictions: bool = True, limit: int | None = None) -> Ranking:
    """Advise every recorded route; store first predictions when ``save_predictions``."""
    now = time.time() if now is None else now
    observed = store.read(now)
    predictions = store.read_predictions()
    advice: list[estimate.Advice] = []
    new: dict[str, dict[str, Any]] = {}
    for route, row in observed.routes.items():
        item = estimate.advise_route(
            route,
            row,
            observed.writes_per_second,
            observed.seconds,
            min_requests=advisor_settings.MIN_REQUESTS,
            large=advisor_settings.LARGE_RESPONSE,
            lookup=advisor_settings.LOOKUP_SECONDS,
        )
        if route in predictions:
            item.verification = estimate.verify(predictions[route], row, now)
        elif item.strategy != "none":
            new[route] = estimate.baseline(item, row, now)
        advice.append(item)
    if save_predictions and not observed.error:
        try:
            store.save_predictions(new)
        except Exception as exc:  # noqa: BLE001 - the ranking stands without them; say why verification waits
            observed.error = f"predictions not stored: {type(exc).__name__}: {exc}"
    advice.sort(key=_rank_key)
    return Ranking(
        advice=advice[:limit] if limit else advice,
        seconds=observed.seconds,
        writes_per_minute={label: rate * 60 for label, rate in sorted(observed.writes_per_second.items())},
        source=observed.source,
        error=observed.error,
    )
