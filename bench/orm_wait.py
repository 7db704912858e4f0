"""Cost of confirming ORM version bumps on a replica: ``CACHEWISE_ORM_REPLICAS=1`` against 0.

A private primary and one replica (redis-server processes on loopback), SQLite in a temporary
file (PostgreSQL when ``DATABASE_URL`` is set, as in ``bench/orm.py``). Variants in interleaved,
shuffled rounds, single-threaded: ``article.save()`` (autocommit: the bump after the UPDATE) and a
transaction saving 10 rows (one bump for all, after COMMIT), each with ``CACHEWISE_ORM_REPLICAS``
0 (the baseline) and 1 (the bump and ``WAIT 1 100`` in one round trip). Prints median saves/s,
the ratio to the baseline, and peak RSS. The cached read path is unchanged by the option.

    .venv/bin/python bench/orm_wait.py [--rounds 7] [--saves 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import ops_per_second, peak_rss_mb, replicate

from orm import _database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def _setup(url: str, tmp: str) -> None:
    import django
    from django.conf import settings

    from cachewise import caches_from_url

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "cachewise", "tests.testapp"],
        DATABASES={"default": _database(os.environ.get("DATABASE_URL"), tmp)},
        CACHES=caches_from_url(url, key_prefix=f"bench-orm-wait-{os.getpid()}", sessions=False),
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def _variants() -> dict[str, tuple[Callable[[int], Any], int]]:
    from django.db import transaction
    from tests.testapp.models import Article, Author

    author = Author.objects.create(name="bench")
    rows = [Article.objects.create(title="0", author=author) for _ in range(10)]

    def save_one(i: int) -> None:
        rows[0].title = str(i)
        rows[0].save(update_fields=["title"])

    def save_ten(i: int) -> None:
        with transaction.atomic():
            for row in rows:
                row.title = str(i)
                row.save(update_fields=["title"])

    return {"save()": (save_one, 1), "atomic: 10 x save()": (save_ten, 10)}


def _measure(fn: Callable[[int], Any], units: int, per_unit: int, replicas: int) -> float:
    from django.test import override_settings

    with override_settings(CACHEWISE_ORM_REPLICAS=replicas):
        return ops_per_second(fn, units, per_unit)


def main(argv: list[str] | None = None) -> int:
    from cachewise.embedded import EmbeddedRedis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--saves", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as primary, EmbeddedRedis() as replica:
        replicate(replica.url, primary.port)
        _setup(primary.url, tmp)
        variants = _variants()
        table = [(name, replicas) for name in variants for replicas in (0, 1)]
        results: dict[tuple[str, int], list[float]] = {entry: [] for entry in table}
        for _ in range(args.rounds):
            random.shuffle(table)
            for name, replicas in table:
                fn, per_unit = variants[name]
                units = args.saves if per_unit == 1 else args.saves // 10
                results[(name, replicas)].append(_measure(fn, units, per_unit, replicas))
        print(f"ORM WAIT cost: {args.rounds} rounds, {args.saves} saves per variant per round")
        print(f"{'variant':40} {'saves/s':>10} {'vs 0':>8}")
        for name in variants:
            base = statistics.median(results[(name, 0)])
            for replicas in (0, 1):
                median = statistics.median(results[(name, replicas)])
                label = f"{name} ORM_REPLICAS={replicas}"
                print(f"{label:40} {median:>10.0f} {median / base:>7.2f}x")
        print(f"\npeak RSS: {peak_rss_mb():.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
