"""Bounded in-process counters per route: what one process saw, until the flush takes the deltas.

Per route (URL name, or the view's dotted path when it has none) the recorder adds up counters
(see :data:`FIELDS`), how many requests read each table, and two pieces of reuse evidence:

* **URL reuse**, on every GET: was this exact URL (path and query string) requested before, and
  how long ago. A table of at most ``CACHEWISE_ADVISOR_MAX_URLS`` URLs remembers each one's last
  request; the least recently seen URL is forgotten first.
* **Identical bodies**, sampled (``CACHEWISE_ADVISOR_DIGEST_RATE`` of GET responses): an 8-byte
  BLAKE2b digest of the body, compared with the previous sampled digest of the same URL. Only the
  digest is kept, never the body.

Repeated queries are found the same way: a bounded table of (statement, parameters) hashes seen.
Routes are capped (``CACHEWISE_ADVISOR_MAX_ROUTES``; later ones count as ``other``), so memory is
bounded whatever the traffic: about 200 bytes per remembered URL or query, a few KB per route.

Counters are cumulative for the life of the process; :meth:`Recorder.drain` hands the deltas since
the previous drain to the flush, under the same lock that :meth:`Recorder.add` takes, so a request
lands in exactly one flush. A forked child starts empty (its parent flushes what it counted).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict, defaultdict
from typing import Any

from .queries import statement_info

__all__ = ["FIELDS", "OTHER", "Observation", "Recorder", "recorder"]

OTHER = "other"

#: Counters kept per route. ``seconds`` and ``db_seconds`` are sums; the rest are counts, bytes
#: or seconds as named. ``db_<kind>_seconds`` split database time by kind of statement.
FIELDS = (
    "requests",  # every recorded request
    "seconds",  # total time in and under the middleware
    "queries",
    "db_seconds",
    "db_repeat_seconds",  # database time of SELECTs another visitor (or anonymous) ran before alike
    "repeat_queries",  # how many such SELECTs
    "gets",  # GET/HEAD requests
    "anonymous",  # requests without credentials (session cookie, Authorization, credential cookies)
    "storable",  # anonymous GETs whose response the page cache would store
    "personal",  # anonymous GETs whose response belongs to one visitor (cookie, CSRF, session...)
    "set_cookie",  # responses with Set-Cookie
    "vary_cookie",  # responses with Vary: Cookie
    "html",  # text/html responses
    "bytes",  # response body bytes (non-streaming)
    "url_repeats",  # GETs of a URL this process had seen before
    "url_gap_seconds",  # sum of the time since that URL's previous request
    "digests",  # sampled bodies
    "digest_pairs",  # sampled bodies with an earlier sample of the same URL
    "digest_same",  # ... that were identical to it
    "hit_requests",  # requests whose cachewise lookups all hit (at least one)
    "miss_requests",  # requests with at least one cachewise miss
)


class Observation:
    """What one request did; filled by the query wrapper and the metrics' lookup hook."""

    __slots__ = (
        "db_seconds",
        "hits",
        "kinds",
        "labels",
        "misses",
        "queries",
        "recorder",
        "repeat_queries",
        "repeat_seconds",
        "visitor",
    )

    def __init__(self, recorder: Recorder, visitor: int = 0) -> None:
        self.recorder = recorder
        #: 0 for an anonymous request, else a hash of its credentials (never stored elsewhere).
        self.visitor = visitor
        self.queries = 0
        self.repeat_queries = 0
        self.db_seconds = 0.0
        self.repeat_seconds = 0.0
        self.labels: set[str] = set()
        self.kinds: dict[str, float] = {}
        self.hits = 0.0
        self.misses = 0.0

    def query(self, sql: str, params: Any, seconds: float) -> None:
        """A statement ran for ``seconds`` (``params`` None for ``executemany``)."""
        labels, kind = statement_info(sql)
        if kind == "control":
            return
        self.queries += 1
        self.db_seconds += seconds
        self.labels.update(labels)
        self.kinds[kind] = self.kinds.get(kind, 0.0) + seconds
        if kind != "write" and params is not None and self.recorder.shared_query(sql, params, self.visitor):
            self.repeat_queries += 1
            self.repeat_seconds += seconds

    def lookup(self, event: str, value: float) -> None:
        """A cachewise cache lookup of this request hit or missed (see metrics.observe_lookups)."""
        if event == "hit":
            self.hits += value
        else:
            self.misses += value


