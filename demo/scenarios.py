"""The two scenarios beyond plain load: a stampede on an expired key, and a Redis outage.

Stampede: ``requesters`` clients connect, wait at a barrier, and ask at once for a slow report
whose cache entry has just been expired; the ``X-Demo-Computed`` headers say how many of them ran
the computation. A bare get-then-set recomputes once per requester that missed; ``@cached`` with
``stampede="lock"`` should recompute exactly once per expiry.

Outage: clients keep loading cached views while the embedded Redis is killed and, a few seconds
later, restarted on the same port. Every answer should still be a 200 (reads fail open), and hits
should come back after the restart. A Redis the demo did not start is never stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cachewise.embedded import EmbeddedRedis
from demo.load import Client, LoadResult, Sample, run_for

__all__ = ["OutageResult", "StampedeResult", "burst", "outage", "stampede"]


@dataclass
class StampedeResult:
    """Computes per expiry and the requesters' latencies, for the naive and the cached pattern."""

    requesters: int
    compute_seconds: float
    naive_computes: list[int] = field(default_factory=list)
    cached_computes: list[int] = field(default_factory=list)
    naive: LoadResult = field(default_factory=LoadResult)
    cached: LoadResult = field(default_factory=LoadResult)

    @staticmethod
    def per_expiry(computes: list[int]) -> float:
        """Average recomputes per expiry."""
        return sum(computes) / len(computes) if computes else 0.0


def burst(base_url: str, path: str, requesters: int) -> list[Sample]:
    """Send one request from each of ``requesters`` connected clients at the same instant."""
    clients = [Client(base_url) for _ in range(requesters)]
    barrier = threading.Barrier(requesters, timeout=30)
    samples: list[Sample] = []
    lock = threading.Lock()
    origin = time.perf_counter()

    def fire(client: Client) -> None:
        client.connect()
        barrier.wait()
        sample = client.request("GET", path, origin)
        with lock:
            samples.append(sample)

    threads = [threading.Thread(target=fire, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()
    return samples


def _round(base_url: str, path: str, expire: Callable[[], None], requesters: int, into: LoadResult) -> int:
    expire()
    samples = burst(base_url, path, requesters)
    into.samples.extend(samples)
    into.wall_seconds += max((sample.started + sample.seconds for sample in samples), default=0.0)
    return sum(sample.computed for sample in samples)


def stampede(
    base_url: str,
    *,
    naive_path: str,
    cached_path: str | None,
    expire_naive: Callable[[], None],
    expire_cached: Callable[[], None] | None,
    compute_seconds: float,
    requesters: int = 16,
    rounds: int = 3,
    on_round: Callable[[], None] | None = None,
) -> StampedeResult:
    """Run ``rounds`` expiries of each pattern; count recomputes per expiry."""
    result = StampedeResult(requesters=requesters, compute_seconds=compute_seconds)
    for _ in range(rounds):
        result.naive_computes.append(_round(base_url, naive_path, expire_naive, requesters, result.naive))
        if on_round is not None:
            on_round()
        if cached_path is not None and expire_cached is not None:
            computes = _round(base_url, cached_path, expire_cached, requesters, result.cached)
            result.cached_computes.append(computes)
        if on_round is not None:
            on_round()
    return result


@dataclass
class OutageResult:
    """The samples of the outage run and when Redis went down and came back (seconds)."""

    load: LoadResult
    down_at: float
    up_at: float

    def phase(self, name: str) -> list[Sample]:
        """Samples started ``before`` the kill, ``during`` the outage, or ``after`` the restart."""
        bounds = {
            "before": (0.0, self.down_at),
            "during": (self.down_at, self.up_at),
            "after": (self.up_at, 1e9),
        }
        low, high = bounds[name]
        return [sample for sample in self.load.samples if low <= sample.started < high]

    @property
    def recovered_after(self) -> float | None:
        """Seconds from the restart to the first hit after it; None if no hit came back."""
        hits = [sample.started for sample in self.phase("after") if sample.hit]
        return min(hits) - self.up_at if hits else None


def outage(
    base_url: str,
    paths: Sequence[str],
    redis: EmbeddedRedis,
    *,
    before: float,
    during: float,
    after: float,
    max_recovery: float = 20.0,
    concurrency: int = 4,
    on_sample: Callable[[Sample], None] | None = None,
) -> OutageResult:
    """Load ``paths`` while ``redis`` is killed after ``before`` s and restarted ``during`` s later.

    After the restart, wait (up to ``max_recovery`` s) for the first hit, then load ``after`` s
    more, so the report shows the recovered steady state whatever the breaker's cool-down is.
    """
    stop = threading.Event()
    recovered = threading.Event()
    origin = time.perf_counter()
    holder: list[LoadResult] = []
    restarted_at = [float("inf")]

    def watch(sample: Sample) -> None:
        if sample.hit and sample.started > restarted_at[0]:
            recovered.set()
        if on_sample is not None:
            on_sample(sample)

    def load() -> None:
        holder.append(run_for(base_url, paths, stop, concurrency=concurrency, origin=origin, on_sample=watch))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(before)
        down_at = time.perf_counter() - origin
        redis.kill()
        time.sleep(during)
        redis.restart()
        up_at = restarted_at[0] = time.perf_counter() - origin
        recovered.wait(max_recovery)
        time.sleep(after)
    finally:
        stop.set()
        thread.join(timeout=60)
        if not redis.running:
            redis.restart()
    return OutageResult(load=holder[0] if holder else LoadResult(), down_at=down_at, up_at=up_at)
