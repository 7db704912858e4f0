"""Lease renewal for held locks: one keeper thread per process renews every lease.

A locked computation renews its lease every third of it, so a holder that dies is replaced after
at most one lease while a slow one keeps its lock. Starting a thread per computation did that at
a price paid on every miss, however short: ``Thread.start()`` waits for the new thread to run,
0.3-1 ms on a loaded 2-core host, more than the Redis round trips of the miss. Here a renewal is
an entry in a heap that one daemon thread serves; entering and leaving the ``with`` block cost a
heap push and a flag.

A renewal left while its ``extend`` is in flight lets that call finish: ``extend`` is a
compare-and-extend on the lock token, so once the lock is released or filled it changes nothing
(the server runs the two one after the other; the late one finds another token or none).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

from cachewise.exceptions import CacheUnavailableError

__all__ = ["LeaseRenewal"]

logger = logging.getLogger(__name__)


class LeaseRenewal:
    """Renews a held lock every third of its lease until the ``with`` block ends.

    ``extend()`` is the lock's compare-and-extend: it answers False once the lock is no longer
    ours (expired, or invalidated), which ends the renewal and sets ``lost``. Shared by the
    stampede lock and ``cache.lock(..., auto_renewal=True)``.
    """

    __slots__ = ("extend", "lease", "lost", "stopped")

    def __init__(self, extend: Callable[[], bool], lease: float) -> None:
        self.extend, self.lease = extend, lease
        self.lost = False
        self.stopped = False

    def __enter__(self) -> LeaseRenewal:
        _keeper.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped = True  # the keeper drops it when it comes due

    def renew(self) -> bool:
        """Extend once; True while the renewal should go on."""
        if self.stopped:
            return False
        try:
            if not self.extend():
                self.lost = True  # invalidated or expired: the fill will not be stored
                return False
        except CacheUnavailableError:
            pass  # keep trying: the lease may survive a short outage
        return not self.stopped


class _Keeper:
    """The process' renewal thread and its heap of (due time, order, renewal)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start empty, with no thread (a forked child: the parent's lock may be held)."""
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, LeaseRenewal]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, renewal: LeaseRenewal) -> None:
        with self._cond:
            self._push(renewal)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cachewise-lease", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is renewal:
                self._cond.notify()  # due before what the keeper sleeps for; else let it sleep

    def _push(self, renewal: LeaseRenewal) -> None:
        heapq.heappush(self._heap, (time.monotonic() + renewal.lease / 3, next(self._order), renewal))

    def _next(self) -> LeaseRenewal:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].stopped:
                    heapq.heappop(self._heap)  # ended before it came due: nothing to renew
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)[2]
                self._cond.wait(wait)

    def _run(self) -> None:
        while True:
            renewal = self._next()
            # Outside the condition: a slow extend delays other renewals, never a caller.
            try:
                go_on = renewal.renew()
            except Exception:  # a server error (WRONGTYPE, a script error) or a bug in one extend:
                # that lease is no longer renewed, but the thread must live on for every other one.
                logger.exception("cachewise: renewing a lock lease failed; it is no longer renewed")
                go_on = False
            if go_on:
                with self._cond:
                    self._push(renewal)


_keeper = _Keeper()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keeper.reset)
