"""Cost of confirming counter increments on a replica: Counter(replicas=1) against Counter().

A private primary and a replica (redis-server processes on loopback). Variants in interleaved,
shuffled rounds, single-threaded, on 100 ids: ``Counter.incr`` (no wait, the baseline),
``Counter(replicas=1).incr`` (the script and ``WAIT 1 100`` in one pipeline), and the same for
``incr_many`` of 100 ids. Prints median ops/s, the ratio to the baseline, and peak RSS.

    .venv/bin/python bench/counter_wait.py [--rounds 7] [--ops 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from typing import Any

from _common import ops_per_second, peak_rss_mb, replicate


def _setup_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        CACHES={"default": {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": url}},
    )
    django.setup()


def main(argv: list[str] | None = None) -> int:
    from cachewise.embedded import EmbeddedRedis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args(argv)
    with EmbeddedRedis() as primary, EmbeddedRedis() as replica:
        replicate(replica.url, primary.port)
        _setup_django(primary.url)
        from cachewise import Counter

        plain, waiting = Counter("bench:plain"), Counter("bench:wait", replicas=1, replica_timeout=0.1)
        batch = dict.fromkeys(range(100), 1)
        table: dict[str, tuple[Callable[[int], Any], int]] = {
            "Counter.incr": (lambda i: plain.incr(i % 100), 1),
            "Counter(replicas=1).incr": (lambda i: waiting.incr(i % 100), 1),
            "Counter.incr_many x100": (lambda i: plain.incr_many(batch), 100),
            "Counter(replicas=1).incr_many x100": (lambda i: waiting.incr_many(batch), 100),
        }
        for fn, _ in table.values():
            fn(0)
        results: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.rounds):
            names = list(table)
            random.shuffle(names)
            for name in names:
                fn, per_unit = table[name]
                results[name].append(
                    ops_per_second(fn, args.ops if per_unit == 1 else args.ops // 10, per_unit)
                )
        print(f"counter WAIT cost: {args.rounds} rounds, {args.ops} single increments per variant per round")
        print(f"{'variant':38} {'ops/s':>10} {'vs no wait':>11}")
        for name, values in results.items():
            base = statistics.median(results[name.replace("(replicas=1)", "")])
            median = statistics.median(values)
            print(f"{name:38} {median:>10.0f} {median / base:>10.2f}x")
        print(f"\npeak RSS: {peak_rss_mb():.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
