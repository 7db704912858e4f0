"""The terminal report: what caching bought, per view and per scenario, from this run's samples."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from demo.freshness import EditResult
from demo.load import LoadResult, Sample
from demo.results import DemoResults, ViewResult
from demo.scenarios import OutageResult, StampedeResult

__all__ = ["phase_figures", "print_report"]

HOW_TO_READ = (
    "req/s: requests answered per second by the server. p50/p99: median and 99th-percentile latency. "
    "queries/req: SQL statements per request, counted by the demo's middleware. hit rate: share of "
    "the cachewise requests that ran none of the cached code (the cached runs start cold, so first "
    "visits count as misses). speedup: cachewise req/s over uncached req/s; the two variants ran "
    "interleaved in the same run. Recomputes per expiry: how many of the requesters that arrived "
    "together on an expired key ran the slow computation. cachewise's own counters are the library's "
    "count of the same load and stampede runs, summed over the workers through Redis."
)


def _figures(load: LoadResult, *, hits: bool) -> list[str]:
    return [
        f"{load.rps:,.0f}",
        f"{load.latency(0.5):.1f}",
        f"{load.latency(0.99):.1f}",
        f"{load.queries_per_request:.2f}",
        f"{load.hit_rate:.0%}" if hits else "-",
        str(load.failures),
    ]


def _view_rows(view: ViewResult) -> list[list[str]]:
    rows = [[view.spec.label, "uncached", *_figures(view.plain, hits=False), ""]]
    if view.cached is None:
        rows.append(["", f"{view.spec.short}: not in this checkout", "", "", "", "", "", "", ""])
    else:
        speedup = f"{view.speedup:.1f}x" if view.speedup is not None else "-"
        hits = view.spec.method == "GET"
        rows.append(["", view.spec.short, *_figures(view.cached, hits=hits), speedup])
    return rows


def views_table(results: DemoResults) -> Table:
    """Uncached vs cachewise: two rows per view."""
    table = Table(title=f"Views: uncached vs cachewise ({results.requests_per_run} requests each)")
    headers = ("View", "Variant", "req/s", "p50 ms", "p99 ms", "queries/req", "hit rate", "failed", "speedup")
    for header in headers:
        table.add_column(header, justify="left" if header in ("View", "Variant") else "right")
    for view in results.views:
        for index, row in enumerate(_view_rows(view)):
            table.add_row(*row, end_section=index == 1)
    return table


def stampede_table(result: StampedeResult) -> Table:
    """Recomputes per expiry for the naive pattern and for ``@cached``."""
    table = Table(
        title=f"Stampede: {result.requesters} requesters at once on an expired key "
        f"({result.compute_seconds:g} s compute)"
    )
    for header in ("Pattern", "recomputes per expiry", "each expiry", "p50 ms", "p99 ms", "failed"):
        table.add_column(header, justify="left" if header == "Pattern" else "right")
    rows = [("bare cache.get() then cache.set()", result.naive_computes, result.naive)]
    if result.cached_computes:
        rows.append(("@cached(stampede='lock')", result.cached_computes, result.cached))
    for name, computes, load in rows:
        table.add_row(
            name,
            f"{StampedeResult.per_expiry(computes):.1f}",
            ", ".join(str(count) for count in computes),
            f"{load.latency(0.5):.0f}",
            f"{load.latency(0.99):.0f}",
            str(load.failures),
        )
    return table


def phase_figures(samples: list[Sample]) -> tuple[int, int, float, float, float]:
    """requests, failed, hit rate, p50 ms, p99 ms of one outage phase."""
    load = LoadResult(samples=samples)
    return load.requests, load.failures, load.hit_rate, load.latency(0.5), load.latency(0.99)


def outage_table(result: OutageResult) -> Table:
    """Requests, failures and hits before, during and after the outage."""
    table = Table(title=f"Outage: Redis killed at {result.down_at:.1f} s, back at {result.up_at:.1f} s")
    for header in ("Phase", "requests", "failed", "hit rate", "p50 ms", "p99 ms"):
        table.add_column(header, justify="left" if header == "Phase" else "right")
    for phase in ("before", "during", "after"):
        requests, failed, hits, p50, p99 = phase_figures(result.phase(phase))
        table.add_row(phase, str(requests), str(failed), f"{hits:.0%}", f"{p50:.1f}", f"{p99:.1f}")
    return table


def stats_table(stats: dict[str, Any]) -> Table:
    """cachewise's own counters per namespace, summed over every worker (``cachewise stats``)."""
    table = Table(
        title="cachewise's own counters for the load and stampede runs, all workers (cachewise stats)"
    )
    headers = ("Namespace", "hits", "misses", "hit rate", "recomputes", "lock waits", "degraded", "errors")
    for header in headers:
        table.add_column(header, justify="left" if header == "Namespace" else "right")
    counted = ("hits", "misses", "recomputes", "lock_waits", "degraded", "errors")
    active = [row for row in stats["namespaces"] if any(row.get(name) for name in counted)]
    for row in [*active, {**stats["total"], "namespace": "all"}]:
        rate = row.get("hit_rate")
        table.add_row(
            row["namespace"],
            *(f"{row.get(name, 0):,.0f}" for name in ("hits", "misses")),
            "-" if rate is None else f"{rate:.0%}",
            *(f"{row.get(name, 0):,.0f}" for name in counted[2:]),
        )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def advisor_table(rows: list[dict[str, Any]]) -> Table:
    """The advisor's recommendations from the uncached phase, next to the cached twin's figures."""
    table = Table(title="Advisor: recorded on the uncached phase, vs what the cached twin measured")
    headers = (
        "Route",
        "advised",
        "TTL",
        "predicted hit",
        "DB s saved/h",
        "twin uses",
        "measured hit",
        "speed-up",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("Route", "advised", "twin uses") else "right")
    for row in rows:
        speedup = row["measured_speedup"]
        table.add_row(
            row["route"],
            row["strategy"],
            f"{row['ttl']} s",
            _pct(row["expected_hit_rate"]),
            f"{row['db_seconds_saved_per_hour']:,.1f}",
            row["twin"] or "-",
            _pct(row["measured_hit_rate"]),
            "-" if speedup is None else f"{speedup:.1f}x",
        )
    return table


