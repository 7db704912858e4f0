"""Request latency when Redis is down: a view doing 5 cache reads, Redis killed or blackholed.

For each backend and failure mode, requests run for ``--seconds`` (paced every ``--pace`` ms) and
the script prints: how many requests were slow (> 50 ms), the p50/p99 latency added over the same
view without a cache, and the same p99 for the requests served once the breaker was open. A
"blackholed" Redis is a loopback socket that accepts connections and never answers (a hung
server, a dropped route); "killed" refuses connections.

    .venv/bin/python bench/outage.py [--seconds 8] [--pace 5] [--backends cachewise,django]
                                     [--no-writes] [--readers 3] [--trials 3]

Then (unless ``--no-writes``) an outage during writes: how long after the write returns (or the
restarted Redis answers) until every reader process reads the committed data (see
``_outage_writes``).

Socket timeouts are cachewise's defaults (0.5 s read, 0.3 s connect) for every backend, so the
comparison is about what each backend does with them.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

READS = 5
SLOW = 0.050
BACKENDS = {
    "cachewise": "cachewise.backends.redis.RedisCache",
    "django": "django.core.cache.backends.redis.RedisCache",
    "django-redis": "django_redis.cache.RedisCache",
}


class Blackhole:
    """A loopback listener that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.held: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        self.stopped.set()
        for conn in self.held:
            conn.close()
        self.listener.close()


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="bench", USE_TZ=True, CACHES={}, LOGGING_CONFIG=None)
        django.setup()


def make_view(cache: Any) -> Callable[[], int]:
    """A view body: 5 cache reads (fragments, a row, a counter...) around trivial work."""

    def view() -> int:
        found = 0
        for i in range(READS):
            if cache is not None and cache.get(f"fragment:{i}") is not None:
                found += 1
        return found

    return view


class Run:
    """Latency of each request, whether the breaker was open before it, and how many raised."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.opened: list[bool] = []
        self.errors = 0


def run(view: Callable[[], int], seconds: float, pace: float, breaker: Any = None) -> Run:
    """Call ``view`` repeatedly for ``seconds`` (at least once), ``pace`` seconds apart."""
    result = Run()
    deadline = time.monotonic() + seconds
    while not result.latencies or time.monotonic() < deadline:
        result.opened.append(breaker is not None and breaker.state != "closed")
        start = time.perf_counter()
        try:
            view()
        except Exception:  # the exception reached the view: that request is a 500
            result.errors += 1
        result.latencies.append(time.perf_counter() - start)
        time.sleep(pace)
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def scenario(name: str, backend: str, url: str, seconds: float, pace: float, baseline: float) -> None:
    from django.utils.module_loading import import_string

    options: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.3}
    if backend == BACKENDS["cachewise"]:
        options["alias"] = "default"
    if backend == BACKENDS["django-redis"]:  # django-redis spells its options in capitals
        options = {"SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.3}
    cache = import_string(backend)(url, {"KEY_PREFIX": "bench", "OPTIONS": options})
    breaker = getattr(getattr(cache, "resilience", None), "breaker", None)
    if breaker is not None:
        breaker.reset()
    result = run(make_view(cache), seconds, pace, breaker)
    added = [max(0.0, lat - baseline) * 1000 for lat in result.latencies]
    after_open = [a for a, was_open in zip(added, result.opened, strict=True) if was_open]
    slow = sum(1 for lat in result.latencies if lat > SLOW)
    open_p99 = f"{pct(after_open, 0.99):8.3f}" if after_open else "     n/a"
    p50, p99, worst = pct(added, 0.5), pct(added, 0.99), max(result.latencies) * 1000
    print(
        f"{name:<26}{len(added):>9}{slow:>6}{result.errors:>8}{p50:>10.3f}{p99:>10.1f}{open_p99:>16}{worst:>9.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pace", type=float, default=5.0, help="milliseconds between requests")
    parser.add_argument("--backends", default="cachewise,django,django-redis")
    parser.add_argument(
        "--writes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure an outage during writes (time until every process reads fresh data)",
    )
    parser.add_argument("--readers", type=int, default=3, help="reader processes for --writes")
    parser.add_argument("--trials", type=int, default=3, help="trials per --writes scenario")
    args = parser.parse_args(argv)
    if not args.writes:
        _setup_django()
        latency_table(args)
    else:
        import _outage_writes

        with _outage_writes.session(args.readers) as (bench, pk):
            latency_table(args)
            _outage_writes.report(bench, pk, args.trials)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: {rss_mb:.1f} MB (largest child process {children_mb:.1f} MB)")
    return 0


def latency_table(args: argparse.Namespace) -> None:
    """The request latency table: every backend with Redis killed, then blackholed."""
    from cachewise.embedded import EmbeddedRedis

    pace = args.pace / 1000
    baseline = statistics.median(run(make_view(None), 1.0, pace).latencies)
    print(f"view without cache: median {baseline * 1e6:.1f} us; {READS} reads per request; slow = > 50 ms")
    print(f"{'backend / failure':<26}{'requests':>9}{'slow':>6}{'errors':>8}{'p50 +ms':>10}{'p99 +ms':>10}"
          f"{'p99 +ms (open)':>16}{'max ms':>9}")  # fmt: skip
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    for kind in wanted:
        server = EmbeddedRedis().start()
        url = server.url_for(0)
        server.kill()
        scenario(f"{kind} / killed", BACKENDS[kind], url, args.seconds, pace, baseline)
        server.stop()
        hole = Blackhole()
        try:
            scenario(
                f"{kind} / blackholed",
                BACKENDS[kind],
                f"redis://127.0.0.1:{hole.port}/0",
                args.seconds,
                pace,
                baseline,
            )
        finally:
            hole.close()


if __name__ == "__main__":
    sys.exit(main())
