"""Run the whole demo: set up, check, seed, load every view, the scenarios, then the report.

Django is imported only after :func:`demo.server.start_stack` has exported the settings, so this
module (and the ``demo`` package) can be imported by tests without a configured Django.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from demo.load import LoadResult, run_requests
from demo.results import CounterCheck, DemoResults, ViewResult, ViewSpec
from demo.scenarios import outage, stampede
from demo.server import DemoError, Stack

__all__ = ["Sizes", "run_demo"]


@dataclass(frozen=True)
class Sizes:
    """How big the run is: ``quick`` (tests, ~20 s) or the full default (about a minute)."""

    articles: int
    requests: int
    paths_per_view: int
    concurrency: int
    stampede_requesters: int
    stampede_rounds: int
    outage_phases: tuple[float, float, float]

    @classmethod
    def for_run(cls, *, quick: bool, requests: int | None) -> Sizes:
        if quick:
            return cls(600, requests or 150, 4, 6, 12, 2, (1.5, 2.0, 1.5))
        return cls(3000, requests or 400, 10, 8, 16, 3, (3.0, 4.0, 3.0))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<42}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@contextmanager
def _task(progress: Progress, description: str, total: int | None) -> Iterator[Callable[..., None]]:
    task = progress.add_task(description, total=total)
    yield lambda *_: progress.advance(task)
    if total is not None:
        progress.update(task, completed=total)


def check_and_ping() -> tuple[str, str]:
    """Run Django's system checks and ``cachewise ping``; return their output.

    Raise :class:`DemoError` with the command's message when a check fails or Redis does not
    answer: nothing after this would mean anything.
    """
    from django.core.management import CommandError, get_commands

    try:
        return _check_and_ping(get_commands())
    except CommandError as exc:
        raise DemoError(f"the demo cannot start: {exc}") from exc


def _check_and_ping(commands: dict[str, str]) -> tuple[str, str]:
    from django.core.management import call_command

    checks = io.StringIO()
    checks.write("$ manage.py check\n")
    call_command("check", stdout=checks, stderr=checks)
    # The production checklist's live checks of the Redis server too (deploy-only, tag caches).
    checks.write("$ manage.py check --deploy --tag caches\n")
    call_command("check", deploy=True, tags=["caches"], stdout=checks, stderr=checks)
    if "cachewise" not in commands:
        return checks.getvalue().strip(), "(manage.py cachewise ping is not available in this checkout)"
    ping = io.StringIO()
    ping.write("$ manage.py cachewise ping\n")
    call_command("cachewise", "ping", stdout=ping, stderr=ping)
    return checks.getvalue().strip(), ping.getvalue().strip()


def migrate_and_seed(articles: int) -> None:
    """Create the tables and replace the content with ``articles`` seeded articles."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_blog", articles=articles, verbosity=0)


def view_specs(paths_per_view: int) -> list[ViewSpec]:
    """The views to load, each cycling through ``paths_per_view`` URLs of the seeded rows."""
    from demo.blog.models import Article, Category

    count = paths_per_view
    slugs = list(Article.objects.order_by("pk").values_list("slug", flat=True)[:count])
    pks = list(Article.objects.order_by("pk").values_list("pk", flat=True)[:count])
    categories = list(Category.objects.order_by("pk").values_list("slug", flat=True)[:count])
    pages = [f"articles/?page={page}" for page in range(1, count + 1)]
    details = [f"articles/{slug}/" for slug in slugs]
    api = [f"api/articles/?category={slug}" for slug in categories]
    rows = [f"api/articles/{pk}/" for pk in pks]
    counts = [f"api/articles/{pk}/view/" for pk in pks]

    def spec(label: str, pattern: str, feature: str, paths: list[str], method: str = "GET") -> ViewSpec:
        short = pattern.split("(", 1)[0] if not pattern.startswith("{%") else "{% cache %}"
        return ViewSpec(
            label,
            pattern,
            short,
            feature,
            tuple(f"/plain/{path}" for path in paths),
            tuple(f"/{path}" for path in paths),
            method,
        )

    return [
        spec("Home (aggregates)", "@cached(ttl=600, stampede='lock')", "cached", [""]),
        spec("Article list", "cache_page(300)", "cache_page", pages),
        spec("Article page", "cache_page(300) + {% cache ... depends_on=article %}", "cache_tag", details),
        spec("JSON list", "cached_list(queryset, ttl=600)", "cached_list", api),
        spec("JSON article", "Article.cached.get(pk)", "CachedRows", rows),
        spec("View counter POST", "Counter.incr() + flush()", "Counter", counts, "POST"),
    ]