class _Bounded:
    """A dict of at most ``size`` entries; the least recently touched one goes first (O(1))."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[Any, Any] = OrderedDict()

    def touch(self, key: Any, value: Any) -> Any:
        """Store ``value`` under ``key`` as the most recent entry; return what was there (or None)."""
        entries = self.entries
        previous = entries.get(key)
        entries[key] = value
        if previous is not None:
            entries.move_to_end(key)
        elif len(entries) > self.size:
            # Another thread may have emptied the dict meanwhile: then skip the eviction.
            with contextlib.suppress(KeyError):
                entries.popitem(last=False)
        return previous


class Recorder:
    """Thread-safe per-route counters and reuse tables, bounded (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.max_routes = 200
        self._values: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._flushed: dict[tuple[str, str], float] = {}
        self._writes: defaultdict[str, float] = defaultdict(float)
        self.urls = _Bounded(10000)
        self.queries = _Bounded(20000)

    def configure(self, *, max_routes: int, max_urls: int, max_queries: int) -> None:
        """Apply the size settings (the middleware calls this when it (re)reads settings)."""
        self.max_routes = max_routes
        self.urls.size = max_urls
        self.queries.size = max_queries

    def shared_query(self, sql: str, params: Any, visitor: int) -> bool:
        """True if this statement ran with these parameters before for another visitor.

        Or for an anonymous one, when ``visitor`` is anonymous too (0): data that one cached
        copy could serve to everyone. One visitor repeating their own query (their session,
        their profile) is not shared data, and is not counted.
        """
        try:
            key = hash((sql, tuple(params) if isinstance(params, list) else params))
        except TypeError:  # unhashable parameters (a dict of lists): not comparable cheaply
            return False
        previous = self.queries.touch(key, visitor)
        return previous is not None and (previous != visitor or visitor == 0)

    def seen_url(
        self, route: str, url: str, now: float, digest: bytes | None
    ) -> tuple[float | None, bytes | None]:
        """Remember ``url``'s request at ``now`` (and ``digest``); return the previous time and digest."""
        key = hash((route, url))
        previous = self.urls.touch(key, (now, digest))
        if previous is None:
            return None, None
        before: tuple[float, bytes | None] = previous
        if digest is None and before[1] is not None:
            self.urls.entries[key] = (now, before[1])  # keep the last sampled digest
        return before

    def add(
        self,
        route: str,
        counts: dict[str, float],
        labels: set[str] | None = None,
        kinds: dict[str, float] | None = None,
        weight: float = 1.0,
    ) -> None:
        """Add one request's ``counts``, the tables it read and its database time per kind.

        ``weight`` is 1/sample rate: one recorded request stands for that many.
        """
        with self._lock:
            values = self._values
            if route not in values and len(values) >= self.max_routes:
                route = OTHER
            row = values[route]
            for name, value in counts.items():
                row[name] += value * weight
            for label in labels or ():
                row[f"t:{label}"] += weight
            for kind, seconds in (kinds or {}).items():
                row[f"db_{kind}_seconds"] += seconds * weight

    def count_writes(self, labels: dict[str, Any]) -> None:
        """One committed write batch touched the models ``labels`` (one write per model)."""
        with self._lock:
            for label in labels:
                self._writes[label] += 1

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every route's cumulative counters in this process."""
        with self._lock:
            return {route: dict(row) for route, row in self._values.items()}

    def drain(self) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """The per-route deltas and the table writes since the previous drain."""
        deltas: dict[str, dict[str, float]] = {}
        with self._lock:
            for route, row in self._values.items():
                for name, value in row.items():
                    delta = value - self._flushed.get((route, name), 0.0)
                    if delta:
                        deltas.setdefault(route, {})[name] = delta
                        self._flushed[(route, name)] = value
            writes = dict(self._writes)
            self._writes.clear()
        return deltas, writes

    def reset(self) -> None:
        """Forget everything (tests, ``advise --reset``)."""
        with self._lock:
            self._values.clear()
            self._flushed.clear()
            self._writes.clear()
            self.urls.entries.clear()
            self.queries.entries.clear()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._values.clear()
        self._flushed.clear()
        self._writes.clear()


def now() -> float:
    """Wall-clock seconds (a function so tests can read the same clock the recorder uses)."""
    return time.time()


recorder = Recorder()

if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=recorder._after_fork)
