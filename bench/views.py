"""Page cache throughput: cachewise's cache_page against Django's, behind Gunicorn on loopback.

Serves ``bench/views_site.py`` with Gunicorn (2 sync workers, Django's default middleware) on
127.0.0.1 and loads it with a bounded built-in client (a few processes x threads, one
``http.client`` request at a time each; ``wrk`` is used instead when it is on PATH). Variants:

* ``trivial``: ``HttpResponse("ok")``, the floor
* ``trivial-same-body``: the list's HTML rendered once per worker, then sent as is: the floor for
  a response of the cached page's size (what is left above it is the cache's own work)
* ``list``: 50 articles with their author through a template, uncached (SQLite)
* ``django``: the list under Django's ``cache_page`` on Django's built-in ``RedisCache``
* ``django-cw-backend``: Django's ``cache_page`` on cachewise's backend
* ``cachewise``: the list under ``cachewise.decorators.cache_page`` (data dependencies tracked)
* ``cachewise-untracked``: the same with ``track_queries=False``

Then, in process: the CPU of one hit of each page-cache variant (no HTTP), and the render cost of
tracking (the list view rendered with and without a dependency tracker).

Rounds are interleaved (every variant once per round, shuffled); prints the median req/s and p99
per variant, the server CPU (Gunicorn workers + Redis, from /proc) per request, the ratios
cachewise/django and cachewise/trivial of both, and peak RSS. On a loaded machine req/s swings
with the neighbours; CPU per request does not, so capacity ratios are the steadier figure::

    .venv/bin/python bench/views.py [--seconds 2] [--rounds 7] [--clients 2] [--threads 2] [--near]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import process_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    "trivial",
    "trivial-same-body",
    "list",
    "django",
    "django-cw-backend",
    "cachewise",
    "cachewise-untracked",
)


def _load_worker(args: tuple[int, str, int, float]) -> list[float]:
    """Request ``path`` from ``threads`` threads until ``seconds`` pass; return the latencies."""
    import threading

    port, path, threads, seconds = args
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.monotonic() + seconds

    def run(out: list[float]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline and len(out) < 200_000:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            out.append(time.perf_counter() - started)
            if response.getheader("Connection", "").lower() == "close":
                connection.close()  # Gunicorn's sync workers close after each response
        connection.close()

    workers = [threading.Thread(target=run, args=(out,)) for out in latencies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 30)
    return [value for out in latencies for value in out]


def _server_pids(master: int, redis_pid: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children] + [redis_pid]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def _builtin_load(
    pool: multiprocessing.pool.Pool, port: int, path: str, clients: int, threads: int, seconds: float
) -> tuple[float, float, int]:
    started = time.monotonic()
    results = pool.map(_load_worker, [(port, path, threads, seconds)] * clients)
    wall = time.monotonic() - started
    latencies = [value for result in results for value in result]
    # Requests over the load window (spawned workers are already running: wall ~ seconds).
    return len(latencies) / max(wall, seconds), _p99(latencies) * 1000, len(latencies)


def _wrk_load(port: int, path: str, clients: int, threads: int, seconds: float) -> tuple[float, float, int]:
    output = subprocess.run(
        ["wrk", f"-t{clients}", f"-c{clients * threads}", f"-d{int(seconds)}s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], total


def _setup_data(tmp: str, redis_url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.views_site",
        CW_BENCH_SQLITE=os.path.join(tmp, "bench.sqlite3"),
        CW_BENCH_REDIS_URL=redis_url,
        CW_BENCH_PREFIX=f"cwbench{os.getpid()}",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    from tests.testapp.models import Article, Author

    authors = [Author.objects.create(name=f"Author {i}") for i in range(10)]
    Article.objects.bulk_create(
        Article(title=f"Article number {i}", slug=f"a-{i}", author=authors[i % 10]) for i in range(60)
    )


@contextlib.contextmanager
def _gunicorn(port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    command = [
        sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
        "--log-level", "warning", "--timeout", "60", "--graceful-timeout", "5",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/trivial/")
                if connection.getresponse().status == 200:
                    break
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


Result = tuple[float, float, float]  # req/s, p99 ms, server CPU microseconds per request


def _report(results: dict[str, list[Result]]) -> None:
    med = {v: statistics.median(r[0] for r in results[v]) for v in VARIANTS}
    p99 = {v: statistics.median(r[1] for r in results[v]) for v in VARIANTS}
    cpu = {v: statistics.median(r[2] for r in results[v]) for v in VARIANTS}
    print(
        f"{'variant':<20}{'req/s':>8}{'p99 ms':>8}{'x trivial':>10}{'x django':>9}"
        f"{'CPU us/req':>12}{'cap. x trivial':>15}{'cap. x django':>14}"
    )
    for v in VARIANTS:
        print(
            f"{v:<20}{med[v]:>8.0f}{p99[v]:>8.1f}{med[v] / med['trivial']:>10.2f}"
            f"{med[v] / med['django']:>9.2f}{cpu[v]:>12.0f}"
            f"{cpu['trivial'] / cpu[v]:>15.2f}{cpu['django'] / cpu[v]:>14.2f}"
        )
    print(
        f"\ncachewise / django cache_page: {med['cachewise'] / med['django']:.2f}x req/s, "
        f"{cpu['django'] / cpu['cachewise']:.2f}x capacity (target >= 0.9)"
        f"\ncachewise / trivial floor:     {med['cachewise'] / med['trivial']:.2f}x req/s, "
        f"{cpu['trivial'] / cpu['cachewise']:.2f}x capacity (target >= 0.7)"
        f"\ncachewise / same-body floor:   {med['cachewise'] / med['trivial-same-body']:.2f}x req/s, "
        f"{cpu['trivial-same-body'] / cpu['cachewise']:.2f}x capacity (near cache on: target >= 0.9)"
        f"\ncachewise / uncached list:     {med['cachewise'] / med['list']:.1f}x req/s, "
        f"{cpu['list'] / cpu['cachewise']:.1f}x capacity"
    )
    tracked, untracked = "cachewise", "cachewise-untracked"
    print(
        f"tracked / untracked hit:       {med[tracked] / med[untracked]:.2f}x req/s, "
        f"{cpu[untracked] / cpu[tracked]:.2f}x capacity (target >= 0.9)"
        f"\ntracked / django cache_page:   {med[tracked] / med['django']:.2f}x req/s, "
        f"{cpu['django'] / cpu[tracked]:.2f}x capacity (target >= 1.2)"
    )
    per_round = ", ".join(f"{r[0]:.0f}" for r in results["cachewise"])
    print(f"cachewise req/s per round: {per_round}")
    # Paired: both measured in the same round (seconds apart), so a slow phase of the host
    # moves both; the median of these ratios is steadier than the ratio of the medians.
    paired = sorted(c[0] / t[0] for c, t in zip(results["cachewise"], results["trivial"], strict=True))
    print(
        f"cachewise / trivial, paired per round: median {statistics.median(paired):.2f}x req/s "
        f"(rounds {paired[0]:.2f}-{paired[-1]:.2f})"
    )
    print(
        "capacity = inverse of the server CPU (2 Gunicorn workers + Redis) per request: robust to "
        "other load on the machine, unlike req/s"
    )


def _hit_cpu(rounds: int = 40, calls: int = 100) -> str:
    """Median CPU microseconds of one page hit in process (the view called directly, no HTTP).

    The server's share of a hit without Gunicorn, the HTTP parsing and the middleware stack,
    which every variant pays alike and which dilute the differences in the figures above.
    """
    from django.test import RequestFactory
    from django.urls import resolve

    factory = RequestFactory(HTTP_HOST="127.0.0.1")
    paths = ("/cachewise/", "/cachewise-untracked/", "/django/")
    views = {path: (resolve(path).func, factory.get(path)) for path in paths}
    samples: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path, (view, request) in views.items():
            started = time.process_time()
            for _ in range(calls):
                view(request)
            samples[path].append((time.process_time() - started) / calls * 1e6)
    cpu = {path: statistics.median(values) for path, values in samples.items()}
    tracked, untracked, django = (cpu[path] for path in paths)
    return (
        f"hit CPU in process (median of {rounds} x {calls}): tracked {tracked:.0f} us, untracked "
        f"{untracked:.0f} us, Django's cache_page {django:.0f} us; tracked/untracked throughput "
        f"{untracked / tracked:.2f}x, tracked/Django {django / tracked:.2f}x"
    )


def _wsgi_cpu(rounds: int = 15, calls: int = 200) -> str:
    """Median CPU microseconds per request through Django's WSGI handler in this process.

    The whole stack a Gunicorn worker runs (middleware, signals, the view) without the HTTP
    server: the trivial view against the cached page, interleaved. A worker pays 2-3x these
    figures (its caches are cold between requests); their difference is the page cache's work.
    Call it in a thread of its own: this process ran ``migrate``, which left a language
    activated in its main thread, and a worker's requests run with none.
    """
    import io

    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    from django.core.cache import caches

    near = getattr(caches["default"], "near", None)
    if near is not None:  # --near: hits from memory, as in the workers
        assert near.tracker.wait_ready(10), "the near cache's tracking did not start"

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def call(path: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        body = app(environ, start_response)
        b"".join(body)
        body.close()  # type: ignore[attr-defined]  # sends request_finished, as a server does

    paths = ("/trivial/", "/trivial-same-body/", "/cachewise/")
    for path in paths:
        for _ in range(50):
            call(path)
    samples: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            started = time.process_time()
            for _ in range(calls):
                call(path)
            samples[path].append((time.process_time() - started) / calls * 1e6)
    trivial, same, page = (statistics.median(samples[path]) for path in paths)
    return (
        f"through the WSGI handler in process (CPU, median of {rounds} x {calls}): trivial {trivial:.0f} us, "
        f"same body {same:.0f} us, cached page {page:.0f} us (+{page - trivial:.0f} us over trivial)"
    )


def _in_fresh_thread(function: Any) -> Any:
    """``function()`` run in a new thread (a fresh context: no language or time zone activated)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        return executor.submit(function).result()


