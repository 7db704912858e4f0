"""The page cache's freshness steps, called by :mod:`cachewise.pagecache.serve`.

:func:`attempt` is the hit path: the page and its counters in one round trip
(:func:`cachewise.pagecache.stamp.check`). :func:`tracker_for` starts the dependency tracking of a
render with the versions the attempt read; :func:`stamped` wraps what the render stored.
A page found stale is invalidated through the store (fenced) before the single-flight fill, so
``get_or_compute`` renders it again instead of returning the stale entry, and a fill that started
before that point is not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from cachewise import recovery
from cachewise.compute.api import NoStore
from cachewise.conf import conf
from cachewise.monitoring.metrics import record
from cachewise.orm.invalidation import delivered, invalidations_pending
from cachewise.store.adapter import Held
from cachewise.store.choice import get_store

from .entry import POINTER_TAG
from .key import NAMESPACE, host_of
from .stamp import Dep, check, unwrap, url_deps, wrap
from .tracking import Tracker, resolve

__all__ = ["HINT_LIMIT", "Freshness", "attempt", "learned", "recall", "stamped", "tracker_for"]

#: At most this many counters of a view are read ahead on its misses (bounded MGET).
HINT_LIMIT = 32


class Freshness:
    """What one request learned about counters: the URL counters and every version read.

    ``hint``: the counters the view's last fill depended on besides its URL counters (the
    tables its render queried), read with the page so a miss that renders the same queries
    knows their versions before it starts: no round trip per table during the render.
    """

    __slots__ = ("base", "held", "hint", "known")

    def __init__(self, hint: tuple[Dep, ...] = ()) -> None:
        self.base: tuple[Dep, ...] = ()
        self.hint = hint
        self.known: dict[Dep, int] = {}
        #: The page's lock when the attempt's read found it missing and took it: the caller's.
        self.held: Held | None = None


def attempt(
    alias: str, request: HttpRequest, cache_key: str, fresh: Freshness, lease: float | None = None
) -> Any:
    """The page (or vary pointer) at ``cache_key`` if it is current, else None.

    ``lease``: take a missing page's lock in the same read (``fresh.held``, then the caller's
    to fill or release), so the single-flight fill needs no round trip of its own to lock.

    A stored page whose counters moved is invalidated (fenced) so the fill that follows renders.
    While an ORM invalidation of this process is undelivered (the cache was down when a write
    committed) no page is served from the cache: its counters may not show that write yet.
    """
    # Invalidations other processes recorded during an outage, a Redis back from an older
    # snapshot (cachewise.recovery): checked at most once per interval, before the read.
    recovery.tick()
    # Before the read: delivering a pending global bump bumps the global version the read must see.
    pending = invalidations_pending() and not delivered(conf.ORM_CACHE)
    fresh.base = url_deps(alias, host_of(request), request.path)
    result = check(alias, cache_key, fresh.base, fresh.hint, lease)
    fresh.known.update(result.known)
    fresh.held = result.held
    if result.fresh and not pending:
        record("hit", alias, NAMESPACE)
        return unwrap(result.value)
    if result.stale or (pending and result.fresh):
        # Gone before the fill: get_or_compute would return a stored entry as it is.
        get_store(alias).invalidate(cache_key)
    return None


def recall(alias: str, cache_key: str) -> Any:
    """The page (or vary pointer) at ``cache_key`` when the alias' near cache still holds a fresh
    verdict on it (:meth:`~cachewise.backends.near.NearCache.recall`), else None.

    What :func:`attempt` answers from that verdict, counted as it counts a hit, without what it
    prepares for a miss (the URL counters, the hint, the lock lease): a near-cached page's hit
    then costs a dict lookup and the tracking socket's check. None sends the caller to
    :func:`attempt`, which also decides while an invalidation of this process is undelivered.
    """
    near = get_store(alias).near
    if near is None:
        return None
    recovery.tick()  # as attempt() does, before the read
    if invalidations_pending():
        return None
    verdict = near.recall(cache_key)
    if verdict is None:
        return None
    record("hit", alias, NAMESPACE)
    return unwrap(verdict.value)


def tracker_for(fresh: Freshness, track_queries: bool | None, depends_on: Iterable[Any]) -> Tracker:
    """A tracker for one render: URL counters, ``depends_on`` (versions read now), queries."""
    automatic = conf.PAGE_TRACK_QUERIES if track_queries is None else track_queries
    tracker = Tracker(fresh.known, fresh.base, automatic)
    tracker.add(resolve(depends_on))
    if invalidations_pending() and not delivered(conf.ORM_CACHE):
        tracker.unstorable = "invalidation-pending"
    return tracker


def learned(tracker: Tracker, fresh: Freshness) -> tuple[Dep, ...]:
    """The counters a render depended on besides its URL counters: the view's next ``hint``."""
    base = set(fresh.base)
    return tuple(dep for dep in tracker.deps if dep not in base)[:HINT_LIMIT]


def stamped(value: Any, tracker: Tracker) -> Any:
    """What to store for ``value`` (a page, a pointer or a NoStore) rendered under ``tracker``."""
    if isinstance(value, NoStore) or value[0] == POINTER_TAG:
        return value  # pointers carry no stamp: their variant does
    if tracker.unstorable is not None:
        return NoStore(None)
    deps, versions = tracker.stamp()
    return wrap(value, deps, versions)
