"""Client-side instructions per 1 KB cache hit (valgrind callgrind): signing on vs off vs raw redis-py.

Wall times on a shared, loaded host move 20% between runs; instruction counts do not. Each
variant runs in its own process under ``valgrind --tool=callgrind`` doing N and then 3N hits of a
~1 KB pickled value; the difference divided by 2N is the instructions of one hit, without the
start-up (interpreter, Django, connection). Redis runs outside valgrind (a private EmbeddedRedis
started here), so the counts are the client's work only: what cachewise adds on top of a
``GET`` + ``pickle.loads``, not the round trip.

    .venv/bin/python bench/hit_path_callgrind.py [--hits 400]

Needs ``valgrind`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
from typing import Any

SMALL = {"title": "x" * 900, "id": 1, "tags": ["a", "b"]}  # ~1 KB pickled, as in hit_path.py
VARIANTS = ("raw redis-py", "cachewise unsigned", "cachewise signed")


def _reader(variant: str, url: str) -> Any:
    if variant == "raw redis-py":
        import redis

        client = redis.Redis.from_url(url)
        client.set("raw:small", pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL))
        loads = pickle.loads
        return lambda: loads(client.get("raw:small"))  # type: ignore[arg-type]
    import django
    from django.conf import settings

    settings.configure(SECRET_KEY="bench-callgrind", USE_TZ=True, CACHES={})
    django.setup()
    from cachewise.backends.redis import RedisCache

    options = {"sign": variant == "cachewise signed"}
    cache = RedisCache(url, {"KEY_PREFIX": variant.replace(" ", "-"), "OPTIONS": options})
    cache.set("small", SMALL, None)
    return lambda: cache.get("small")


def child(variant: str, url: str, hits: int) -> None:
    read = _reader(variant, url)
    assert read() == SMALL
    for _ in range(hits):
        read()


def _instructions(variant: str, url: str, hits: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        variant,
        "--url",
        url,
        "--hits",
        str(hits),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind summary in:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=400)
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.hits)
        return 0
    sys.path.insert(0, os.path.dirname(__file__))
    from _common import redis_url

    per_hit: dict[str, float] = {}
    with redis_url() as url:
        for variant in VARIANTS:
            low, high = _instructions(variant, url, args.hits), _instructions(variant, url, 3 * args.hits)
            per_hit[variant] = (high - low) / (2 * args.hits)
    base = per_hit[VARIANTS[0]]
    print(f"client instructions per 1 KB hit ({args.hits} and {3 * args.hits} hits per process)")
    for variant, count in per_hit.items():
        print(f"{variant:<22}{count:>12,.0f}  ({count / base:.2f}x raw)")
    signing = per_hit["cachewise signed"] - per_hit["cachewise unsigned"]
    print(f"signing adds {signing:,.0f} instructions per hit ({signing / base:.1%} of raw's client work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
