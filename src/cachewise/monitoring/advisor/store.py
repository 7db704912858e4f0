"""Every process's advisor counters, aggregated in Redis next to the metrics; predictions kept.

Each process drains its :mod:`.recorder` deltas on the metrics' flush schedule (the flush thread
every ``CACHEWISE_METRICS_FLUSH_INTERVAL`` seconds, a scrape, ``advise``, interpreter exit) and
sends them with the metrics' own exactly-once batch script
(:data:`cachewise.store.scripts.counts.METRICS_APPLY_BATCH`): a batch is numbered per process and a
resent batch whose reply was lost is skipped. Keys, under ``<KEY_PREFIX>:cachewise:advisor:{advisor}``
(one Redis Cluster slot):

* ``:routes`` — hash of ``<counter>|<route>`` sums; ``:route-names`` caps the routes fleet-wide
  (``CACHEWISE_ADVISOR_MAX_ROUTES``; later routes count as ``other``);
* ``:m:<minute>`` — committed writes per model label in that minute (expire after 3 hours);
* ``:since`` — when recording started (rates are per second of that window);
* ``:predictions`` — what ``advise`` predicted for each route when it first advised it, with the
  counters at that moment, so a later run can show what the cache then measured.

When the alias is not Redis the same data lives in this process only (``source = "process"``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import InvalidCacheBackendError, caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.monitoring import aggregate
from cachewise.store.raw_client import redis_client_of
from cachewise.store.scripts import run_then
from cachewise.store.scripts.counts import METRICS_APPLY_BATCH

from .recorder import recorder
from .settings import advisor_settings

__all__ = ["Observed", "flush", "read", "read_predictions", "reset", "save_predictions", "start"]

logger = logging.getLogger("cachewise.monitoring")

#: Table writes are rated over at most this window (and at least a minute).
WRITE_WINDOW_SECONDS = 3600
_WRITE_HISTORY_MINUTES = aggregate.HISTORY_SECONDS // 60


@dataclass
class Observed:
    """The fleet's counters per route, table write rates and the window they cover."""

    routes: dict[str, dict[str, float]] = field(default_factory=dict)
    writes_per_second: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # since recording started
    source: str = "redis"
    error: str | None = None


def _client() -> tuple[str, Any | None]:
    """The advisor's alias and its redis-py client (None: not Redis, or not configured)."""
    alias = advisor_settings.ALIAS
    if alias not in settings.CACHES:  # reported by cachewise.E070: keep it in this process
        return alias, None
    return alias, redis_client_of(caches[alias])


def _base_key(alias: str) -> str:
    prefix = getattr(caches[alias], "key_prefix", "") or ""
    return f"{prefix}:cachewise:advisor:{{advisor}}" if prefix else "cachewise:advisor:{advisor}"


def _keys(alias: str) -> dict[str, str]:
    base = _base_key(alias)
    return {name: f"{base}:{name}" for name in ("routes", "route-names", "since", "predictions")}


def _minute_key(alias: str, minute: int) -> str:
    return f"{_base_key(alias)}:m:{minute}"


