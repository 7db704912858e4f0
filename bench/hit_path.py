"""Cache-hit cost: cachewise vs raw redis-py (GET + unpickle), Django's RedisCache and django-redis.

``cachewise`` runs with its defaults, so values are signed (HMAC-SHA256 checked on every hit);
``cachewise-unsigned`` is the same backend with ``OPTIONS["sign"] = False``, so the signing cost
is the ratio of the two in the same run. ``cachewise-near`` reads through the near cache
(``OPTIONS["near_cache"] = True``, docs/near-cache.md): hits from process memory.

Measures a hit of a ~1 KB and a ~50 KB value, and ``get_many`` of 100 keys (~1 KB each), on the
same Redis, in interleaved rounds (every variant runs once per round, in a shuffled order, so
drift on a shared machine hits all of them alike). Prints the median per operation and the ratio
to raw redis-py, plus peak RSS.

    .venv/bin/python bench/hit_path.py [--rounds 15] [--iterations 200] [--only cachewise,raw]

Uses ``REDIS_URL`` when set, else starts a private EmbeddedRedis. To add a variant (for example
cachewise with metrics on and off), write a function returning a :class:`Variant` and add it to
``VARIANTS``.
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from _common import peak_rss_mb, redis_url

SMALL = {"title": "x" * 900, "id": 1, "tags": ["a", "b"]}  # ~1 KB pickled
LARGE = {"rows": [{"id": i, "body": f"{i:05d}" + "y" * 475} for i in range(100)]}  # ~50 KB pickled
MANY = 100
OPERATIONS = ("get 1KB", "get 50KB", f"get_many {MANY}")
BASELINE = "raw redis-py"


@dataclass
class Variant:
    """One way of reading the cache: a callable per operation in OPERATIONS."""

    name: str
    ops: dict[str, Callable[[], Any]] = field(default_factory=dict)
    metrics: bool = True  # cachewise's in-process counters on while this variant runs


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="bench", USE_TZ=True, CACHES={})
        django.setup()


def _keys(prefix: str) -> list[str]:
    return [f"{prefix}many{i}" for i in range(MANY)]


def cache_variant(name: str, backend: str, location: str, options: dict[str, Any] | None = None) -> Variant:
    """A Django cache backend under test: fill its keys, then read them back."""
    from django.utils.module_loading import import_string

    cache = import_string(backend)(location, {"KEY_PREFIX": name.replace(" ", "-"), "OPTIONS": options or {}})
    near = getattr(cache, "near", None)
    if near is not None:  # OPTIONS["near_cache"]: serve once tracking is in force
        assert near.tracker.wait_ready(10)
    cache.set("small", SMALL, None)
    cache.set("large", LARGE, None)
    keys = _keys("")
    cache.set_many(dict.fromkeys(keys, SMALL), None)
    assert cache.get("small") == SMALL
    assert len(cache.get_many(keys)) == MANY
    return Variant(
        name,
        {
            OPERATIONS[0]: lambda: cache.get("small"),
            OPERATIONS[1]: lambda: cache.get("large"),
            OPERATIONS[2]: lambda: cache.get_many(keys),
        },
    )


def raw_variant(url: str) -> Variant:
    """The floor: redis-py GET/MGET + pickle.loads, one reused client, no key making."""
    import redis

    client = redis.Redis.from_url(url)
    client.set("raw:small", pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL))
    client.set("raw:large", pickle.dumps(LARGE, pickle.HIGHEST_PROTOCOL))
    keys = _keys("raw:")
    client.mset(dict.fromkeys(keys, pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL)))
    loads = pickle.loads

    def get_many() -> dict[str, Any]:
        return {k: loads(v) for k, v in zip(keys, client.mget(keys), strict=True) if v is not None}

    return Variant(
        BASELINE,
        {
            OPERATIONS[0]: lambda: loads(client.get("raw:small")),  # type: ignore[arg-type]
            OPERATIONS[1]: lambda: loads(client.get("raw:large")),  # type: ignore[arg-type]
            OPERATIONS[2]: get_many,
        },
    )


VARIANTS: dict[str, Callable[[str], Variant]] = {
    "raw": raw_variant,
    "cachewise": lambda url: cache_variant("cachewise", "cachewise.backends.redis.RedisCache", url),
    "django": lambda url: cache_variant(
        "django RedisCache", "django.core.cache.backends.redis.RedisCache", url
    ),
    "django-redis": lambda url: cache_variant("django-redis", "django_redis.cache.RedisCache", url),
    "cachewise-unsigned": lambda url: cache_variant(
        "cachewise unsigned", "cachewise.backends.redis.RedisCache", url, {"sign": False}
    ),
    "cachewise-near": lambda url: cache_variant(
        "cachewise near", "cachewise.backends.redis.RedisCache", url, {"near_cache": True}
    ),
    "cachewise-nometrics": lambda url: replace(
        cache_variant("cachewise metrics off", "cachewise.backends.redis.RedisCache", url), metrics=False
    ),
}


Samples = dict[tuple[str, str, str], list[float]]


def measure(variants: list[Variant], rounds: int, iterations: int) -> Samples:
    """Per (variant, operation, clock): the mean microseconds per call in each round.

    Two clocks: ``wall`` (what a request waits, server time included) and ``cpu`` (this
    process's CPU time: the client-side cost, much less disturbed by other load on the host).
    """
    samples: Samples = {}
    for _ in range(rounds):
        order = variants[:]
        random.shuffle(order)
        for operation in OPERATIONS:
            for variant in order:
                fn = variant.ops[operation]
                _set_metrics(variant.metrics)
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(iterations):
                    fn()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                samples.setdefault((variant.name, operation, "wall"), []).append(wall / iterations * 1e6)
                samples.setdefault((variant.name, operation, "cpu"), []).append(cpu / iterations * 1e6)
    return samples


def _set_metrics(enabled: bool) -> None:
    from cachewise.monitoring.metrics import metrics

    metrics.set_enabled(enabled)


def _metrics_overhead(samples: Samples) -> None:
    """cachewise with metrics on vs off, same run: the cost of counting a hit."""
    on, off = "cachewise", "cachewise metrics off"
    if (on, OPERATIONS[0], "wall") not in samples or (off, OPERATIONS[0], "wall") not in samples:
        return
    print("\nmetrics overhead (cachewise / cachewise metrics off, medians)")
    for clock in ("wall", "cpu"):
        ratios = [
            statistics.median(samples[(on, op, clock)]) / statistics.median(samples[(off, op, clock)])
            for op in OPERATIONS
        ]
        print(f"{clock:<20}" + "".join(f"{ratio:>19.3f}x" for ratio in ratios))


def _signing_overhead(samples: Samples) -> None:
    """cachewise signed (the default) vs unsigned, same run: the cost of authenticating a hit."""
    on, off = "cachewise", "cachewise unsigned"
    if (on, OPERATIONS[0], "wall") not in samples or (off, OPERATIONS[0], "wall") not in samples:
        return
    print("\nsigning overhead (cachewise signed / cachewise unsigned, medians)")
    for clock in ("wall", "cpu"):
        ratios = [
            statistics.median(samples[(on, op, clock)]) / statistics.median(samples[(off, op, clock)])
            for op in OPERATIONS
        ]
        print(f"{clock:<20}" + "".join(f"{ratio:>19.3f}x" for ratio in ratios))


def _cell(samples: Samples, name: str, operation: str, clock: str) -> str:
    median = statistics.median(samples[(name, operation, clock)])
    base = (
        statistics.median(samples[(BASELINE, operation, clock)])
        if (BASELINE, operation, clock) in samples
        else 0
    )
    ratio = f"({median / base:.2f}x)" if base else ""
    return f"{median:8.1f} {ratio:>8}"


def report(variants: list[Variant], samples: Samples) -> None:
    for clock, title in (("wall", "wall time per call, us"), ("cpu", "client CPU time per call, us")):
        print(f"\n{title} (median of rounds; ratio to {BASELINE})")
        print(f"{'variant':<20}" + "".join(f"{op:>20}" for op in OPERATIONS))
        for variant in variants:
            cells = [_cell(samples, variant.name, op, clock) for op in OPERATIONS]
            print(f"{variant.name:<20}" + "".join(f"{cell:>20}" for cell in cells))
    _metrics_overhead(samples)
    _signing_overhead(samples)
    print(f"\npeak RSS: {peak_rss_mb():.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument(
        "--only", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}"
    )
    args = parser.parse_args(argv)
    _setup_django()
    with redis_url() as url:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        variants = [VARIANTS[name](url) for name in wanted]
        for variant in variants:  # warm up connections, scripts and caches
            for fn in variant.ops.values():
                fn()
        print(f"{args.rounds} interleaved rounds x {args.iterations} iterations, Redis at {url}")
        report(variants, measure(variants, args.rounds, args.iterations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
