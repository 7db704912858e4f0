"""Totals across worker processes: each process flushes its counter deltas into Redis.

Design (see docs/monitoring.md): every process counts in memory (:mod:`.metrics`); a daemon
thread flushes the deltas every ``CACHEWISE_METRICS_FLUSH_INTERVAL`` seconds (and a scrape, the
``stats`` command, the dashboard and interpreter exit flush too) into one Redis hash per alias,
``<KEY_PREFIX>:cachewise:metrics:{<alias>}:totals``, with fields ``<event>|<namespace>``. The
namespaces a fleet reports are capped in Redis (the ``:namespaces`` set, at most
``CACHEWISE_METRICS_MAX_NAMESPACES``; later ones count as ``other``), so neither many workers nor
restarts can grow the hash or the number of Prometheus series. Readers
(``stats``, ``/metrics``, the dashboard) read that hash, so they see every worker's counts.

Exactly once: a flush is a batch numbered per process. One Lua script applies the batch and stores
its number atomically; a batch whose reply was lost is resent with the same number and the script
skips it if it was already applied. Until a batch is acknowledged no new one is drained, so a
Redis outage keeps the deltas in memory (bounded: one counter per event and namespace) and they
are sent when Redis is back. Hit, miss and stale deltas also go to a per-minute bucket hash that
expires after ``HISTORY_SECONDS``: the bounded time series behind "hit rate over time".

Aliases whose backend is not Redis cannot be aggregated: they report this process's counts.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.conf import conf
from cachewise.signals import cache_metrics_collected
from cachewise.store.raw_client import redis_client_of
from cachewise.store.scripts import run
from cachewise.store.scripts.counts import METRICS_APPLY_BATCH

from .metrics import metrics

__all__ = [
    "HISTORY_SECONDS",
    "Point",
    "Totals",
    "aggregator",
    "ensure_flusher",
    "flush",
    "flush_hooks",
    "read_series",
    "read_totals",
]

logger = logging.getLogger("cachewise.monitoring")

HISTORY_SECONDS = 3 * 3600
SEQ_TTL_SECONDS = 86400
SERIES_EVENTS = ("hit", "miss", "stale")

#: Called after every whole flush (the timer, a scrape, exit): other recorders that aggregate in
#: Redis on the same schedule (the advisor) add their flush here; each returns True when sent.
flush_hooks: list[Callable[[], bool]] = []


def _base_key(alias: str) -> str:
    prefix = getattr(caches[alias], "key_prefix", "") or ""
    # The {alias} hash tag keeps every key of one alias in one Redis Cluster slot (one script).
    return f"{prefix}:cachewise:metrics:{{{alias}}}" if prefix else f"cachewise:metrics:{{{alias}}}"


def totals_key(alias: str) -> str:
    """The Redis hash holding the totals of ``alias`` (fields ``<event>|<namespace>``)."""
    return f"{_base_key(alias)}:totals"


def namespaces_key(alias: str) -> str:
    """The Redis set of the namespaces ``alias`` reports (at most the cap; the rest are ``other``)."""
    return f"{_base_key(alias)}:namespaces"


def bucket_key(alias: str, minute: int) -> str:
    """The per-minute hash of ``alias`` for epoch minute ``minute`` (expires on its own)."""
    return f"{_base_key(alias)}:m:{minute}"


@dataclass
class Totals:
    """Aggregated ``(event, namespace) -> value`` of one alias and where they were read from."""

    alias: str
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    source: str = "redis"  # "redis" (all processes) or "process" (this process only)
    error: str | None = None


@dataclass(frozen=True)
class Point:
    """One minute of the time series: counts flushed during that minute, all namespaces."""

    minute: int
    hits: float
    misses: float
    stale: float

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


class Aggregator:
    """Flushes this process's deltas to Redis exactly once; one flush at a time."""

    def __init__(self) -> None:
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pending: dict[str, tuple[int, dict[tuple[str, str], float], int]] = {}
        self._seq = 0
        self._process_id = self._new_process_id()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._atexit = False
        self._exiting = False
        self._last_error_log = 0.0
        self._sampled: dict[str, int] = {}

    @staticmethod
    def _new_process_id() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def flush(self, alias: str | None = None) -> bool:
        """Send pending deltas of ``alias`` (default: every alias seen); True if all were sent."""
        with self._flush_lock:
            aliases = [alias] if alias else sorted(metrics.aliases() | set(self._pending))
            sent = all(self._flush_alias(name) for name in aliases)
        if alias is None:
            for hook in list(flush_hooks):  # every hook runs, even after one failed
                sent = hook() and sent
        return sent

    def _flush_alias(self, alias: str) -> bool:
        if alias not in settings.CACHES:  # removed from settings (tests, reconfiguration)
            self._pending.pop(alias, None)
            _announce(alias, metrics.drain(alias))
            return True
        try:
            client = redis_client_of(caches[alias])
        except (InvalidCacheBackendError, ImproperlyConfigured) as exc:  # its backend cannot be built
            self._log_failure(alias, exc)
            return False
        if client is None:  # not Redis: readers use this process's counts; sinks get the deltas
            _announce(alias, metrics.drain(alias))
            return True
        try:
            # Resend the unacknowledged batch first, with its number: the script skips it if the
            # earlier attempt was applied and only its reply was lost.
            if alias in self._pending:
                self._send(client, alias, *self._pending[alias])
                del self._pending[alias]
            deltas = metrics.drain(alias)
            _announce(alias, deltas)
            if deltas:
                self._seq += 1
                self._pending[alias] = (self._seq, deltas, int(time.time() // 60))
                self._send(client, alias, *self._pending[alias])
                del self._pending[alias]
            self._sample_evictions(client, alias)
        except Exception as exc:  # noqa: BLE001 - a background flush must not die: Redis down or failing (a server
            # error too: the batch is kept and retried, and the log says what failed)
            self._log_failure(alias, exc)
            return False
        return True

    def _send(
        self, client: Any, alias: str, seq: int, deltas: dict[tuple[str, str], float], minute: int
    ) -> None:
        args: list[Any] = [seq, HISTORY_SECONDS, SEQ_TTL_SECONDS, len(deltas), _max_namespaces()]
        series: dict[str, float] = {}
        for (event, namespace), delta in deltas.items():
            args += [f"{event}|{namespace}", repr(delta)]
            if event in SERIES_EVENTS:
                series[event] = series.get(event, 0.0) + delta
        for event, delta in series.items():
            args += [event, repr(delta)]
        keys = [
            totals_key(alias),
            bucket_key(alias, minute),
            f"{_base_key(alias)}:seq:{self._process_id}",
            namespaces_key(alias),
        ]
        run(client, METRICS_APPLY_BATCH, keys, args)

    def _sample_evictions(self, client: Any, alias: str) -> None:
        # Once a minute per alias: gives "evictions in the last 5 minutes" a history to compare
        # with even when nobody runs `stats` (one INFO call per process per minute).
        minute = int(time.time() // 60)
        if self._sampled.get(alias) == minute:
            return
        self._sampled[alias] = minute
        record_eviction_sample(client, alias, int(client.info("stats").get("evicted_keys", 0)))

    def _log_failure(self, alias: str, exc: BaseException) -> None:
        if self._exiting:
            # Nothing retries after exit: say so, quietly (a stopped test or bench server is
            # the usual cause; in production the lost deltas are at most one flush interval).
            logger.info("cachewise metrics for alias %r dropped at exit: %s", alias, exc)
            return
        now = time.monotonic()
        if now - self._last_error_log > 60:
            self._last_error_log = now
            logger.warning("cachewise metrics flush for alias %r failed (kept for retry): %s", alias, exc)

    def ensure_flusher(self) -> None:
        """Start the background flush thread once per process (no-op if the interval is 0)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:  # two threads recording their first event must not start two
            if self._thread is not None and self._thread.is_alive():
                return
            if not self._atexit:
                self._atexit = True
                atexit.register(self._flush_at_exit)
            if _interval() <= 0:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="cachewise-metrics-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            interval = _interval()
            if interval <= 0 or self._stop.wait(interval):
                return
            self.flush()

    def stop(self) -> None:
        """Stop the flush thread (tests); counts keep accumulating until the next flush."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._thread = None

    def _flush_at_exit(self) -> None:
        self._exiting = True
        try:
            self.flush()
        except Exception:  # never fail interpreter shutdown over metrics (any error: it is logged)
            logger.debug("cachewise metrics flush at exit failed", exc_info=True)

    def reset(self) -> None:
        """Drop pending batches and every in-process counter (tests)."""
        with self._flush_lock:
            self._pending.clear()
            metrics.reset()

    def _after_fork(self) -> None:
        # The parent owns its pending batches and its thread; the child starts a fresh identity.
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pending.clear()
        self._seq = 0
        self._process_id = self._new_process_id()
        self._thread = None
        self._stop = threading.Event()


def _announce(alias: str, deltas: dict[tuple[str, str], float]) -> None:
    if deltas:
        cache_metrics_collected.send_robust(sender=Aggregator, alias=alias, deltas=dict(deltas))


def _max_namespaces() -> int:
    try:
        return conf.METRICS_MAX_NAMESPACES
    except (ImproperlyConfigured, TypeError, ValueError):  # no settings, or no number: the default
        return metrics.max_namespaces


def _interval() -> float:
    try:
        return conf.METRICS_FLUSH_INTERVAL
    except (ImproperlyConfigured, TypeError, ValueError):  # no settings, or no number: no flusher
        return 0.0


aggregator = Aggregator()
flush = aggregator.flush
ensure_flusher = aggregator.ensure_flusher
metrics.when_enabled(ensure_flusher)  # counting switched on: start flushing (this module sits above)

if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=aggregator._after_fork)


def read_totals(alias: str) -> Totals:
    """Every process's totals for ``alias`` from Redis (this process's when not Redis).

    Flushes this process first, so a reader sees its own latest counts. Never raises: a Redis
    failure is reported in ``Totals.error`` with this process's counts as the fallback.
    """
    flush(alias)
    local = {(e, ns): v for (e, a, ns), v in metrics.snapshot().items() if a == alias}
    try:
        client = redis_client_of(caches[alias])
        if client is None:
            return Totals(alias, local, source="process")
        raw = client.hgetall(totals_key(alias))
    except Exception as exc:  # noqa: BLE001 - monitoring never fails the page showing it: the error is shown instead
        return Totals(alias, local, source="process", error=f"{type(exc).__name__}: {exc}")
    values: dict[tuple[str, str], float] = {}
    for name, value in raw.items():
        event, _, namespace = name.decode().partition("|")
        values[(event, namespace)] = float(value)
    return Totals(alias, values)


def read_series(alias: str, minutes: int = 60, now: float | None = None) -> list[Point]:
    """The last ``minutes`` one-minute points of ``alias`` (oldest first; empty if unavailable)."""
    client = redis_client_of(caches[alias])
    if client is None:
        return []
    current = int((time.time() if now is None else now) // 60)
    span = range(current - min(minutes, HISTORY_SECONDS // 60) + 1, current + 1)
    pipe = client.pipeline(transaction=False)
    for minute in span:
        pipe.hmget(bucket_key(alias, minute), *SERIES_EVENTS)
    rows = pipe.execute()
    return [
        Point(minute, *(float(value or 0) for value in row)) for minute, row in zip(span, rows, strict=True)
    ]


def record_eviction_sample(client: Any, alias: str, evicted_keys: int, now: float | None = None) -> None:
    """Store Redis's ``evicted_keys`` in the current minute's bucket, for eviction rates."""
    minute = int((time.time() if now is None else now) // 60)
    key = bucket_key(alias, minute)
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, "evicted_keys", evicted_keys)
    pipe.expire(key, HISTORY_SECONDS)
    pipe.execute()


def evictions_since(client: Any, alias: str, current: int, window_minutes: int = 5) -> tuple[int, int] | None:
    """``(evictions, minutes covered)`` over the last ``window_minutes``, from stored samples.

    ``None`` when no sample older than the current minute exists yet (no history to compare).
    A counter lower than its sample means Redis restarted: every current eviction is recent.
    """
    now_minute = int(time.time() // 60)
    span = list(range(now_minute - window_minutes, now_minute))
    pipe = client.pipeline(transaction=False)
    for minute in span:
        pipe.hget(bucket_key(alias, minute), "evicted_keys")
    for minute, sample in zip(span, pipe.execute(), strict=True):
        if sample is not None:
            earliest = int(sample)
            return (current - earliest if current >= earliest else current), now_minute - minute
    return None
