"""The load runner: real HTTP requests from a few client threads, one sample per request.

Each sample keeps the status, the latency, and the two headers the demo's middleware adds
(``X-Demo-Queries``, ``X-Demo-Computed``), so every figure in the report is computed from what
the server actually did for that request. A connection error is a failed request (status 0).
"""

from __future__ import annotations

import contextlib
import http.client
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Client", "LoadResult", "Sample", "percentile", "run_for", "run_requests"]


@dataclass(frozen=True)
class Sample:
    """One request: when it started (seconds into the run), how it ended, what the server did."""

    started: float
    seconds: float
    status: int
    queries: int
    computed: int

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def hit(self) -> bool:
        """Answered without running any cached region's code (meaningful for cached views)."""
        return self.ok and self.computed == 0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass
class LoadResult:
    """The samples of one load run and the figures the report shows."""

    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> int:
        return sum(1 for sample in self.samples if not sample.ok)

    @property
    def failure_statuses(self) -> dict[int, int]:
        """How many requests failed with each status (0: no HTTP answer at all)."""
        counts: dict[int, int] = {}
        for sample in self.samples:
            if not sample.ok:
                counts[sample.status] = counts.get(sample.status, 0) + 1
        return counts

    @property
    def rps(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0

    def latency(self, fraction: float) -> float:
        """Latency percentile in milliseconds."""
        return 1000 * percentile([sample.seconds for sample in self.samples], fraction)

    @property
    def queries_per_request(self) -> float:
        return sum(sample.queries for sample in self.samples) / self.requests if self.requests else 0.0

    @property
    def hit_rate(self) -> float:
        return sum(1 for sample in self.samples if sample.hit) / self.requests if self.requests else 0.0


class Client:
    """A keep-alive HTTP connection to the demo server; reconnects after an error."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the demo only loads loopback servers, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        """Open the connection now (so a burst of requests starts together)."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.connection.connect()

    def request(self, method: str, path: str, origin: float) -> Sample:
        """Send one request; return its sample (status 0 on a connection error)."""
        started = time.perf_counter()
        try:
            self.connect()
            assert self.connection is not None
            self.connection.request(method, path, body=b"" if method == "POST" else None)
            response = self.connection.getresponse()
            response.read()
            status = response.status
            queries = int(response.getheader("X-Demo-Queries") or 0)
            computed = int(response.getheader("X-Demo-Computed") or 0)
        except (OSError, http.client.HTTPException):
            self.close()
            status, queries, computed = 0, 0, 0
        return Sample(started - origin, time.perf_counter() - started, status, queries, computed)

    def close(self) -> None:
        """Close the connection (ignored if already closed)."""
        if self.connection is not None:
            with contextlib.suppress(OSError):
                self.connection.close()
            self.connection = None


def _run_threads(target: Callable[[Client], None], base_url: str, concurrency: int) -> None:
    clients = [Client(base_url) for _ in range(concurrency)]
    threads = [threading.Thread(target=target, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()


def run_requests(
    base_url: str,
    paths: Sequence[str],
    total: int,
    *,
    method: str = "GET",
    concurrency: int = 8,
    on_sample: Callable[[Sample], None] | None = None,
) -> LoadResult:
    """Send ``total`` requests cycling through ``paths`` from ``concurrency`` threads."""
    result = LoadResult()
    lock = threading.Lock()
    next_index = iter(range(total))
    origin = time.perf_counter()

    def worker(client: Client) -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            sample = client.request(method, paths[index % len(paths)], origin)
            with lock:
                result.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)

    _run_threads(worker, base_url, concurrency)
    result.wall_seconds = time.perf_counter() - origin
    return result


def run_for(
    base_url: str,
    paths: Sequence[str],
    stop: threading.Event,
    *,
    concurrency: int = 4,
    origin: float | None = None,
    on_sample: Callable[[Sample], None] | None = None,
) -> LoadResult:
    """Send requests cycling through ``paths`` until ``stop`` is set (the outage scenario).

    Sample times count from ``origin`` (a ``time.perf_counter()`` value; default: now), so the
    caller can line them up with what it did meanwhile.
    """
    result = LoadResult()
    lock = threading.Lock()
    origin = time.perf_counter() if origin is None else origin
    offsets = iter(range(concurrency))

    def worker(client: Client) -> None:
        with lock:
            index = next(offsets, 0)
        while not stop.is_set():
            sample = client.request("GET", paths[index % len(paths)], origin)
            index += 1
            with lock:
                result.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)

    _run_threads(worker, base_url, concurrency)
    result.wall_seconds = time.perf_counter() - origin
    return result
