"""A tiny server-side SVG chart of hit rate over time (no JavaScript, no CDN).

The dashboard draws the per-minute points of :func:`~cachewise.monitoring.aggregate.read_series`
as a line of hit rate (0-100 %) over light bars of lookup volume. Minutes without lookups break
the line instead of pretending a rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cachewise.conf import conf

from .aggregate import Point

__all__ = ["Chart", "hit_rate_chart"]

WIDTH = 720
HEIGHT = 180
PAD = 30


@dataclass
class Chart:
    """Geometry for the template: polylines, volume bars, the alert threshold and axis labels."""

    width: int = WIDTH
    height: int = HEIGHT
    lines: list[str] = field(default_factory=list)
    bars: list[tuple[float, float, float, float]] = field(default_factory=list)
    threshold_y: float = 0.0
    threshold_label: str = ""
    start_label: str = ""
    end_label: str = ""
    empty: bool = True
    latest_rate: float | None = None


def _y(rate: float) -> float:
    return round(PAD + (1 - rate) * (HEIGHT - 2 * PAD), 1)


def hit_rate_chart(series: list[Point]) -> Chart:
    """Lay out ``series`` (oldest first) in a WIDTH x HEIGHT box."""
    threshold = conf.ALERT_HIT_RATE_WARNING
    chart = Chart(threshold_y=_y(threshold), threshold_label=f"{threshold:.0%}")
    if not series:
        return chart
    step = (WIDTH - 2 * PAD) / max(1, len(series) - 1)
    peak = max(p.hits + p.misses for p in series) or 1.0
    current: list[str] = []
    for index, point in enumerate(series):
        x = round(PAD + index * step, 1)
        lookups = point.hits + point.misses
        if lookups:
            bar = lookups / peak * (HEIGHT - 2 * PAD)
            chart.bars.append(
                (round(x - step / 3, 1), round(HEIGHT - PAD - bar, 1), round(2 * step / 3, 1), round(bar, 1))
            )
        rate = point.hit_rate
        if rate is None:
            _close(chart, current)
            continue
        chart.latest_rate = rate
        current.append(f"{x},{_y(rate)}")
    _close(chart, current)
    chart.empty = not chart.lines
    chart.start_label = time.strftime("%H:%M", time.gmtime(series[0].minute * 60))
    chart.end_label = time.strftime("%H:%M UTC", time.gmtime(series[-1].minute * 60))
    return chart


def _close(chart: Chart, current: list[str]) -> None:
    if len(current) == 1:  # a single minute: draw a short flat segment so it is visible
        x, y = current[0].split(",")
        current.append(f"{float(x) + 3},{y}")
    if current:
        chart.lines.append(" ".join(current))
        current.clear()
