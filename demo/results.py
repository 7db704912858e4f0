"""What one demo run measured, in plain dataclasses the terminal and HTML reports both read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from demo.freshness import EditResult
from demo.load import LoadResult
from demo.scenarios import OutageResult, StampedeResult

__all__ = ["CounterCheck", "DemoResults", "ViewResult", "ViewSpec"]


@dataclass(frozen=True)
class ViewSpec:
    """A view under load: its uncached twin's paths and the cached view's paths."""

    label: str
    pattern: str
    short: str
    feature: str
    plain_paths: tuple[str, ...]
    cached_paths: tuple[str, ...]
    method: str = "GET"


@dataclass
class ViewResult:
    """The two load runs of one view; ``cached`` is None when its feature is missing."""

    spec: ViewSpec
    plain: LoadResult
    cached: LoadResult | None

    @property
    def speedup(self) -> float | None:
        """Cached req/s over uncached req/s, measured in this run."""
        if self.cached is None or not self.plain.rps:
            return None
        return self.cached.rps / self.plain.rps


@dataclass
class CounterCheck:
    """Increments sent through the Counter, and what the database gained after the flush."""

    sent: int
    flushed_into_database: int
    output: str = ""

    @property
    def lost(self) -> int:
        return self.sent - self.flushed_into_database


@dataclass
class DemoResults:
    """Everything one run measured, plus how it was set up (for the report's header)."""

    redis: str
    database: str
    articles: int
    requests_per_run: int
    concurrency: int
    server: str
    checks: str = ""
    ping: str = ""
    missing_features: list[str] = field(default_factory=list)
    views: list[ViewResult] = field(default_factory=list)
    counter: CounterCheck | None = None
    stampede: StampedeResult | None = None
    outage: OutageResult | None = None
    outage_skipped: str = ""
    #: An article edited under load: when each worker served the new page.
    edit: EditResult | None = None
    #: ``cachewise stats --json``'s document after the load and stampede runs (None without
    #: the monitoring module).
    stats: dict[str, Any] | None = None
    #: The same, counted since the outage scenario restarted the (empty) embedded Redis.
    stats_after_restart: dict[str, Any] | None = None
    dashboard: str = ""
    #: The advisor's top routes, recorded on the uncached phase, with the cached twin's figures.
    advisor: list[dict[str, Any]] = field(default_factory=list)
    #: Distinct lines the Gunicorn workers logged (cachewise's degradation warnings, errors).
    server_log: list[str] = field(default_factory=list)
    seconds: float = 0.0
