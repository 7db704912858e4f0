"""Cache stampede: what a herd of requesters costs when a hot key expires.

Burst scenario (N requesters over 4 processes, one expired key, compute takes 200 ms), per
variant: Django's ``cache.get_or_set``, the playbook's lock recipe that polls every 100 ms, and
cachewise ``get_or_compute`` with ``stampede="lock"``, ``"xfetch"`` (a cold miss: it locks) and
``stale_ttl`` (the expired value is still there). Reports recomputes per expiry, requester
latency p50/p99/max and Redis commands per expiry (``INFO commandstats`` deltas).

Steady scenario (4 processes x 5 threads requesting in a loop with 20 ms think time, TTL 2 s,
compute 200 ms, 7 s: three expiries): cachewise lock, xfetch and stale_ttl; reports recomputes per
expiry and how many requests were blocked (slower than 50 ms) per expiry.

    .venv/bin/python bench/stampede.py [--rounds 3] [--sizes 50,200] [--steady-seconds 7] [--steady-ttl 2]

Uses ``REDIS_URL`` when set, else starts a private EmbeddedRedis. Prints peak RSS at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import peak_rss_mb, redis_url

COMPUTE_SECONDS = 0.2
PROCESSES = 4
FORK = multiprocessing.get_context("fork")


def _setup_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        CACHEWISE_METRICS_FLUSH_INTERVAL=0,  # no periodic metrics writes polluting the command counts
        CACHES={
            "default": {
                "BACKEND": "cachewise.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench-cw",
                "OPTIONS": {"max_connections": 200},
            },
            "django": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench-dj",
            },
        },
    )
    django.setup()


def _compute(counter: Any) -> Callable[[], str]:
    def compute() -> str:
        with counter.get_lock():
            counter.value += 1
        time.sleep(COMPUTE_SECONDS)
        return "fresh" * 100

    return compute


def _polling_recipe(key: str, compute: Callable[[], str]) -> Any:
    """The playbook's lock recipe: add() a lock, others poll every 100 ms."""
    from django.core.cache import caches

    cache = caches["django"]
    value = cache.get(key)
    if value is not None:
        return value
    if cache.add(f"{key}:lock", "1", timeout=30):
        try:
            value = compute()
            cache.set(key, value, 60)
            return value
        finally:
            cache.delete(f"{key}:lock")
    for _ in range(50):
        time.sleep(0.1)
        value = cache.get(key)
        if value is not None:
            return value
    return compute()


def _request(variant: str, key: str, compute: Callable[[], str]) -> Any:
    from django.core.cache import caches

    from cachewise import get_or_compute

    if variant == "django get_or_set":
        return caches["django"].get_or_set(key, compute, 60)
    if variant == "polling lock (100 ms)":
        return _polling_recipe(key, compute)
    mode = {"cachewise xfetch": "xfetch"}.get(variant, "lock")
    stale = 30 if variant == "cachewise stale_ttl" else 0
    return get_or_compute(key, compute, 60, stampede=mode, stale_ttl=stale)


