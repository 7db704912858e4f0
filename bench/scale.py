"""Cost that grows with the work: cachewise against django-redis and Django's RedisCache at scale.

One run, one Redis, the three backends with their default OPTIONS side by side (rounds
interleaved and shuffled for the small sizes); for every operation the median time, the ratio
against each peer, and Redis' longest command during it (from SLOWLOG):

* ``get_many`` / ``set_many`` of N keys (10-byte values), N = 10 ... ``--max-keys``
* ``CachedRows.get_many`` of N pks, hits and misses, against the equivalent ``values()`` query
  (PostgreSQL when ``DATABASE_URL`` is set, else SQLite)
* a page under cachewise's ``cache_page`` against Django's ``cache_page``: hit and miss
* ``clear()`` of 10,000 own keys among 0 / 100k / 1M keys of other prefixes

``--acceptance`` runs issue 21's full-size check instead: a 2,000,000-key ``get_many`` and a
1,000,000-key ``set_many`` on default OPTIONS while another process PINGs the server; prints
the values returned, the breaker state and the worst PING wait::

    .venv/bin/python bench/scale.py [--max-keys 1000000] [--rounds 5]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cw_scale .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --acceptance
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, process_cpu_seconds, redis_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

PEERS = ("cachewise", "django-redis", "django")
VALUE = "x" * 10


def _caches(url: str) -> dict[str, Any]:
    """The three backends on the same Redis, default OPTIONS, each under its own prefix."""
    return {
        "default": {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "cw"},
        "cachewise": {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "cw"},
        "cachewise-gen": {
            "BACKEND": "cachewise.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "cg",
            "OPTIONS": {"clear": "generation"},
        },
        "django-redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": "dr"},
        "django": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "dj",
        },
    }


def _setup(url: str, tmp: str) -> None:
    import django
    from django.conf import settings

    sys.path.insert(0, str(ROOT / "bench"))
    from orm import _database

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "cachewise", "tests.testapp"],
        DATABASES={"default": _database(os.environ.get("DATABASE_URL"), tmp)},
        CACHES=_caches(url),
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        ROOT_URLCONF=__name__,
        CACHEWISE_ORM_CACHE="cachewise",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


urlpatterns: list[Any] = []


class SlowLog:
    """Redis' longest command while a block runs (SLOWLOG at a 100 us threshold)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        client.config_set("slowlog-log-slower-than", 100)
        client.config_set("slowlog-max-len", 100_000)

    @contextmanager
    def watch(self, sink: list[int]) -> Iterator[None]:
        self.client.slowlog_reset()
        yield
        entries = self.client.slowlog_get(100_000)
        sink.append(max((entry["duration"] for entry in entries), default=0))

    @staticmethod
    def show(worst: list[int]) -> str:
        top = max(worst, default=0)
        return "<0.1 ms" if top == 0 else f"{top / 1000:.1f} ms"


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _ratio(mine: float, theirs: float) -> str:
    return f"{theirs / mine:.2f}x" if mine else "-"


