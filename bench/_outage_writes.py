"""``bench/outage.py --writes``: how long after an outage every process reads committed data.

Reader processes read a row (``CachedRows``) and a list (``cached_list``) every few milliseconds;
each remembers the last time it was served a title older than the committed one. Scenarios:

* **write reaches Redis** (baseline): a writer process saves; no outage.
* **writer's Redis blackholed**: the writer reaches Redis through a loopback proxy that swallows
  every byte (its bump times out), commits, exits; the readers' Redis never went away.
* **restart from an older snapshot**: ``SAVE``, a committed write, then Redis is killed and
  restarted from the snapshot file (readers see the outage).

"Time to fresh" is measured from the writer's return (or the restarted server answering) to the
last stale read of any reader: 0 when no reader was ever served stale data afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _configure(db_path: str, url: str, prefix: str) -> None:
    import sys

    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    import django
    from django.conf import settings

    from cachewise import caches_from_url

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "cachewise", "tests.testapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        CACHES=caches_from_url(url, key_prefix=prefix),
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


def _titles(pk: int) -> tuple[str, str]:
    from tests.testapp.models import Article

    from cachewise.orm import cached_list

    row = Article.cached.get(pk) or {}
    listed = cached_list(Article.objects.filter(pk=pk).values("id", "title"), ttl=600)
    return str(row.get("title")), str(listed[0]["title"])


def _quiet() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the outage warnings of every child would drown the table


def _reader(db_path: str, url: str, prefix: str, pk: int, ready: Any, done: Any, out: Any) -> None:
    """Child: read every 5 ms; report the last time each committed title was still not served."""
    _configure(db_path, url, prefix)
    _quiet()
    from tests.testapp.models import Article

    last_stale: dict[str, float] = {}
    reads = 0
    ready.release()
    while not done.is_set():
        committed = Article.objects.values_list("title", flat=True).get(pk=pk)
        now = time.time()
        if _titles(pk) != (committed, committed):
            last_stale[committed] = now
        reads += 1
        time.sleep(0.005)
    out.put((last_stale, reads))
    out.close()
    out.join_thread()


def _writer(db_path: str, url: str, prefix: str, pk: int, title: str, out: Any) -> None:
    """Child: save ``title`` (through ``url``, maybe blackholed), report its return time and latency."""
    _configure(db_path, url, prefix)
    _quiet()
    from tests.testapp.models import Article

    article = Article.objects.get(pk=pk)
    article.title = title
    started = time.perf_counter()
    article.save()
    out.put((time.time(), time.perf_counter() - started))
    out.close()
    out.join_thread()


class Bench:
    """One SQLite file, one private Redis (with a snapshot directory), ``readers`` processes."""

    def __init__(self, tmp: str, readers: int) -> None:
        from cachewise.embedded import EmbeddedRedis

        self.tmp, self.readers = tmp, readers
        self.server = EmbeddedRedis(extra_args=["--dir", tmp]).start()
        self.db = os.path.join(tmp, "outage.sqlite3")
        self.prefix = f"bench-outage-{os.getpid()}"
        self.ctx = multiprocessing.get_context("spawn")

    def url(self, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.server.port}/0"

    def prepare(self) -> int:
        _configure(self.db, self.url(), self.prefix)
        from django.core.management import call_command
        from tests.testapp.models import Article, Author

        call_command("migrate", run_syncdb=True, verbosity=0)
        author = Author.objects.create(name="A")
        return int(Article.objects.create(title="t0", author=author).pk)

    def write(self, pk: int, title: str, url: str) -> tuple[float, float]:
        out = self.ctx.Queue()
        child = self.ctx.Process(target=_writer, args=(self.db, url, self.prefix, pk, title, out))
        child.start()
        result: tuple[float, float] = out.get(timeout=120)
        child.join(30)
        return result

    def readers_running(self, pk: int) -> tuple[list[Any], Any, Any]:
        ready, done, out = self.ctx.Semaphore(0), self.ctx.Event(), self.ctx.Queue()
        procs = [
            self.ctx.Process(target=_reader, args=(self.db, self.url(), self.prefix, pk, ready, done, out))
            for _ in range(self.readers)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.acquire(timeout=120)
        time.sleep(0.5)  # every reader has filled and hit the cache
        return procs, done, out

    def collect(self, procs: list[Any], done: Any, out: Any, title: str, since: float) -> tuple[float, int]:
        time.sleep(3.0)  # well past the bound: a reader still stale now stays stale for its TTL
        done.set()
        reports = [out.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(30)
        stale_until = max((report[0].get(title, since) for report in reports), default=since)
        return max(0.0, stale_until - since), sum(report[1] for report in reports)


def _scenario_write(bench: Bench, pk: int, trial: int, blackhole: bool) -> tuple[float, float, int]:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.tcp_proxy import TcpProxy

    title = f"{'cut' if blackhole else 'ok'}-{trial}"
    procs, done, out = bench.readers_running(pk)
    with TcpProxy(bench.server.port) as proxy:
        if blackhole:
            proxy.blackhole()
        returned_at, latency = bench.write(pk, title, bench.url(proxy.port))
    fresh_after, reads = bench.collect(procs, done, out, title, returned_at)
    return fresh_after, latency, reads


def _scenario_snapshot(bench: Bench, pk: int, trial: int) -> tuple[float, float, int]:
    import redis

    title = f"snap-{trial}"
    procs, done, out = bench.readers_running(pk)
    redis.Redis(port=bench.server.port).save()
    bench.write(pk, title, bench.url())
    time.sleep(0.3)  # every reader is served the new title from the cache
    bench.server.kill()
    bench.server.restart()  # loads the snapshot: the previous title and its counters
    up_at = time.time()
    fresh_after, reads = bench.collect(procs, done, out, title, up_at)
    return fresh_after, 0.0, reads


@contextmanager
def session(readers: int) -> Iterator[tuple[Bench, int]]:
    """A Bench with Django configured on it (SQLite file, private Redis); stopped on exit."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(tmp, readers)
        try:
            yield bench, bench.prepare()
        finally:
            bench.server.stop()


def report(bench: Bench, pk: int, trials: int) -> None:
    """Print the time-to-fresh table (median and worst of ``trials`` per scenario)."""
    from cachewise.conf import conf

    interval = conf.RECOVERY_INTERVAL
    print(
        f"\noutage during writes: {bench.readers} reader processes, CACHEWISE_RECOVERY_INTERVAL={interval} s"
    )
    print(
        f"{'scenario':<34}{'trials':>7}{'fresh after (median)':>22}{'worst':>9}{'write ms':>10}{'reads':>8}"
    )
    scenarios = [
        ("write reaches Redis (baseline)", lambda t: _scenario_write(bench, pk, t, False)),
        ("writer's Redis blackholed", lambda t: _scenario_write(bench, pk, t, True)),
        ("restart from an older snapshot", lambda t: _scenario_snapshot(bench, pk, t)),
    ]
    for name, scenario in scenarios:
        results = [scenario(trial) for trial in range(trials)]
        fresh = [r[0] for r in results]
        write_ms = statistics.median(r[1] for r in results) * 1000
        reads = sum(r[2] for r in results)
        print(
            f"{name:<34}{trials:>7}{statistics.median(fresh):>20.3f} s{max(fresh):>7.3f} s"
            f"{write_ms:>10.0f}{reads:>8}"
        )
