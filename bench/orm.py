"""ORM caching: cachewise hits against the queries they replace, and what invalidation adds to save().

Measured in interleaved rounds (every variant once per round, shuffled) on the same database and
Redis; prints medians per operation, the ratio to the baseline of the same row, the number of
Redis commands per operation (from ``INFO commandstats``) and peak RSS.

* ``Article.cached.get(pk)`` (hit) vs ``Article.objects.select_related("author").get(pk=pk)``
* ``Article.cached.get_many(100 pks)`` (hits) vs ``list(filter(pk__in=pks).select_related(...))``
* ``cached_list(qs)`` (hit; with and without ``key=``) vs ``list(qs)``, a 50-row ``values()`` list
* ``article.save()`` with the invalidation receivers connected vs disconnected

    .venv/bin/python bench/orm.py [--rounds 9] [--iterations 200] [--near]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cw_orm_bench .venv/bin/python bench/orm.py

SQLite by default (a temporary file); PostgreSQL when ``DATABASE_URL`` is set (the database is
created if missing). Redis: ``REDIS_URL`` or a private EmbeddedRedis.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import peak_rss_mb, redis_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

ROWS = 200
MANY = 100
LIST_ROWS = 50


def _database(url: str | None, tmp: str) -> dict[str, Any]:
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(tmp, "bench.sqlite3")}
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "cw_orm_bench"
    host, port, user = parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    engine = "django.db.backends.postgresql"
    return {"ENGINE": engine, "NAME": name, "USER": user, "HOST": host, "PORT": str(port)}


def _setup(redis_url: str, tmp: str, near: bool = False) -> None:
    import django
    from django.conf import settings

    from cachewise import caches_from_url

    caches = caches_from_url(redis_url, key_prefix=f"bench-orm-{os.getpid()}")
    if near:  # OPTIONS["near_cache"] on the ORM's alias (docs/near-cache.md)
        caches["default"]["OPTIONS"] = {**caches["default"].get("OPTIONS", {}), "near_cache": True}
    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "cachewise", "tests.testapp"],
        DATABASES={"default": _database(os.environ.get("DATABASE_URL"), tmp)},
        CACHES=caches,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    if near:
        from django.core.cache import caches as handler

        cache: Any = handler["default"]
        assert cache.near.tracker.wait_ready(10)


def _fill() -> list[int]:
    from tests.testapp.models import Article, Author

    Article.objects.all().delete()
    Author.objects.all().delete()
    authors = Author.objects.bulk_create([Author(name=f"Author {i}") for i in range(20)])
    Article.objects.bulk_create(
        [
            Article(title=f"Article {i}", slug=f"article-{i}", author=authors[i % 20], featured=i % 3 == 0)
            for i in range(ROWS)
        ]
    )
    return list(Article.objects.order_by("pk").values_list("pk", flat=True))


def _redis_commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def _time(fn: Callable[[], Any], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def _pairs(pks: list[int]) -> list[tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
    """(operation, baseline name, cachewise variant, baseline) for the read benchmarks."""
    from tests.testapp.models import Article

    from cachewise.orm import cached_list

    one, many = pks[len(pks) // 2], pks[:MANY]
    listed = Article.objects.filter(featured=True).order_by("-pk").values("id", "title", "author__name")
    listed = listed[:LIST_ROWS]
    return [
        (
            "get (hit)",
            "select_related().get(pk=)",
            lambda: Article.cached.get(one),
            lambda: Article.objects.select_related("author").get(pk=one),
        ),
        (
            f"get_many {MANY} (hits)",
            "filter(pk__in=).select_related()",
            lambda: Article.cached.get_many(many),
            lambda: list(Article.objects.filter(pk__in=many).select_related("author")),
        ),
        (
            f"cached_list {LIST_ROWS} (hit)",
            "list(values() query)",
            lambda: cached_list(listed, ttl=600),
            lambda: list(listed.all()),
        ),
        (
            f"cached_list {LIST_ROWS} key= (hit)",
            "list(values() query)",
            lambda: cached_list(listed, ttl=600, key="bench-featured"),
            lambda: list(listed.all()),
        ),
    ]


def _bench_reads(pks: list[int], rounds: int, iterations: int, client: Any) -> list[tuple[str, ...]]:
    lines = []
    for operation, baseline_name, variant, baseline in _pairs(pks):
        variant()  # warm: the first call fills
        before = _redis_commands(client)
        variant()
        commands = _redis_commands(client) - before
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(rounds):
            order = [(variant, ours), (baseline, theirs)]
            random.shuffle(order)
            for fn, sink in order:
                sink.append(_time(fn, iterations))
        a, b = statistics.median(ours), statistics.median(theirs)
        timings = (f"{a * 1e6:.0f} us", baseline_name, f"{b * 1e6:.0f} us", f"{b / a:.1f}x")
        lines.append((operation, *timings, str(commands)))
    return lines


def _bench_save(pks: list[int], rounds: int, iterations: int, client: Any) -> tuple[str, ...]:
    from tests.testapp.models import Article

    from cachewise.orm.invalidation import connect_receivers, disconnect_receivers

    article = Article.objects.get(pk=pks[0])
    connect_receivers()
    before = _redis_commands(client)
    article.save()
    commands = _redis_commands(client) - before
    with_cache: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        order = [(True, with_cache), (False, without)]
        random.shuffle(order)
        for connected, sink in order:
            (connect_receivers if connected else disconnect_receivers)()
            sink.append(_time(article.save, iterations))
    connect_receivers()
    a, b = statistics.median(with_cache), statistics.median(without)
    timings = (
        f"{a * 1e6:.0f} us",
        "save() without receivers",
        f"{b * 1e6:.0f} us",
        f"+{(a - b) * 1e6:.0f} us",
    )
    return ("save()", *timings, str(commands))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--near", action="store_true", help="OPTIONS['near_cache'] on (docs/near-cache.md)")
    args = parser.parse_args()
    with redis_url() as url, tempfile.TemporaryDirectory() as tmp:
        _setup(url, tmp, near=args.near)
        import redis
        from django.db import connection

        client = redis.Redis.from_url(url)
        pks = _fill()
        rows = _bench_reads(pks, args.rounds, args.iterations, client)
        rows.append(_bench_save(pks, args.rounds, max(20, args.iterations // 4), client))
        runs = f"{args.rounds} rounds x {args.iterations} iterations"
        near = "; near cache on" if args.near else ""
        print(f"database: {connection.vendor}; {runs}; medians (save: a quarter of the iterations){near}")
        header = ("operation", "cachewise", "baseline", "baseline time", "speed-up", "redis cmds/op")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
