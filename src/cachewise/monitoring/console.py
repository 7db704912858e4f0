"""Terminal rendering (rich) of stats reports and big-key scans, for the management commands.

Rendering goes to a string first and is written through the command's ``stdout`` in one piece:
Django's ``OutputWrapper`` adds line endings per write, which would break rich's chunked output.
Colour is used only when the real stdout is a terminal.
"""

from __future__ import annotations

import io
import shutil
import sys
from typing import Any

from cachewise.extras import missing_extra

try:
    from rich.console import Console, Group, RenderableType
    from rich.table import Table
    from rich.text import Text
except ImportError as exc:  # the cli extra
    raise missing_extra("rich", "manage.py cachewise stats and bigkeys", exc) from exc

from .alerts import CRITICAL
from .health import BigKeysReport, RedisHealth
from .report import NamespaceStats, StatsReport

__all__ = ["render_bigkeys", "render_reports", "to_text"]


#: Width when the output is not a terminal (a pipe, a file, a log): wide enough that no cell is cut
#: (``orm.sho…``); tables are only as wide as their content, so nothing is padded to it.
PLAIN_WIDTH = 10_000


def to_text(renderable: RenderableType, *, color: bool | None = None) -> str:
    """Render ``renderable`` to a string: as wide as the terminal (at least 100 columns) on a
    terminal, and without any width limit otherwise, so piped output keeps every name whole."""
    tty = sys.stdout.isatty() if color is None else color
    width = max(100, shutil.get_terminal_size((120, 40)).columns) if tty else PLAIN_WIDTH
    console = Console(file=io.StringIO(), width=width, force_terminal=tty, no_color=not tty, highlight=False)
    console.print(renderable)
    output: Any = console.file
    return str(output.getvalue())


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def _namespace_table(report: StatsReport) -> Table:
    table = Table(title=f"cache {report.alias!r}: namespaces", title_justify="left", expand=False)
    for name in ("namespace", "hits", "misses", "hit rate", "stale", "recomputes", "compute s"):
        table.add_column(name, justify="left" if name == "namespace" else "right")
    for name in ("lock waits", "wait s", "bypasses", "errors", "invalidations"):
        table.add_column(name, justify="right")
    for row in [*report.namespaces, report.total]:
        rate = row.hit_rate
        low = rate is not None and rate < 0.8 and row.hits + row.misses >= 1
        table.add_row(
            "all namespaces" if row.namespace == "*" else row.namespace,
            _count(row.hits),
            _count(row.misses),
            Text(row.hit_rate_display, style="bold red" if low else ""),
            _count(row.stale),
            _count(row.recomputes),
            f"{row.compute_seconds:.3f}",
            _count(row.lock_waits),
            f"{row.lock_wait_seconds:.3f}",
            ", ".join(f"{k}: {_count(v)}" for k, v in sorted(row.bypasses.items())) or "0",
            _count(row.errors),
            _count(row.invalidations),
            style="bold" if row.namespace == "*" else "",
            end_section=row is report.namespaces[-1] if report.namespaces else False,
        )
    return table


def _near_table(row: NamespaceStats) -> RenderableType:
    """The near cache's counters (``OPTIONS["near_cache"]``), when the alias has one."""
    if not (row.near_hits or row.near_misses or row.near_bytes):
        return Text("")
    table = Table(title="near cache (process memory)", title_justify="left", expand=False)
    for name in ("near hits", "near misses", "invalidations", "bytes held"):
        table.add_column(name, justify="right")
    table.add_row(
        _count(row.near_hits), _count(row.near_misses), _count(row.near_invalidations), _count(row.near_bytes)
    )
    return table


def _health_table(health: RedisHealth, breaker: str | None) -> Table:
    table = Table(title=f"cache {health.alias!r}: Redis", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if not health.is_redis:
        table.add_row("status", "not a Redis backend: no server health, counts from this process")
        table.add_row("circuit breaker (this process)", breaker or "unknown")
        return table
    if not health.reachable:
        table.add_row("status", Text(f"UNREACHABLE: {health.error}", style="bold red"))
        table.add_row("circuit breaker (this process)", breaker or "unknown")
        return table
    latency = health.latency
    memory = f"{health.used_memory_human} of " + (
        f"{health.maxmemory:,} bytes" if health.maxmemory else "unlimited"
    )
    recent = "no history yet" if health.evictions_recent is None else str(health.evictions_recent)
    rows = [
        ("status", f"up (Redis {health.redis_version})"),
        ("hit ratio (INFO keyspace, whole server)", health.hit_ratio_display),
        ("memory", memory),
        ("maxmemory-policy", health.maxmemory_policy),
        ("evicted_keys (total)", f"{health.evicted_keys:,}"),
        (f"evicted in last {health.evictions_window_minutes or 5} min", recent),
        ("connected clients", str(health.connected_clients)),
        ("PING p50 / p99", f"{latency.p50_ms:.3f} / {latency.p99_ms:.3f} ms" if latency else "not probed"),
        ("circuit breaker (this process)", breaker or "unknown"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _alerts(report: StatsReport) -> RenderableType:
    if not report.alerts:
        return Text("No alerts.", style="green")
    lines = [
        Text(
            f"{alert.level.upper()} [{alert.code}] {alert.message}",
            style="bold red" if alert.level == CRITICAL else "yellow",
        )
        for alert in report.alerts
    ]
    return Group(*lines)


def render_reports(reports: list[StatsReport]) -> RenderableType:
    """The whole ``stats`` screen: per alias, its source, namespace table, Redis table, alerts."""
    parts: list[RenderableType] = []
    for report in reports:
        source = "every worker process (Redis)" if report.totals.source == "redis" else "this process only"
        parts.append(Text(f"counts from {source}", style="dim"))
        parts += [
            _namespace_table(report),
            _near_table(report.total),
            _health_table(report.health, report.breaker),
            _alerts(report),
            Text(""),
        ]
    return Group(*parts)


def render_bigkeys(report: BigKeysReport) -> RenderableType:
    """The ``bigkeys`` table, with how much of the keyspace the bounded scan covered."""
    table = Table(title=f"largest keys matching {report.match!r}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("key")
    table.add_column("type")
    table.add_column("bytes", justify="right")
    for index, key in enumerate(report.keys, start=1):
        table.add_row(str(index), key.key, key.type, f"{key.bytes:,}")
    coverage = "complete scan" if report.complete else "PARTIAL scan (time or key budget reached)"
    summary = Text(f"{report.scanned:,} keys scanned in {report.seconds:.2f} s, {coverage}")
    return Group(table, summary)