def _views_sum() -> int:
    from django.db.models import Sum

    from demo.blog.models import Article

    return int(Article.objects.aggregate(total=Sum("views"))["total"] or 0)


#: Uncached and cached requests alternate in this many chunks, so that a busy moment on a shared
#: machine slows both variants instead of skewing the comparison.
ROUNDS = 4


def _rotated(paths: tuple[str, ...], offset: int) -> list[str]:
    start = offset % len(paths)
    return [*paths[start:], *paths[:start]]


def _interleaved(
    progress: Progress, base_url: str, spec: ViewSpec, sizes: Sizes, *, with_cached: bool
) -> tuple[LoadResult, LoadResult | None]:
    """Load the uncached and (if available) the cached variant of ``spec``, chunk by chunk."""
    variants = [(f"{spec.label}: uncached", spec.plain_paths, LoadResult())]
    if with_cached:
        variants.append((f"{spec.label}: cachewise", spec.cached_paths, LoadResult()))
    tasks = [progress.add_task(label, total=sizes.requests) for label, _, _ in variants]
    chunk = -(-sizes.requests // ROUNDS)
    for done in range(0, sizes.requests, chunk):
        count = min(chunk, sizes.requests - done)
        for task, (_, paths, result) in zip(tasks, variants, strict=True):
            part = run_requests(
                base_url,
                _rotated(paths, done),
                count,
                method=spec.method,
                concurrency=sizes.concurrency,
                on_sample=lambda _sample, task=task: progress.advance(task),
            )
            result.samples.extend(part.samples)
            result.wall_seconds += part.wall_seconds
    return variants[0][2], variants[1][2] if with_cached else None


def load_views(progress: Progress, base_url: str, sizes: Sizes, results: DemoResults) -> None:
    """Load each view uncached and cached; check that the counter's flush lost nothing."""
    from demo.blog.features import feature

    for spec in view_specs(sizes.paths_per_view):
        # Warm the plain twin (templates, connections) so its first requests do not count.
        run_requests(base_url, spec.plain_paths, 10, method=spec.method, concurrency=2)
        before = _views_sum()
        with_cached = feature(spec.feature) is not None
        plain, cached = _interleaved(progress, base_url, spec, sizes, with_cached=with_cached)
        if spec.feature == "Counter" and cached is not None:
            results.counter = _flush_counter(plain, cached, before)
        results.views.append(ViewResult(spec, plain, cached))


def _ok(load: LoadResult) -> int:
    return load.requests - load.failures


def _flush_counter(plain: LoadResult, cached: LoadResult, before: int) -> CounterCheck:
    """Flush with ``cachewise flush-counters``; the uncached twin's UPDATEs are already in."""
    from demo.blog.counters import flush_views

    output = flush_views()
    flushed = _views_sum() - before - _ok(plain)
    return CounterCheck(sent=_ok(cached), flushed_into_database=flushed, output=output)


def run_stampede(progress: Progress, base_url: str, sizes: Sizes, results: DemoResults) -> None:
    """Expire the slow report and fire a burst at it, naive and cached, a few times."""
    from django.core.cache import cache

    from demo.blog import data, views

    cached_fn: Any = views.cached_slow_report
    with _task(progress, "Stampede: naive vs @cached", sizes.stampede_rounds * 2) as advance:
        results.stampede = stampede(
            base_url,
            naive_path="/plain/stampede/",
            cached_path="/stampede/" if cached_fn is not None else None,
            expire_naive=lambda: cache.delete(views.NAIVE_REPORT_KEY),
            expire_cached=cached_fn.invalidate if cached_fn is not None else None,
            compute_seconds=data.STAMPEDE_COMPUTE_SECONDS,
            requesters=sizes.stampede_requesters,
            rounds=sizes.stampede_rounds,
            on_round=advance,
        )


def run_edit(progress: Progress, base_url: str, sizes: Sizes, results: DemoResults) -> None:
    """Edit the newest article while clients load its page and the list (both ``cache_page``)."""
    from demo.blog import data
    from demo.blog.features import feature
    from demo.freshness import edit_under_load

    if feature("cache_page") is None:
        return
    article = data.article_page(1)[0]
    paths = ["/articles/?page=1", f"/articles/{article.slug}/"]

    def edit() -> str:
        article.title = f"{article.title.split(' [edited')[0]} [edited {time.time_ns() % 10**6}]"
        article.save()  # autocommit: committed when save() returns
        return str(article.title)

    with _task(progress, "Edit an article under load", 1) as advance:
        results.edit = edit_under_load(
            base_url, paths, edit, threads=sizes.concurrency // 2 or 1, before=sizes.outage_phases[0]
        )
        advance()


def run_outage(progress: Progress, base_url: str, stack: Stack, sizes: Sizes, results: DemoResults) -> None:
    """Kill and restart the embedded Redis under load (never a server the demo did not start)."""
    if stack.redis is None:
        results.outage_skipped = (
            "REDIS_URL points at your own server: the demo never stops a server it did not start"
        )
        return
    cached = [view for view in results.views if view.cached is not None and view.spec.method == "GET"]
    paths = [path for view in cached for path in view.spec.cached_paths[:5]] or ["/plain/"]
    before, during, after = sizes.outage_phases
    with _task(progress, "Outage: Redis killed, then restarted", None) as advance:
        results.outage = outage(
            base_url, paths, stack.redis, before=before, during=during, after=after, on_sample=advance
        )


def notable_lines(log: str, limit: int = 12) -> list[str]:
    """The distinct lines of the workers' log, in order of first appearance, at most ``limit``."""
    seen: dict[str, None] = {}
    for line in log.splitlines():
        if line.strip() and line not in seen:
            seen[line] = None
    lines = list(seen)
    return (
        [*lines[:limit], f"... and {len(lines) - limit} more distinct lines"] if len(lines) > limit else lines
    )


def run_demo(stack: Stack, sizes: Sizes, console: Console) -> DemoResults:
    """Everything after the stack is up: checks, seed, Gunicorn, loads, scenarios."""
    from django.db import connection

    from demo.advisor import recommendations
    from demo.blog.features import missing_features
    from demo.monitoring import cachewise_stats, dashboard_status, settled_stats
    from demo.server import THREADS, WORKERS, gunicorn

    started = time.perf_counter()
    results = DemoResults(
        redis=("embedded redis-server at " if stack.embedded else "REDIS_URL: ") + stack.redis_url,
        database=f"{connection.vendor} ({connection.settings_dict['NAME']})",
        articles=sizes.articles,
        requests_per_run=sizes.requests,
        concurrency=sizes.concurrency,
        server=f"Gunicorn, {WORKERS} workers x {THREADS} threads (gthread), real HTTP on 127.0.0.1",
        missing_features=missing_features(),
    )
    console.print("[bold]1.[/] System checks and cachewise ping")
    results.checks, results.ping = check_and_ping()
    console.print(results.checks, results.ping, sep="\n", markup=False, highlight=False)
    console.print(f"[bold]2.[/] Migrating and seeding {sizes.articles} articles")
    migrate_and_seed(sizes.articles)
    console.print("[bold]3.[/] Load, stampede and outage against Gunicorn")
    with tempfile.TemporaryDirectory(prefix="cwdemo-") as tmp:
        with gunicorn(Path(tmp) / "gunicorn.log") as served, _progress(console) as progress:
            load_views(progress, served.base_url, sizes, results)
            run_stampede(progress, served.base_url, sizes, results)
            run_edit(progress, served.base_url, sizes, results)
            results.stats = settled_stats()
            # Before the outage scenario: the restarted embedded Redis starts empty.
            results.advisor = recommendations(results)
            run_outage(progress, served.base_url, stack, sizes, results)
        results.server_log = notable_lines(served.log())
    # After Gunicorn stopped: its workers flushed their counters to Redis on the way out.
    if results.outage is not None:
        results.stats_after_restart = cachewise_stats()
    results.dashboard = dashboard_status()
    results.seconds = time.perf_counter() - started
    return results