def _render_cost(renders: int = 200) -> str:
    """Median CPU microseconds of one list render: plain, tracked cold, tracked warm (interleaved).

    CPU time of this process (``time.process_time``), which the neighbours' load moves far less
    than wall time; the wait for Redis in the cold case is not in it (one loopback round trip).

    *Cold*: no version known, so the tracker reads its tables' versions (one round trip), as the
    first fill of a page does. *Warm*: the versions were read by the hit attempt that found the
    page stale (a refill after a write), so tracking costs only the query wrapper's work.
    """
    from bench.views_site import article_list
    from django.test import RequestFactory

    from cachewise.pagecache.tracking import Tracker, install_all, track

    request = RequestFactory().get("/list/")
    install_all()
    with track(Tracker({}, (), automatic=True)) as first:
        article_list(request)
    known = dict(first.known)
    times: dict[str, list[float]] = {"plain": [], "cold": [], "warm": []}
    for _ in range(renders):
        for kind, samples in times.items():
            started = time.process_time()
            if kind == "plain":
                article_list(request)
            else:
                with track(Tracker(known if kind == "warm" else {}, (), automatic=True)):
                    article_list(request)
            samples.append(time.process_time() - started)
    plain, cold, warm = (statistics.median(times[kind]) * 1e6 for kind in ("plain", "cold", "warm"))
    return (
        f"render of the list (CPU, in process, median of {renders}): {plain:.0f} us plain; tracked "
        f"{warm:.0f} us with versions known (+{warm - plain:.0f} us, {warm / plain:.2f}x), "
        f"{cold:.0f} us reading them (+{cold - plain:.0f} us, {cold / plain:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="load per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per client process")
    parser.add_argument("--near", action="store_true", help="OPTIONS['near_cache'] on the default alias")
    args = parser.parse_args()
    if args.near:
        os.environ["CW_BENCH_NEAR"] = "1"  # read by bench/views_site.py in every Gunicorn worker
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    from cachewise.embedded import EmbeddedRedis, free_port

    use_wrk = shutil.which("wrk") is not None
    generator = "wrk" if use_wrk else "built-in (http.client)"
    print(f"load generator: {generator}; {args.clients} x {args.threads} connections, ", end="")
    print(f"{args.seconds:.0f} s x {args.rounds} rounds")
    results: dict[str, list[Result]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        redis = EmbeddedRedis().start()
        stack.callback(redis.stop)
        _setup_data(tmp, redis.url)
        port = free_port()
        server = stack.enter_context(_gunicorn(port))
        assert redis.process is not None
        pids = _server_pids(server.pid, redis.process.pid)
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(args.clients))
        for variant in VARIANTS:  # warm up: fill the caches, load templates and connections
            _builtin_load(pool, port, f"/{variant}/", 1, 1, 0.5)
        for _ in range(args.rounds):
            for variant in random.sample(VARIANTS, len(VARIANTS)):
                path = f"/{variant}/"
                cpu_before = process_cpu_seconds(pids)
                if use_wrk:
                    rps, p99, total = _wrk_load(port, path, args.clients, args.threads, args.seconds)
                else:
                    rps, p99, total = _builtin_load(
                        pool, port, path, args.clients, args.threads, args.seconds
                    )
                cpu_us = (process_cpu_seconds(pids) - cpu_before) / max(total, 1) * 1e6
                results[variant].append((rps, p99, cpu_us))
        render_cost = _render_cost()
        hit_cpu = _hit_cpu()
        wsgi_cpu = _in_fresh_thread(_wsgi_cpu)
    _report(results)
    print(hit_cpu)
    print(wsgi_cpu)
    print(render_cost)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: bench process {own:.0f} MiB; largest child process {children:.0f} MiB")


if __name__ == "__main__":
    main()
