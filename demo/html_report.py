"""The HTML report: the terminal's figures plus inline SVG charts, in one self-contained file.

No script, no stylesheet or font from a CDN: the file opens offline and can be attached to a bug
report as it is.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from demo.load import LoadResult
from demo.results import DemoResults
from demo.scenarios import OutageResult, StampedeResult

__all__ = ["bar_chart", "render_html", "write_html"]

PLAIN_COLOR, CACHED_COLOR, FAIL_COLOR, MISS_COLOR = "#b0b7c3", "#2b7bb9", "#d9534f", "#f0ad4e"
WIDTH, BAR_AREA = 640, 380


def _esc(value: object) -> str:
    return html.escape(str(value))


def _number(value: float) -> str:
    """Two decimals for small figures (0.03 queries), none for big ones (1,234 req/s)."""
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], unit: str
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series (name, color, values)."""
    bar_h, gap = 14, 10
    group_h = bar_h * len(series) + gap
    height = 40 + group_h * len(labels) + 20
    top = max((value for _, _, values in series for value in values), default=0.0) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">']
    parts.append(f'<text x="0" y="16" font-weight="bold">{_esc(title)}</text>')
    for index, (name, color, _) in enumerate(series):
        x = 200 + index * 160
        parts.append(f'<rect x="{x}" y="24" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="33" font-size="11">{_esc(name)}</text>')
    for row, label in enumerate(labels):
        y = 44 + row * group_h
        parts.append(f'<text x="0" y="{y + bar_h}" font-size="12">{_esc(label)}</text>')
        for index, (_, color, values) in enumerate(series):
            value = values[row]
            width = BAR_AREA * value / top
            by = y + index * bar_h
            parts.append(f'<rect x="160" y="{by}" width="{width:.1f}" height="{bar_h - 2}" fill="{color}"/>')
            parts.append(
                f'<text x="{164 + width:.1f}" y="{by + bar_h - 3}" font-size="11">'
                f"{_number(value)} {_esc(unit)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def outage_chart(result: OutageResult, bucket: float = 0.25) -> str:
    """Requests per time bucket, stacked: hits, misses, failures; Redis down/up marked."""
    samples = result.load.samples
    end = max((sample.started for sample in samples), default=0.0) + bucket
    count = max(1, int(end / bucket) + 1)
    stacks = [[0, 0, 0] for _ in range(count)]
    for sample in samples:
        slot = stacks[min(count - 1, int(sample.started / bucket))]
        slot[0 if sample.hit else (1 if sample.ok else 2)] += 1
    top = max((sum(slot) for slot in stacks), default=1) or 1
    height, plot_h = 220, 160
    step = (WIDTH - 40) / count
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">']
    parts.append('<text x="0" y="16" font-weight="bold">Outage: requests started per 0.25 s</text>')
    for index, (name, color) in enumerate(
        (("hit", CACHED_COLOR), ("miss", MISS_COLOR), ("failed", FAIL_COLOR))
    ):
        legend_x = 300 + index * 90
        parts.append(f'<rect x="{legend_x}" y="7" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="16" font-size="11">{name}</text>')
    for index, slot in enumerate(stacks):
        y: float = 30 + plot_h
        for value, color in zip(slot, (CACHED_COLOR, MISS_COLOR, FAIL_COLOR), strict=True):
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{30 + index * step:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{color}"/>'
            )
    for at, label in ((result.down_at, "Redis killed"), (result.up_at, "restarted")):
        x = 30 + at / bucket * step
        parts.append(
            f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{30 + plot_h}" stroke="#333" stroke-dasharray="4"/>'
        )
        parts.append(
            f'<text x="{x + 3:.1f}" y="{44 + plot_h}" font-size="11">{_esc(label)} ({at:.1f} s)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table_html(table: Table) -> str:
    """A rich Table as an HTML table (same headers and cells as the terminal)."""
    aligns = [f' style="text-align:{column.justify}"' for column in table.columns]
    headers = "".join(
        f"<th{align}>{_esc(column.header)}</th>" for column, align in zip(table.columns, aligns, strict=True)
    )
    columns = [list(column.cells) for column in table.columns]
    rows = []
    for index in range(table.row_count):
        row = "".join(
            f"<td{align}>{_esc(cells[index])}</td>" for cells, align in zip(columns, aligns, strict=True)
        )
        rows.append(f"<tr>{row}</tr>")
    return f"<h2>{_esc(table.title)}</h2><table><tr>{headers}</tr>{''.join(rows)}</table>"


def _view_charts(results: DemoResults) -> list[str]:
    views = [view for view in results.views if view.cached is not None]
    labels = [view.spec.label for view in views]

    def series(metric: Callable[[LoadResult], float]) -> list[tuple[str, str, list[float]]]:
        return [
            ("uncached", PLAIN_COLOR, [metric(view.plain) for view in views]),
            ("cachewise", CACHED_COLOR, [metric(view.cached) for view in views if view.cached is not None]),
        ]

    return [
        bar_chart("Requests per second (higher is better)", labels, series(lambda load: load.rps), "req/s"),
        bar_chart("p99 latency (lower is better)", labels, series(lambda load: load.latency(0.99)), "ms"),
        bar_chart("Database queries per request", labels, series(lambda load: load.queries_per_request), "q"),
    ]


def _stampede_chart(result: StampedeResult) -> str:
    series = [("bare get/set", PLAIN_COLOR, [StampedeResult.per_expiry(result.naive_computes)])]
    if result.cached_computes:
        series.append(("@cached lock", CACHED_COLOR, [StampedeResult.per_expiry(result.cached_computes)]))
    return bar_chart("Recomputes per expiry (lower is better)", ["per expiry"], series, "")


def _flush_output(results: DemoResults) -> str:
    return f"$ manage.py cachewise flush-counters\n{results.counter.output}" if results.counter else ""


def render_html(results: DemoResults) -> str:
    """The whole report as one HTML document."""
    from demo.report import HOW_TO_READ, outage_table, stampede_table, stats_table, summary_lines, views_table

    body = [
        "<h1>cachewise demo report</h1>",
        f"<p>Redis: {_esc(results.redis)}<br>Database: {_esc(results.database)}, {results.articles} articles"
        f"<br>Server: {_esc(results.server)}; {results.concurrency} client threads</p>",
        _table_html(views_table(results)),
        *_view_charts(results),
    ]
    if results.stampede is not None:
        body += [_table_html(stampede_table(results.stampede)), _stampede_chart(results.stampede)]
    if results.outage is not None:
        body += [_table_html(outage_table(results.outage)), outage_chart(results.outage)]
    if results.stats is not None:
        body.append(_table_html(stats_table(results.stats)))
    body += [f"<p>{_esc(line)}</p>" for line in summary_lines(results)]
    body += [
        f"<h2>How to read this</h2><p>{_esc(HOW_TO_READ)}</p>",
        "<h2>What the Gunicorn workers logged</h2><pre>" + _esc("\n".join(results.server_log)) + "</pre>",
        "<h2>Commands run</h2><pre>"
        + _esc("\n".join([results.checks, results.ping, _flush_output(results)]))
        + "</pre>",
        f"<p class=muted>Measured in this run, {results.seconds:.0f} s in total.</p>",
    ]
    style = (
        "body{font:14px/1.45 system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem}"
        "table{border-collapse:collapse;margin-bottom:1rem}td,th{border-bottom:1px solid #ddd;"
        "padding:.2rem .5rem;text-align:right}td:first-child,th:first-child{text-align:left}"
        "svg{display:block;margin:1rem 0}.muted{color:#777}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cachewise demo report</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def write_html(results: DemoResults, path: Path, console: Console) -> None:
    """Write the report to ``path`` (creating its folder) and say where it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(results), encoding="utf-8")
    console.print(f"HTML report: {path}")
