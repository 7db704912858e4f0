"""Near cache across processes: invalidation latency and peak RSS at the byte budget.

Latency: process A (this one) sets a key that process B holds in its near cache; B does nothing
but watch its near cache (its reader thread alone applies the message; no read drains it), and
reports the moment the copy is gone. Latency = that moment - the moment A's ``set()`` returned
(``time.monotonic`` is one clock for every process on Linux; negative when the copy was gone
before A's reply was even parsed). Prints p50, p99 and max over ``--trials``.

Peak RSS: B fills its near cache to ``--budget-mb`` with 1 KB values (reading each key twice),
against a twin process reading the same keys without a near cache.

    .venv/bin/python bench/near_invalidation.py [--trials 500] [--budget-mb 32]

Uses ``REDIS_URL`` when set, else starts a private EmbeddedRedis.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from typing import Any

from _common import peak_rss_mb, redis_url

VALUE = {"title": "x" * 900, "id": 1}


def _cache(url: str, near: Any) -> Any:
    import django
    from django.conf import settings

    options = {"near_cache": near} if near else {}
    entry = {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": "nb"}
    settings.configure(SECRET_KEY="bench", USE_TZ=True, CACHES={"default": {**entry, "OPTIONS": options}})
    django.setup()
    from django.core.cache import caches

    cache = caches["default"]
    if near:
        assert cache.near.tracker.wait_ready(10)
    return cache


def watcher(url: str, conn: Any) -> None:
    """B: hold "hot", then report when each invalidation took it away."""
    cache = _cache(url, True)
    near = cache.near
    key = cache.make_and_validate_key("hot")
    conn.send("ready")
    while conn.recv() == "arm":
        cache.get("hot")
        cache.get("hot")
        conn.send("armed" if key in near._entries else "not held")
        while key in near._entries:  # no read: only the reader thread can drop it
            time.sleep(0.00005)
        conn.send(time.monotonic())


def filler(url: str, budget_mb: int, near: bool, conn: Any) -> None:
    """B (or its twin without a near cache): read 1 KB keys until the budget is spent."""
    cache = _cache(url, {"max_bytes": budget_mb * 1024 * 1024} if near else None)
    count = budget_mb * 1024 * 1024 // 1000 + 2000
    for start in range(0, count, 500):
        names = [f"fill{i}" for i in range(start, start + 500)]
        for name in names:
            cache.get(name)
            cache.get(name)
    held = cache.near.bytes if near else 0
    conn.send((peak_rss_mb(), held))


def latency(url: str, trials: int) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=watcher, args=(url, there))
    process.start()
    assert here.recv() == "ready"
    cache = _cache(url, None)
    cache.set("hot", 0, None)
    samples = []
    for i in range(trials):
        here.send("arm")
        assert here.recv() == "armed"
        cache.set("hot", i, None)
        returned = time.monotonic()
        samples.append((here.recv() - returned) * 1e6)
    here.send("stop")
    process.join(10)
    return samples


def rss(url: str, budget_mb: int) -> dict[bool, tuple[float, int]]:
    from django.core.cache import caches  # configured by latency(): same prefix and secret

    count = budget_mb * 1024 * 1024 // 1000 + 2000
    for start in range(0, count, 1000):
        caches["default"].set_many({f"fill{i}": VALUE for i in range(start, start + 1000)}, None)
    ctx = multiprocessing.get_context("spawn")
    out = {}
    for near in (False, True):
        here, there = ctx.Pipe()
        process = ctx.Process(target=filler, args=(url, budget_mb, near, there))
        process.start()
        out[near] = here.recv()
        process.join(30)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--budget-mb", type=int, default=32)
    args = parser.parse_args(argv)
    with redis_url() as url:
        samples = sorted(latency(url, args.trials))
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(
            f"invalidation latency over {len(samples)} trials (write returned -> other process's copy gone):"
        )
        print(f"  p50 {statistics.median(samples):.0f} us, p99 {p99:.0f} us, max {samples[-1]:.0f} us")
        sizes = rss(url, args.budget_mb)
        for near, (peak, held) in sizes.items():
            label = f"near cache, budget {args.budget_mb} MB" if near else "no near cache"
            print(f"  peak RSS {label}: {peak:.1f} MB (near bytes held {held / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