class _Local:
    """The fleet's data when the alias is not Redis: this process only."""

    def __init__(self) -> None:
        self.routes: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.minutes: defaultdict[int, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.since: float | None = None
        self.predictions: dict[str, str] = {}

    def apply(self, deltas: dict[str, dict[str, float]], writes: dict[str, float], now: float) -> None:
        if self.since is None:
            self.since = now
        for route, row in deltas.items():
            for name, value in row.items():
                self.routes[route][name] += value
        for label, count in writes.items():
            self.minutes[int(now // 60)][label] += count


class _Flusher:
    """Drains the recorder into Redis exactly once per batch; one flush at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: tuple[int, dict[str, dict[str, float]], dict[str, float], int] | None = None
        self.seq = 0
        self.process_id = aggregate.Aggregator._new_process_id()
        self.local = _Local()
        self.started = False

    def flush(self) -> bool:
        with self.lock:
            try:
                alias, client = _client()
            except (InvalidCacheBackendError, ImproperlyConfigured):  # no settings, alias removed: nothing
                # to send to
                return True
            if client is None:
                deltas, writes = recorder.drain()
                self.local.apply(deltas, writes, time.time())
                return True
            try:
                if self.pending is not None:
                    self._send(client, alias, *self.pending)
                    self.pending = None
                deltas, writes = recorder.drain()
                if deltas or writes:
                    self.seq += 1
                    self.pending = (self.seq, deltas, writes, int(time.time() // 60))
                    self._send(client, alias, *self.pending)
                    self.pending = None
            except Exception as exc:  # noqa: BLE001 - Redis down: keep the batch for the next flush
                logger.info("cachewise advisor flush failed (kept for retry): %s", exc)
                return False
        return True

    def _send(
        self,
        client: Any,
        alias: str,
        seq: int,
        deltas: dict[str, dict[str, float]],
        writes: dict[str, float],
        minute: int,
    ) -> None:
        fields: list[Any] = []
        for route, row in deltas.items():
            for name, value in row.items():
                fields += [f"{name}|{route}", repr(value)]
        bucket: list[Any] = []
        for label, count in writes.items():
            bucket += [label, repr(count)]
        keys = _keys(alias)
        script_keys = [
            keys["routes"],
            _minute_key(alias, minute),
            f"{_base_key(alias)}:seq:{self.process_id}",
            keys["route-names"],
        ]
        args = [seq, aggregate.HISTORY_SECONDS, aggregate.SEQ_TTL_SECONDS, len(fields) // 2]
        args += [advisor_settings.MAX_ROUTES, *fields, *bucket]
        run_then(
            client, METRICS_APPLY_BATCH, script_keys, args, ("SET", keys["since"], repr(time.time()), "NX")
        )

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.pending = None
        self.seq = 0
        self.process_id = aggregate.Aggregator._new_process_id()


_flusher = _Flusher()
flush = _flusher.flush


def start() -> None:
    """Flush with the metrics (once per process) and make sure their flush thread runs."""
    if not _flusher.started:
        _flusher.started = True
        aggregate.flush_hooks.append(flush)
    aggregate.ensure_flusher()


def _decode(raw: dict[bytes, bytes]) -> dict[str, dict[str, float]]:
    routes: dict[str, dict[str, float]] = {}
    for name, value in raw.items():
        counter, _, route = name.decode().partition("|")
        routes.setdefault(route, {})[counter] = float(value)
    return routes


def _rates(minutes: dict[int, dict[str, float]], seconds: float) -> dict[str, float]:
    window = min(max(seconds, 60.0), WRITE_WINDOW_SECONDS)
    totals: dict[str, float] = {}
    for row in minutes.values():
        for label, count in row.items():
            totals[label] = totals.get(label, 0.0) + count
    return {label: count / window for label, count in totals.items()}


def _window_minutes(now: float, seconds: float) -> range:
    window = min(max(seconds, 60.0), WRITE_WINDOW_SECONDS)
    current = int(now // 60)
    return range(int((now - window) // 60), current + 1)


def read(now: float | None = None) -> Observed:
    """The fleet's counters (this process flushed first); never raises (``error`` says why)."""
    flush()
    now = time.time() if now is None else now
    alias, client = _client()
    if client is None:
        return _read_local(now)
    keys = _keys(alias)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys["routes"])
        pipe.get(keys["since"])
        raw, since = pipe.execute()
        seconds = now - float(since) if since else 0.0
        minutes = list(_window_minutes(now, seconds))
        pipe = client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(_minute_key(alias, minute))
        buckets = {
            minute: {k.decode(): float(v) for k, v in row.items()}
            for minute, row in zip(minutes, pipe.execute(), strict=True)
        }
    except Exception as exc:  # noqa: BLE001 - monitoring never fails the page showing it: local counts and the error
        observed = _read_local(now)
        observed.error = f"{type(exc).__name__}: {exc}"
        return observed
    return Observed(_decode(raw), _rates(buckets, seconds), max(seconds, 0.0))


def _read_local(now: float) -> Observed:
    local = _flusher.local
    seconds = now - local.since if local.since is not None else 0.0
    window = set(_window_minutes(now, seconds))
    minutes = {minute: dict(row) for minute, row in local.minutes.items() if minute in window}
    routes = {route: dict(row) for route, row in local.routes.items()}
    return Observed(routes, _rates(minutes, seconds), max(seconds, 0.0), source="process")


def read_predictions() -> dict[str, dict[str, Any]]:
    """The prediction stored for each route (empty when none, or Redis unreachable)."""
    alias, client = _client()
    try:
        raw = (
            {k.encode(): v.encode() for k, v in _flusher.local.predictions.items()}
            if client is None
            else client.hgetall(_keys(alias)["predictions"])
        )
    except Exception:  # noqa: BLE001 - monitoring never fails the page showing it: no predictions to compare
        return {}
    return {name.decode(): json.loads(value) for name, value in raw.items()}


def save_predictions(predictions: dict[str, dict[str, Any]]) -> None:
    """Store each route's prediction unless one is stored already (the first advice is kept)."""
    if not predictions:
        return
    alias, client = _client()
    if client is None:
        for route, prediction in predictions.items():
            _flusher.local.predictions.setdefault(route, json.dumps(prediction))
        return
    key = _keys(alias)["predictions"]
    pipe = client.pipeline(transaction=False)
    for route, prediction in predictions.items():
        pipe.hsetnx(key, route, json.dumps(prediction, sort_keys=True))
    pipe.execute()


def reset() -> None:
    """Forget everything recorded, everywhere: the fleet's counters, rates and predictions."""
    with _flusher.lock:
        recorder.reset()
        _flusher.pending = None
        _flusher.local = _Local()
        alias, client = _client()
        if client is None:
            return
        current = int(time.time() // 60)
        span = range(current - _WRITE_HISTORY_MINUTES, current + 2)
        minutes = [_minute_key(alias, minute) for minute in span]
        client.delete(*_keys(alias).values(), *minutes)


try:
    import os

    os.register_at_fork(after_in_child=_flusher.after_fork)
except AttributeError:  # pragma: no cover - not POSIX
    pass
