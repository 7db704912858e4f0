"""In-process cache counters: cheap enough for the hit path, bounded in memory.

Every layer of cachewise reports what it did through :func:`record` with an *event* name, the
cache *alias* and a *namespace* (the first ``:`` segment of a key, never the key itself; ``"-"``
for a key without one). Distinct namespaces are capped per alias
(``CACHEWISE_METRICS_MAX_NAMESPACES``); later ones are counted under ``"other"``, so a key scheme
with one namespace per user cannot grow memory or the number of Prometheus series.

Events (a value is a count unless the name ends in ``_seconds``):
``hit``, ``miss``, ``stale`` (old value served while refreshing), ``recompute``,
``compute_seconds``, ``lock_wait``, ``lock_wait_seconds``, ``bypass:<reason>``, ``error``,
``degraded``, ``invalidate``.

The counters are cumulative for the life of the process (:meth:`Metrics.snapshot`). The
aggregator (:mod:`cachewise.monitoring.aggregate`) takes the *deltas* since its previous flush with
:meth:`Metrics.drain`, so reading a snapshot never disturbs flushing and vice versa. A forked
child starts from zero: the counts it inherited belong to (and are flushed by) its parent.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from cachewise.conf import conf

__all__ = [
    "OTHER",
    "LookupObserver",
    "MetricKey",
    "Metrics",
    "metrics",
    "namespace_of",
    "observe_lookups",
    "record",
    "record_many",
]

MetricKey = tuple[str, str, str]
OTHER = "other"
_LOOKUPS = ("hit", "miss")


class LookupObserver(Protocol):
    """Told of every cache hit and miss recorded in its context (the advisor's request tally)."""

    def lookup(self, event: str, value: float) -> None: ...


_observer: ContextVar[LookupObserver | None] = ContextVar("cachewise_lookup_observer", default=None)


def observe_lookups(observer: LookupObserver) -> Token[LookupObserver | None]:
    """Tell ``observer`` of the hits and misses recorded in this context until the token is reset.

    Keys without a namespace (``"-"``: sessions, Django's own keys) are not lookups of cached
    data, so they are not reported. Reported even with metrics disabled.
    """
    return _observer.set(observer)


def namespace_of(key: str) -> str:
    """The namespace of a cache key: everything before its first ``:``; ``"-"`` if it has none.

    A key without a ``:`` has no namespace: counting it under its own name would make one
    namespace per key (Django's session and page keys are like that), so it counts under ``"-"``.
    """
    head, colon, _ = (key if type(key) is str else str(key)).partition(":")
    return head if colon and head else "-"


class Metrics:
    """Thread-safe counters keyed by (event, alias, namespace), with bounded namespaces."""

    def __init__(self, max_namespaces: int | None = None) -> None:
        self._max_namespaces = max_namespaces
        self.max_namespaces = max_namespaces or 200
        self._lock = threading.Lock()
        self._values: defaultdict[MetricKey, float] = defaultdict(float)
        self._flushed: dict[MetricKey, float] = {}
        self._namespaces: defaultdict[str, set[str]] = defaultdict(set)
        # Settings are read once, on the first record, and again after a setting changes:
        # the hit path pays two attribute reads, never a settings lookup.
        self._ready = False
        self.enabled = True
        self._enabled_hooks: list[Callable[[], None]] = []

    def _activate(self) -> None:
        try:
            self.enabled = conf.METRICS_ENABLED
            self.max_namespaces = self._max_namespaces or conf.METRICS_MAX_NAMESPACES
        except (ImproperlyConfigured, TypeError, ValueError):  # no settings (a bare script), or a value
            # that is no number (reported by the checks): count with the defaults, never fail a read
            self.enabled = True
        self._ready = True
        if self.enabled:
            for hook in list(self._enabled_hooks):
                hook()

    def when_enabled(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` each time counting is switched on, and now if it is on already.

        The aggregator registers its flusher here: this module sits below everything that
        records, so it cannot import the aggregator (which flushes through the store).
        """
        if hook not in self._enabled_hooks:
            self._enabled_hooks.append(hook)
        if self._ready and self.enabled:
            hook()

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
        if event in _LOOKUPS and namespace != "-":
            observer = _observer.get()
            if observer is not None:
                observer.lookup(event, value)
        if not self._ready:
            self._activate()
        if not self.enabled:
            return
        key = (event, alias, namespace)
        with self._lock:
            values = self._values
            if key in values:  # the hit path: a known counter, no namespace bookkeeping
                values[key] += value
            else:
                values[(event, alias, self._bounded(alias, namespace))] += value

    def record_many(self, alias: str, counts: dict[tuple[str, str], float]) -> None:
        """Add every ``(event, namespace) -> value`` of ``counts`` for ``alias``, under one lock."""
        observer = _observer.get()
        if observer is not None:
            for (event, namespace), value in counts.items():
                if value and event in _LOOKUPS and namespace != "-":
                    observer.lookup(event, value)
        if not self._ready:
            self._activate()
        if not self.enabled:
            return
        with self._lock:
            values = self._values
            for (event, namespace), value in counts.items():
                key = (event, alias, namespace)
                if key in values:
                    values[key] += value
                elif value:
                    values[(event, alias, self._bounded(alias, namespace))] += value

    def set_enabled(self, enabled: bool) -> None:
        """Count (or not) in this process from now on, until a setting changes (benchmarks)."""
        self._activate()
        self.enabled = enabled

    def snapshot(self) -> dict[MetricKey, float]:
        """A copy of every counter, safe to iterate while requests keep recording."""
        with self._lock:
            return dict(self._values)

    def drain(self, alias: str) -> dict[tuple[str, str], float]:
        """Return the ``(event, namespace) -> delta`` of ``alias`` since the previous drain.

        The deltas are marked as handed over under the lock, so a value recorded concurrently
        lands either in this drain or in the next one, never in both and never in neither.
        """
        deltas: dict[tuple[str, str], float] = {}
        with self._lock:
            for key, value in self._values.items():
                if key[1] != alias:
                    continue
                delta = value - self._flushed.get(key, 0.0)
                if delta:
                    deltas[(key[0], key[2])] = delta
                    self._flushed[key] = value
        return deltas

    def aliases(self) -> set[str]:
        """The aliases that have recorded anything in this process."""
        with self._lock:
            return {key[1] for key in self._values}

    def reset(self) -> None:
        """Forget every counter and every pending delta (tests; deltas not yet drained are lost)."""
        with self._lock:
            self._values.clear()
            self._flushed.clear()
            self._namespaces.clear()

    def reconfigure(self, **kwargs: Any) -> None:
        """Read the settings again on the next record (a setting changed)."""
        self._ready = False

    def _after_fork(self) -> None:
        # The parent still owns (and will flush) everything counted before the fork; the lock
        # may have been held by another thread of the parent at fork time, so make a new one.
        self._lock = threading.Lock()
        self._values.clear()
        self._flushed.clear()
        self._namespaces.clear()
        self._ready = False


metrics = Metrics()
record = metrics.record
record_many = metrics.record_many

if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=metrics._after_fork)


def _connect_setting_changed() -> None:
    def _on_setting_changed(setting: str, **kwargs: Any) -> None:
        if setting.startswith("CACHEWISE_METRICS"):
            metrics.reconfigure()

    setting_changed.connect(_on_setting_changed, weak=False, dispatch_uid="cachewise.metrics")


_connect_setting_changed()
