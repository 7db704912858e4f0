"""What every bench script shares: where its Redis is, a throughput loop, a replica, the CPU of
processes, the peak-memory line.

Scripts run as ``python bench/<name>.py``, so this module is imported as ``_common``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


@contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set, else the URL of a private EmbeddedRedis stopped on exit."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from cachewise.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (from /proc; 0 for a pid that is gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or ``RUSAGE_CHILDREN``) in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def ops_per_second(fn: Callable[[int], Any], units: int, per_unit: int) -> float:
    """Run ``fn(0) .. fn(units - 1)``, each call doing ``per_unit`` operations: operations per second."""
    started = time.perf_counter()
    for i in range(units):
        fn(i)
    return units * per_unit / (time.perf_counter() - started)


def replicate(replica_url: str, primary_port: int) -> None:
    """Make the server at ``replica_url`` a replica of the loopback primary; return once linked."""
    import redis

    client = redis.Redis.from_url(replica_url)
    client.replicaof("127.0.0.1", primary_port)
    while client.info("replication").get("master_link_status") != "up":
        time.sleep(0.05)
    client.close()