def edit_line(edit: EditResult) -> str:
    """The verdict of the edit-under-load scenario."""
    every = edit.every_worker_after
    timing = (
        f"every worker ({len(edit.workers)}) served the new page {1000 * every:.0f} ms after the commit"
        if every is not None
        else "a worker never served the new page"
    )
    return (
        f"Edit an article under load: {timing}; {edit.stale_after} of {len(edit.after)} requests sent "
        "after the commit got the old page."
    )


def summary_lines(results: DemoResults) -> list[str]:
    """The one-line verdicts under the tables."""
    lines = []
    if results.counter is not None:
        counter = results.counter
        lines.append(
            f"Counter: {counter.sent} increments sent, {counter.flushed_into_database} reached the "
            f"database after flush(), {counter.lost} lost."
        )
    if results.edit is not None:
        lines.append(edit_line(results.edit))
    if results.outage is not None:
        recovered = results.outage.recovered_after
        failed = results.outage.load.failures
        lines.append(
            f"Outage: {failed} failed request(s) of {results.outage.load.requests}; "
            + (
                f"first cache hit {recovered:.2f} s after Redis came back."
                if recovered is not None
                else "no hit after restart."
            )
        )
        after = results.stats_after_restart
        if after is not None:
            total = after["total"]
            lines.append(
                f"cachewise counted {total.get('degraded', 0):,.0f} degraded reads and "
                f"{total.get('errors', 0):,.0f} cache errors in the outage scenario (its counters since "
                "the restart, including what the workers kept while Redis was down)."
            )
    elif results.outage_skipped:
        lines.append(f"Outage: skipped ({results.outage_skipped}).")
    if results.dashboard:
        lines.append(results.dashboard[:1].upper() + results.dashboard[1:] + ".")
    if results.missing_features:
        lines.append(
            "Not measured (feature missing in this checkout): " + ", ".join(results.missing_features)
        )
    return lines


def print_report(results: DemoResults, console: Console) -> None:
    """Print the report: setup, the three tables, verdicts, and how to read it."""
    console.rule("cachewise demo report")
    console.print(f"Redis: {results.redis}\nDatabase: {results.database}, {results.articles} articles")
    console.print(f"Server: {results.server}; {results.concurrency} client threads\n")
    console.print(views_table(results))
    if results.stampede is not None:
        console.print(stampede_table(results.stampede))
    if results.outage is not None:
        console.print(outage_table(results.outage))
    if results.stats is not None:
        console.print(stats_table(results.stats))
    if results.advisor:
        console.print(advisor_table(results.advisor))
        for row in results.advisor:
            for warning in row["warnings"]:
                console.print(f"  {row['route']}: {warning}", markup=False, highlight=False)
    for line in summary_lines(results):
        console.print(line)
    if results.server_log:
        console.print("\nWhat the Gunicorn workers logged (distinct lines):")
        console.print("\n".join(f"  {line}" for line in results.server_log), markup=False, highlight=False)
    console.print(f"\n[dim]How to read this: {HOW_TO_READ}[/]")
    console.print(f"[dim]Measured in this run, {results.seconds:.0f} s in total.[/]")
