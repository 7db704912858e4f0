"""Counter memory per pending id and the cost of draining, at 1k ... 100k ids.

For each N, on a fresh private redis-server (or ``REDIS_URL``, flushed first: use a scratch one):

* **bytes per pending id**: ``used_memory`` grown by N pending ids of a Counter, divided by N,
  against the baseline measured in the same run: the layout of cachewise <= 0.3 (a key per id
  with a TTL plus an index set, written with the same ``SET``/``PEXPIRE``/``SADD`` commands).
* **drain**: a full ``flush`` with a no-op ``apply`` (no database: the bench measures the
  Redis side), its total time per id (linear if flat across N) and the server-side duration of
  each drain step (one script call moving up to ``batch_size`` ids) from ``SLOWLOG`` (every
  command logged: ``slowlog-log-slower-than 0``): median, p99 and max. On a loaded machine the
  max includes the server being preempted; the median is the step's cost.

    .venv/bin/python bench/counter_memory.py [--sizes 1000,10000,100000] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import peak_rss_mb, redis_url


def _setup_django(url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench",
        USE_TZ=True,
        INSTALLED_APPS=[],  # no database: flush() drains without batch records
        CACHES={"default": {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": url}},
    )
    django.setup()


def _used(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def baseline_bytes(client: Any, n: int) -> float:
    """The old layout: one string key per id with a TTL, and an index set of ids."""
    client.flushdb()
    before = _used(client)
    for start in range(0, n, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            pipe.set(f":1:{{bench:old}}:{i}", 1)
            pipe.pexpire(f":1:{{bench:old}}:{i}", 86_400_000)
            pipe.sadd(":1:{bench:old}:~ids", str(i))
        pipe.execute()
    return (_used(client) - before) / n


def counter_bytes(client: Any, n: int) -> float:
    from cachewise import Counter

    client.flushdb()
    counter = Counter("bench:views")
    counter.incr(0)  # load the scripts before measuring
    counter.flush(lambda pk, delta: None)
    before = _used(client)
    for start in range(0, n, 1000):
        counter.incr_many(dict.fromkeys(range(start, min(n, start + 1000)), 1))
    return (_used(client) - before) / n


def drain(client: Any, n: int, batch_size: int) -> tuple[float, list[float], int]:
    """(flush us per id, durations of the drain steps in ms, ids applied), N ids pending."""
    from cachewise import Counter
    from cachewise.store.scripts.counts import COUNTER_DRAIN_BATCH

    sha = client.script_load(COUNTER_DRAIN_BATCH.source).encode()
    counter = Counter("bench:views", batch_size=batch_size)
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1_000_000)
    client.slowlog_reset()
    started = time.perf_counter()
    applied = counter.flush(lambda pk, delta: None)
    elapsed = time.perf_counter() - started
    entries = client.slowlog_get(1_000_000)
    steps = [e["duration"] / 1000 for e in entries if e["command"].startswith(b"EVALSHA " + sha)]
    client.config_set("slowlog-log-slower-than", 10_000)
    return elapsed / n * 1e6, sorted(steps), len(applied)


def main(argv: list[str] | None = None) -> int:
    import logging

    import redis

    logging.getLogger("cachewise.counters").setLevel(logging.ERROR)  # the no-app warning
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    with redis_url() as url:
        _setup_django(url)
        client = redis.Redis.from_url(url)
        print(f"counter memory and drain, batch_size={args.batch_size}")
        print(
            f"{'ids':>8} {'B/id old':>9} {'B/id now':>9} {'ratio':>6} {'flush us/id':>12} "
            f"{'steps':>6} {'step ms p50':>12} {'p99':>7} {'max':>7}"
        )
        for n in (int(size) for size in args.sizes.split(",")):
            old = baseline_bytes(client, n)
            now = counter_bytes(client, n)
            per_id, steps, applied = drain(client, n, args.batch_size)
            assert applied == n, f"drained {applied} of {n}"
            p50, p99 = steps[len(steps) // 2], steps[int(len(steps) * 0.99)]
            print(
                f"{n:>8} {old:>9.1f} {now:>9.1f} {now / old:>5.2f}x {per_id:>12.1f} "
                f"{len(steps):>6} {p50:>12.2f} {p99:>7.2f} {steps[-1]:>7.2f}"
            )
        print(f"\npeak RSS: {peak_rss_mb():.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