def _print(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    print()


def _sizes(limit: int) -> list[int]:
    return [n for n in (10, 100, 1_000, 10_000, 100_000, 1_000_000) if n <= limit]


# get_many / set_many ------------------------------------------------------------------------------
def bench_batches(client: Any, limit: int, rounds: int) -> None:
    from django.core.cache import caches

    print(f"== get_many / set_many of N keys ({len(VALUE)}-byte values); ratio = peer time / cachewise time")
    slow = SlowLog(client)
    out = []
    for n in _sizes(limit):
        keys = [f"k{i}" for i in range(n)]
        data = dict.fromkeys(keys, VALUE)
        times: dict[tuple[str, str], list[float]] = {}
        worst: dict[tuple[str, str], list[int]] = {}
        repeat = max(1, min(rounds, 200_000 // n))
        for _ in range(repeat):
            order = list(PEERS)
            random.shuffle(order)
            for peer in order:
                cache = caches[peer]
                for op, fn in (
                    ("set_many", functools.partial(cache.set_many, data, 600)),
                    ("get_many", functools.partial(cache.get_many, keys)),
                ):
                    with slow.watch(worst.setdefault((peer, op), [])):
                        started = time.perf_counter()
                        try:
                            result = fn()
                        except Exception as exc:  # a peer may not survive a huge batch: say so
                            print(f"   !! {peer} {op}({n:,}) raised {type(exc).__name__}: {exc}")
                            result = {}
                        times.setdefault((peer, op), []).append(time.perf_counter() - started)
                    if op == "get_many" and len(result) != n:
                        print(f"   !! {peer} get_many({n}) returned {len(result)} values")
        for peer in PEERS:
            caches[peer].delete_many(keys)
        for op in ("get_many", "set_many"):
            ours = _median_ms(times[("cachewise", op)])
            dr, dj = _median_ms(times[("django-redis", op)]), _median_ms(times[("django", op)])
            out.append(
                (
                    op,
                    f"{n:,}",
                    f"{ours:.2f} ms",
                    f"{dr:.2f} ms ({_ratio(ours, dr)})",
                    f"{dj:.2f} ms ({_ratio(ours, dj)})",
                    " / ".join(SlowLog.show(worst[(peer, op)]) for peer in PEERS),
                )
            )
    _print(out, ("op", "N", "cachewise", "django-redis", "django", "longest command cw / dr / dj"))


# CachedRows against the query -------------------------------------------------------------------
def _fill_rows(count: int) -> list[int]:
    from tests.testapp.models import Article, Author

    Article.objects.all().delete()
    Author.objects.all().delete()
    authors = Author.objects.bulk_create([Author(name=f"Author {i}") for i in range(20)])
    made = Article.objects.bulk_create(
        [Article(title=f"Article {i}", slug=f"article-{i}", author=authors[i % 20]) for i in range(count)]
    )
    return [article.pk for article in made]


class ServerCpu:
    """CPU seconds used so far by this process, Redis and (on PostgreSQL) this connection's backend.

    Beside wall time, the rows section prints the CPU per call of all its parts: it tells a call
    that waits (round trips) from one that works. It is no steadier than wall time on a host whose
    CPU slows down with its neighbours (seen here: both tripled together). Redis' share comes
    from ``INFO cpu``; the PostgreSQL backend's from ``/proc`` (same machine, loopback; 10 ms
    ticks, so only totals over many calls are meaningful). SQLite runs in process.
    """

    def __init__(self, client: Any) -> None:
        from django.db import connection

        self.client = client
        self.backends: list[int] = []
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.backends.append(cursor.fetchone()[0])

    def now(self) -> float:
        info = self.client.info("cpu")
        used = time.process_time() + float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return used + process_cpu_seconds(self.backends)


def bench_rows(client: Any, limit: int, rounds: int) -> None:
    from django.core.cache import caches
    from django.db import connection
    from tests.testapp.models import Article

    from cachewise.orm.rows import _pack_head, settle

    sizes = [n for n in (10, 100, 1_000, 10_000) if n <= limit]
    pks_all = _fill_rows(max(sizes))
    rows_cache, plan = Article.cached, Article.cached.plan()
    cache = caches["cachewise"]
    print(
        f"== CachedRows.get_many against values() on {connection.vendor}; ratio = query time / cachewise time"
    )
    slow = SlowLog(client)
    server_cpu = ServerCpu(client)
    out = []
    capacity = []
    for n in sizes:
        pks = pks_all[:n]
        row_keys = [cache.make_key(rows_cache.key(pk)) for pk in pks]
        pack_head = _pack_head(plan)

        def query(pks: list[int] = pks) -> Any:
            return list(Article.objects.filter(pk__in=pks).values(*plan.values))

        def cached(pks: list[int] = pks) -> Any:
            return rows_cache.get_many(pks)

        cached()
        hits, misses, plain = [], [], []
        cpu = {"hit": 0.0, "miss": 0.0, "query": 0.0}
        worst_hit: list[int] = []
        worst_miss: list[int] = []
        repeat = max(3, min(rounds * 20, 100_000 // n))
        for _ in range(repeat):
            for kind in random.sample(["hit", "miss", "query"], 3):
                if kind == "miss":  # the rows' pointers and packs gone, as after their TTL
                    refs = {ref.decode() for ref in client.mget(row_keys) if ref is not None}
                    client.unlink(*row_keys, *(cache.make_key(pack_head + ref) for ref in refs))
                sink = {"hit": hits, "miss": misses, "query": plain}[kind]
                with slow.watch(worst_hit if kind == "hit" else worst_miss):
                    cpu_before = server_cpu.now()
                    started = time.perf_counter()
                    (query if kind == "query" else cached)()
                    sink.append(time.perf_counter() - started)
                    settle()  # a large fill's answer is read after the call: its CPU counts here
                    cpu[kind] += server_cpu.now() - cpu_before
        idle = _idle_cpu(server_cpu)
        per_call = {kind: max(total / repeat - idle, 1e-9) for kind, total in cpu.items()}
        capacity.append(
            (
                f"{n:,}",
                f"{per_call['query'] * 1000:.2f} ms",
                f"{per_call['hit'] * 1000:.2f} ms ({per_call['query'] / per_call['hit']:.2f}x less)",
                f"{per_call['miss'] * 1000:.2f} ms ({per_call['miss'] / per_call['query']:.2f}x the query)",
            )
        )
        q, h, m = _median_ms(plain), _median_ms(hits), _median_ms(misses)
        out.append(
            (
                f"{n:,}",
                f"{q:.2f} ms",
                f"{h:.2f} ms ({q / h:.2f}x faster)",
                f"{m:.2f} ms ({m / q:.2f}x the query)",
                f"{SlowLog.show(worst_hit)} / {SlowLog.show(worst_miss)}",
            )
        )
    _print(out, ("pks", "values() query", "hit", "miss", "longest command hit / miss"))
    print("   the same calls in CPU (this process + Redis + the database backend), mean per call:")
    _print(capacity, ("pks", "values() query", "hit", "miss"))


def _idle_cpu(server_cpu: ServerCpu, samples: int = 50) -> float:
    """The CPU two back-to-back readings cost (INFO on Redis, /proc): subtracted from each call."""
    total = 0.0
    for _ in range(samples):
        before = server_cpu.now()
        total += server_cpu.now() - before
    return total / samples


# Pages ---------------------------------------------------------------------------------------------
def _article_page(request: Any) -> Any:
    from django.http import HttpResponse
    from tests.testapp.models import Article

    titles = list(Article.objects.order_by("pk").values_list("title", flat=True)[:20])
    return HttpResponse("<ul>" + "".join(f"<li>{title}</li>" for title in titles) + "</ul>")


def bench_pages(client: Any, rounds: int) -> None:
    from django.test import RequestFactory
    from django.views.decorators.cache import cache_page as django_cache_page

    from cachewise.decorators import cache_page

    views = {
        "cachewise": cache_page(300, alias="cachewise", query_params=("hit", "miss"), max_entries=10**9)(
            _article_page
        ),
        "django": django_cache_page(300, cache="django")(_article_page),
        "uncached": _article_page,
    }
    factory = RequestFactory()
    print("== a 20-row page: cachewise cache_page against Django's cache_page (same view, same Redis)")
    slow = SlowLog(client)
    counter = iter(range(10**9))
    times: dict[tuple[str, str], list[float]] = {}
    worst: dict[str, list[int]] = {}
    per_round = 200
    for view in views.values():
        view(factory.get("/page", {"hit": "1"}))  # warm the hit
    for _ in range(rounds * 3):
        for name, kind in random.sample([(v, k) for v in views for k in ("hit", "miss")], len(views) * 2):
            view = views[name]
            requests = [
                factory.get("/page", {"hit": "1"} if kind == "hit" else {"miss": str(next(counter))})
                for _ in range(per_round)
            ]
            with slow.watch(worst.setdefault(name, [])):
                started = time.perf_counter()
                for request in requests:
                    view(request)
                times.setdefault((name, kind), []).append((time.perf_counter() - started) / per_round)
    out = []
    base = {kind: _median_ms(times[("uncached", kind)]) for kind in ("hit", "miss")}
    for kind in ("hit", "miss"):
        ours, theirs = _median_ms(times[("cachewise", kind)]), _median_ms(times[("django", kind)])
        out.append(
            (
                kind,
                f"{ours * 1000:.0f} us",
                f"{theirs * 1000:.0f} us",
                f"{ours / theirs:.2f}x",
                f"{base[kind] * 1000:.0f} us",
                f"{(ours - base[kind]) * 1000:.0f} us / {(theirs - base[kind]) * 1000:.0f} us",
            )
        )
    _print(out, ("request", "cachewise", "django", "cw / django", "uncached view", "overhead cw / django"))
    print(
        f"   longest command: cw {SlowLog.show(worst['cachewise'])}, django {SlowLog.show(worst['django'])}\n"
    )


# clear() -------------------------------------------------------------------------------------------
def _raw_fill(client: Any, prefix: str, count: int) -> None:
    for start in range(0, count, 10_000):
        client.mset({f"{prefix}:{i}": "v" for i in range(start, min(count, start + 10_000))})


def bench_clear(client: Any, limit: int) -> None:
    from django.core.cache import caches

    own = 10_000
    print(
        f"== clear() of {own:,} own keys among foreign keys: cachewise with OPTIONS clear='scan' (default)"
        " and 'generation'; django-redis and Django clear() are FLUSHDB (every key of the database)"
    )
    slow = SlowLog(client)
    out = []
    for foreign in (0, 100_000, 1_000_000):
        if foreign > 10 * max(limit, 100_000):
            break
        _raw_fill(client, "foreign", foreign)
        row = [f"{foreign:,}"]
        for alias in ("cachewise", "cachewise-gen"):
            cache = caches[alias]
            cache.set_many({f"c{i}": 1 for i in range(own)}, 600)
            worst: list[int] = []
            with slow.watch(worst):
                started = time.perf_counter()
                cache.clear()
                took = time.perf_counter() - started
            left = cache.get_many([f"c{i}" for i in range(0, own, 97)])
            row += [f"{took * 1000:.2f} ms", SlowLog.show(worst), "yes" if not left else "NO"]
        out.append(tuple(row))
        client.flushdb()
    _print(
        out,
        ("foreign keys", "scan clear()", "longest", "gone", "generation clear()", "longest", "gone"),
    )


# Acceptance ----------------------------------------------------------------------------------------
_PING_LOOP = r"""
import os, select, socket, sys, time
try:
    os.nice(-10)
except OSError:
    pass
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
worst, count = 0.0, 0
sys.stdout.write("ready\n"); sys.stdout.flush()
while not select.select([sys.stdin], [], [], 0)[0]:
    started = time.perf_counter()
    sock.sendall(b"PING\r\n")
    sock.recv(64)
    worst = max(worst, time.perf_counter() - started)
    count += 1
    time.sleep(0.002)
print(f"{worst * 1000:.2f} {count}")
"""


def acceptance(client: Any, port: int) -> None:
    from django.core.cache import caches

    from cachewise.resilience import CLOSED

    cache = caches["cachewise"]
    print("== acceptance: 2,000,000-key get_many and 1,000,000-key set_many, default OPTIONS, PING loop")
    names = [f"a{i}" for i in range(2_000_000)]
    payload = cache.encode(VALUE)
    for start in range(0, len(names), 10_000):
        client.mset({cache.make_key(name): payload for name in names[start : start + 10_000]})
    for label, run in (
        ("get_many 2,000,000", lambda: len(cache.get_many(names))),
        (
            "set_many 1,000,000",
            lambda: 1_000_000 - len(cache.set_many({f"s{i}": i for i in range(1_000_000)}, 600)),
        ),
    ):
        ping = subprocess.Popen(
            [sys.executable, "-c", _PING_LOOP, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert ping.stdout is not None
        assert ping.stdout.readline().strip() == "ready"
        client.slowlog_reset()
        started = time.perf_counter()
        done = run()
        took = time.perf_counter() - started
        worst, count = ping.communicate("stop\n", timeout=30)[0].split()
        longest = max((entry["duration"] for entry in client.slowlog_get(100_000)), default=0)
        print(
            f"   {label}: {done:,} values in {took:.1f} s; breaker {cache.resilience.breaker.state}"
            f" ({'closed as required' if cache.resilience.breaker.state == CLOSED else 'NOT CLOSED'});"
            f" worst PING {float(worst):.1f} ms over {int(count):,} PINGs;"
            f" longest command {longest / 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--acceptance", action="store_true")
    parser.add_argument("--only", choices=("batches", "rows", "pages", "clear"), default=None)
    args = parser.parse_args()
    with redis_url() as url, tempfile.TemporaryDirectory() as tmp:
        _setup(url, tmp)
        import redis

        client = redis.Redis.from_url(url)
        client.flushdb()
        if args.acceptance:
            acceptance(client, int(url.rsplit(":", 1)[1].split("/")[0]))
        else:
            steps: dict[str, Callable[[], None]] = {
                "batches": lambda: bench_batches(client, args.max_keys, args.rounds),
                "rows": lambda: bench_rows(client, args.max_keys, args.rounds),
                "pages": lambda: bench_pages(client, args.rounds),
                "clear": lambda: bench_clear(client, args.max_keys),
            }
            for name, step in steps.items():
                if args.only in (None, name):
                    step()
                    client.flushdb()
        print(
            f"peak RSS {peak_rss_mb():.0f} MiB;"
            f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine)"
        )


if __name__ == "__main__":
    main()
