"""Cost of cachewise's in-process metrics on the cache hit path.

Measures, against a private embedded Redis, in the same run:

* ``cache.get`` of a 1 KB value (a hit) with metrics on and off (``CACHEWISE_METRICS_ENABLED``),
  in interleaved rounds so machine noise hits both variants alike; the ratio of the medians;
* ``record("hit", ...)`` alone, and its cost as a share of the median hit.

Usage: ``.venv/bin/python bench/metrics_overhead.py [--rounds 15] [--ops 2000]``.
Target: metrics add <= 3% to a hit.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from typing import Any


def _setup(url: str) -> None:
    import django
    from django.conf import settings

    from cachewise.config import caches_from_url

    settings.configure(
        INSTALLED_APPS=["cachewise"],
        CACHES=caches_from_url(url, key_prefix="bench-metrics"),
        CACHEWISE_METRICS_FLUSH_INTERVAL=10.0,
    )
    django.setup()


def _time_gets(cache: Any, ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        cache.get("article:hot")
    return (time.perf_counter() - started) / ops


def _time_records(ops: int) -> float:
    from cachewise.monitoring.metrics import record

    started = time.perf_counter()
    for _ in range(ops):
        record("hit", "default", "article")
    return (time.perf_counter() - started) / ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()

    from cachewise.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        _setup(server.url)
        from django.core.cache import caches
        from django.test import override_settings

        from cachewise.monitoring.aggregate import aggregator
        from cachewise.monitoring.metrics import metrics

        cache = caches["default"]
        cache.set("article:hot", "x" * 1024, 600)
        _time_gets(cache, args.ops)  # warm up connections and code paths
        on: list[float] = []
        off: list[float] = []
        disabled = override_settings(CACHEWISE_METRICS_ENABLED=False)
        for index in range(args.rounds):
            # Alternate which variant runs first, so drift on a loaded machine hits both alike.
            for enabled in (True, False) if index % 2 else (False, True):
                if not enabled:
                    disabled.enable()
                (on if enabled else off).append(_time_gets(cache, args.ops))
                if not enabled:
                    disabled.disable()
        counted = sum(v for (event, _, _), v in metrics.snapshot().items() if event == "hit")
        records = [_time_records(args.ops * 10) for _ in range(args.rounds)]
        aggregator.reset()
        cache.delete("article:hot")

    hit_off, hit_on = statistics.median(off), statistics.median(on)
    record_cost = statistics.median(records)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rounds={args.rounds} ops/round={args.ops} (1 KB value, embedded Redis on loopback)")
    print(f"hit, metrics off : median {hit_off * 1e6:8.1f} us/op")
    print(f"hit, metrics on  : median {hit_on * 1e6:8.1f} us/op   ratio on/off {hit_on / hit_off:.3f}")
    print(f"hits counted by the backend while on: {counted:.0f}")
    print(f"record() alone   : median {record_cost * 1e9:8.0f} ns/op  = {record_cost / hit_off:.2%} of a hit")
    print(f"peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
