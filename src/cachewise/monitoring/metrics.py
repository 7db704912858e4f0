"""In-process cache counters: cheap enough for the hit path, bounded in memory.

Every layer of cachewise reports what it did through :func:`record` with an *event* name, the
cache *alias* and a *namespace* (the first segment of a key, never the key itself). Distinct
namespaces are capped per alias (``CACHEWISE_METRICS_MAX_NAMESPACES``); later ones are counted
under ``"other"``, so a key scheme with one namespace per user cannot grow memory or the number of
Prometheus series.

Events (a value is a count unless the name ends in ``_seconds``):
``hit``, ``miss``, ``stale`` (old value served while refreshing), ``recompute``,
``compute_seconds``, ``lock_wait``, ``lock_wait_seconds``, ``bypass:<reason>``, ``error``,
``degraded``, ``invalidate``.
"""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["MetricKey", "Metrics", "metrics", "namespace_of", "record"]

MetricKey = tuple[str, str, str]
OTHER = "other"


def namespace_of(key: str) -> str:
    """The namespace of a cache key: everything before its first ``:`` (or the whole key)."""
    head, _, _ = key.partition(":")
    return head or "-"


class Metrics:
    """Thread-safe counters keyed by (event, alias, namespace), with bounded namespaces."""

    def __init__(self, max_namespaces: int = 200) -> None:
        self.max_namespaces = max_namespaces
        self._lock = threading.Lock()
        self._values: defaultdict[MetricKey, float] = defaultdict(float)
        self._namespaces: defaultdict[str, set[str]] = defaultdict(set)

    def _bounded(self, alias: str, namespace: str) -> str:
        known = self._namespaces[alias]
        if namespace in known:
            return namespace
        if len(known) >= self.max_namespaces:
            return OTHER
        known.add(namespace)
        return namespace

    def record(self, event: str, alias: str = "default", namespace: str = "-", value: float = 1.0) -> None:
        """Add ``value`` to the counter of ``event`` for ``alias`` and ``namespace``."""
        with self._lock:
            self._values[(event, alias, self._bounded(alias, namespace))] += value

    def snapshot(self) -> dict[MetricKey, float]:
        """A copy of every counter, safe to iterate while requests keep recording."""
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        """Forget every counter (tests, or after a scrape that drains deltas)."""
        with self._lock:
            self._values.clear()
            self._namespaces.clear()


metrics = Metrics()
record = metrics.record
