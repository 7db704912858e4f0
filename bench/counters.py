"""Counter throughput: cachewise Counter.incr against raw redis-py INCR, single-threaded.

Variants, in interleaved rounds (each runs once per round, shuffled, so drift on a shared machine
hits all alike), on 100 ids:

* raw INCR: ``client.incr(key)`` (no TTL, no index: the floor; the baseline)
* raw INCR on the cachewise backend's client (bounded blocking pool, 0.5 s socket timeout)
* raw EVALSHA of Counter's script on the raw client: the floor of a one-round-trip atomic
  incr-or-init (server-side Lua costs more than a bare INCR)
* Counter.incr: one EVALSHA (INFO for the server's run, HINCRBY, SADD of the run on a new id)
* playbook recipe: Django cache ``add(key, 0, ttl)`` then ``incr(key)`` through Django's RedisCache
* raw pipelined INCR x100: one pipeline of 100 INCRs
* Counter.incr_many x100: one script call carrying 100 increments

Prints the median ops/s and the ratio to raw INCR, plus peak RSS.

    .venv/bin/python bench/counters.py [--rounds 7] [--ops 2000]

Uses ``REDIS_URL`` when set, else starts a private EmbeddedRedis.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable
from typing import Any

from _common import ops_per_second, peak_rss_mb, redis_url

IDS = 100
BATCH = 100


def _setup_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        CACHES={
            "default": {
                "BACKEND": "cachewise.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench-counters",
            },
            "django": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench-dj",
            },
        },
    )
    django.setup()


def variants(url: str) -> dict[str, tuple[Callable[[int], Any], int]]:
    """name -> (callable doing one unit of work for index i, increments per unit)."""
    import redis
    from django.core.cache import caches

    from cachewise import Counter

    client = redis.Redis.from_url(url)
    counter = Counter("bench:views")
    django_cache = caches["django"]

    def recipe(i: int) -> None:
        key = f"views:{i % IDS}"
        django_cache.add(key, 0, 3600)
        django_cache.incr(key)

    def raw_pipeline(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        for j in range(BATCH):
            pipe.incr(f"raw:{j % IDS}")
        pipe.execute()

    from cachewise.store.scripts.counts import COUNTER_INCR

    backend_client = caches["default"].get_client()
    script = client.register_script(COUNTER_INCR.source)

    def raw_script(i: int) -> None:
        script(keys=["{s}:~live:", "{s}:~lives"], args=[1, 0, str(i % IDS)])

    batch = dict.fromkeys(range(BATCH), 1)
    return {
        "raw INCR": (lambda i: client.incr(f"raw:{i % IDS}"), 1),
        "raw INCR, cachewise client": (lambda i: backend_client.incr(f"raw:{i % IDS}"), 1),
        "raw EVALSHA of incr script": (raw_script, 1),
        "Counter.incr": (lambda i: counter.incr(i % IDS), 1),
        "playbook add+incr (Django)": (recipe, 1),
        f"raw pipelined INCR x{BATCH}": (raw_pipeline, BATCH),
        f"Counter.incr_many x{BATCH}": (lambda i: counter.incr_many(batch), BATCH),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=2000, help="single increments per variant per round")
    args = parser.parse_args(argv)

    with redis_url() as url:
        _setup_django(url)
        table = variants(url)
        for fn, _ in table.values():  # warm up: connections, script load, keys
            fn(0)
        results: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.rounds):
            names = list(table)
            random.shuffle(names)
            for name in names:
                fn, per_unit = table[name]
                units = args.ops if per_unit == 1 else max(1, args.ops // 10)
                results[name].append(ops_per_second(fn, units, per_unit))
        baseline = statistics.median(results["raw INCR"])
        print(
            f"counters: {args.rounds} rounds, {args.ops} single increments per variant per round, {IDS} ids"
        )
        print(f"{'variant':30} {'ops/s':>10} {'vs raw INCR':>12}")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"{name:30} {median:>10.0f} {median / baseline:>11.2f}x")
        print(f"\npeak RSS: {peak_rss_mb():.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
