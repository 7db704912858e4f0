"""The metrics code on the hit path, timed alone, as a share of the hit it is attached to.

``bench/hit_path.py`` compares cachewise with metrics on and off (``record()`` returning early),
but the namespace accounting runs in both variants. This script times each piece on its own, in
the same run as the hits it is compared with (embedded Redis on loopback):

* ``record("hit", ...)`` on a known counter, and with metrics disabled;
* ``namespace_of(key)`` (every ``get``);
* the per-namespace accounting of a ``get_many`` of 100 keys (one namespace; and 100 distinct);
* a hit ``cache.get`` of 1 KB and ``cache.get_many`` of 100 keys.

Usage: ``.venv/bin/python bench/metrics_overhead.py [--rounds 15]``. Target: <= 3% of a hit.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any


def _setup(url: str) -> None:
    import django
    from django.conf import settings

    from cachewise.caches_url import caches_from_url

    settings.configure(INSTALLED_APPS=["cachewise"], CACHES=caches_from_url(url, key_prefix="bench-metrics"))
    django.setup()


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls


def _median(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    fn()
    return statistics.median(_per_call(fn, calls) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from cachewise.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        _setup(server.url)
        from django.core.cache import caches

        from cachewise.backends.redis import _record_lookups
        from cachewise.monitoring.aggregate import aggregator
        from cachewise.monitoring.metrics import metrics, namespace_of, record

        cache = caches["default"]
        keys = [f"article:{index}" for index in range(100)]
        cache.set_many(dict.fromkeys(keys, "x" * 1024), 600)
        found = dict.fromkeys(keys, 1)
        mixed = [f"ns{index}:1" for index in range(100)]
        rounds = args.rounds
        timings = {
            "hit: cache.get 1 KB": _median(lambda: cache.get(keys[0]), 300, rounds),
            "hit: cache.get_many 100 x 1 KB": _median(lambda: cache.get_many(keys), 30, rounds),
            "record() on a known counter": _median(
                lambda: record("hit", "default", "article"), 20000, rounds
            ),
            "namespace_of(key)": _median(lambda: namespace_of("article:42"), 20000, rounds),
            "get_many accounting, 100 keys, 1 namespace": _median(
                lambda: _record_lookups("default", keys, found), 2000, rounds
            ),
            "get_many accounting, 100 keys, 100 namespaces": _median(
                lambda: _record_lookups("default", mixed, {}), 500, rounds
            ),
        }
        metrics.set_enabled(False)
        timings["record() with metrics disabled"] = _median(
            lambda: record("hit", "default", "a"), 20000, rounds
        )
        aggregator.reset()
        cache.delete_many(keys)

    get, get_many = timings["hit: cache.get 1 KB"], timings["hit: cache.get_many 100 x 1 KB"]
    per_get = timings["record() on a known counter"] + timings["namespace_of(key)"]
    print(f"median client CPU time of {args.rounds} rounds (embedded Redis on loopback)")
    for name, seconds in timings.items():
        print(f"{name:<48} {seconds * 1e6:9.2f} us")
    print(f"\nmetrics per get (record + namespace_of): {per_get / get:.2%} of a 1 KB hit")
    accounting = timings["get_many accounting, 100 keys, 1 namespace"]
    print(f"metrics per get_many of 100 (one namespace): {accounting / get_many:.2%} of the hit")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