def _burst_child(variant: str, key: str, threads: int, starts: list[float], counter: Any, out: Any) -> None:
    compute = _compute(counter)
    latencies: list[float] = []
    lock = threading.Lock()

    def requester() -> None:
        # Warm up together, so each process' pool opens the connections a burst needs.
        time.sleep(max(0.0, starts[0] - 1.0 - time.time()))
        _request(variant, f"{key}:warm", lambda: "warm")
        for start in starts:
            time.sleep(max(0.0, start - time.time()))
            began = time.perf_counter()
            _request(variant, key, compute)
            with lock:
                latencies.append(time.perf_counter() - began)

    pool = [threading.Thread(target=requester) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(latencies)


def _commands(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(data["calls"]) for name, data in stats.items() if name != "cmdstat_info")


def _prepare(variant: str, key: str, start: float) -> None:
    """Make the key expired (or, for stale_ttl, expired but still stored) before ``start``."""
    from django.core.cache import caches

    from cachewise.store.adapter import Entry
    from cachewise.store.choice import get_store

    caches["django"].delete(key)
    store = get_store()
    store.invalidate(key)
    expiry = {"cachewise stale_ttl": start - 0.1, "cachewise hit (baseline)": start + 60}.get(variant)
    if expiry is not None:
        fence = store.read(key).fence
        store.fill(key, Entry("old", start - 60, expiry, COMPUTE_SECONDS), 60, token=None, fence=fence)


def burst(variant: str, size: int, rounds: int, client: Any) -> dict[str, float]:
    """Run ``rounds`` synchronized bursts of ``size`` requesters; return the figures."""
    key = f"burst:v1:{size}:{variant.replace(' ', '_').replace('(', '').replace(')', '')}"
    gap = 1.5
    t0 = time.time() + 2.5  # fork and warm up first
    starts = [t0 + r * gap for r in range(rounds)]
    counter, out = FORK.Value("i", 0), FORK.Queue()
    per_child = [size // PROCESSES + (1 if i < size % PROCESSES else 0) for i in range(PROCESSES)]
    children = [
        FORK.Process(target=_burst_child, args=(variant, key, n, starts, counter, out)) for n in per_child
    ]
    for child in children:
        child.start()
    commands = []
    for start in starts:
        time.sleep(max(0.0, start - 0.4 - time.time()))
        _prepare(variant, key, start)
        time.sleep(max(0.0, start - 0.2 - time.time()))
        before = _commands(client)
        time.sleep(max(0.0, start + gap - 0.3 - time.time()))
        commands.append(_commands(client) - before)
    latencies = sorted(lat for _ in children for lat in out.get(timeout=120))
    for child in children:
        child.join()
    return {
        "recomputes": counter.value / rounds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max": latencies[-1] * 1000,
        "commands": statistics.median(commands),
        "coordination": statistics.median(commands) - size,
    }


def _steady_child(
    variant: str, key: str, threads: int, until: float, ttl: float, counter: Any, out: Any
) -> None:
    compute = _compute(counter)
    latencies: list[float] = []
    lock = threading.Lock()
    mode = {"cachewise xfetch": "xfetch"}.get(variant, "lock")
    stale = 30 if variant == "cachewise stale_ttl" else 0

    def requester() -> None:
        from cachewise import get_or_compute

        while time.time() < until:
            began = time.perf_counter()
            get_or_compute(key, compute, ttl, stampede=mode, stale_ttl=stale)
            with lock:
                latencies.append(time.perf_counter() - began)
            time.sleep(0.02)

    pool = [threading.Thread(target=requester) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(latencies)


def steady(variant: str, seconds: float, ttl: float) -> dict[str, float]:
    """Requests in a loop across several expiries of ``ttl``."""
    from cachewise import get_or_compute

    key = f"steady:v1:{variant.replace(' ', '_')}"
    counter, out = FORK.Value("i", 0), FORK.Queue()
    stale = 30 if variant == "cachewise stale_ttl" else 0
    mode = "xfetch" if "xfetch" in variant else "lock"
    get_or_compute(key, _compute(counter), ttl, stampede=mode, stale_ttl=stale)  # first fill
    until = time.time() + seconds
    args = (variant, key, 5, until, ttl, counter, out)
    children = [FORK.Process(target=_steady_child, args=args) for _ in range(PROCESSES)]
    for child in children:
        child.start()
    latencies = sorted(lat for _ in children for lat in out.get(timeout=120))
    for child in children:
        child.join()
    expiries = max(1, int(seconds / ttl))  # expiries inside the run (the first fill is at its start)
    blocked = sum(1 for lat in latencies if lat > 0.05)
    return {
        "requests": len(latencies),
        "recomputes/expiry": (counter.value - 1) / expiries,
        "blocked/expiry": blocked / expiries,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


BURST_VARIANTS = (
    "cachewise hit (baseline)",
    "django get_or_set",
    "polling lock (100 ms)",
    "cachewise lock",
    "cachewise xfetch",
    "cachewise stale_ttl",
)
STEADY_VARIANTS = ("cachewise lock", "cachewise xfetch", "cachewise stale_ttl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--steady-seconds", type=float, default=7.0)
    parser.add_argument("--steady-ttl", type=float, default=2.0)
    args = parser.parse_args(argv)

    import redis

    with redis_url() as url:
        _setup_django(url)
        client = redis.Redis.from_url(url)
        print(
            f"burst: {PROCESSES} processes, compute {COMPUTE_SECONDS * 1000:.0f} ms, {args.rounds} expiries"
        )
        print("(coord/exp: Redis commands per expiry beyond one read per requester)")
        head = ("variant", "N", "recomp/exp", "p50 ms", "p99 ms", "max ms", "cmds/exp", "coord/exp")
        print("{:26} {:>4} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}".format(*head))
        for size in (int(s) for s in args.sizes.split(",")):
            for variant in BURST_VARIANTS:
                r = burst(variant, size, args.rounds, client)
                row = (r["recomputes"], r["p50"], r["p99"], r["max"], r["commands"], r["coordination"])
                print(
                    "{:26} {:>4} {:>10.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>9.0f} {:>9.0f}".format(
                        variant, size, *row
                    )
                )
        ttl, seconds = args.steady_ttl, args.steady_seconds
        print(f"\nsteady: {PROCESSES} processes x 5 threads, 20 ms think time, TTL {ttl:g} s, {seconds:g} s")
        print("(blocked: requests slower than 50 ms)")
        head = ("variant", "requests", "recomp/exp", "blocked/exp", "p50 ms", "p99 ms")
        print("{:26} {:>8} {:>10} {:>11} {:>8} {:>8}".format(*head))
        for variant in STEADY_VARIANTS:
            r = steady(variant, seconds, ttl)
            row = (r["requests"], r["recomputes/expiry"], r["blocked/expiry"], r["p50"], r["p99"])
            print("{:26} {:>8.0f} {:>10.2f} {:>11.2f} {:>8.2f} {:>8.1f}".format(variant, *row))
        print(f"\npeak RSS (parent): {peak_rss_mb():.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
