"""In-process single flight: threads of one process wanting the same key share one fetch.

Only the *leader* thread of a key talks to the cache (takes the cross-process lock, or waits
for its holder); the others wait on a :class:`threading.Event`. A thread whose first read came
*before* a flight landed may also take that flight's value for a short while after it landed
(:data:`RECENT_SECONDS`): its read missed only because the value was not there yet, so the landed
value is as fresh as anything it could fetch, and it saves the herd's stragglers a lock attempt
and a re-read each.

Bounded: at most ``max_keys`` flights in progress (beyond that, callers skip coalescing and
still get the cross-process lock) and ``max_recent`` landed values remembered.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["RECENT_SECONDS", "Coalescer", "Flight", "RefreshGate", "coalescer", "refresh_gate"]

#: How long after landing a flight's value is handed to threads whose read predates the landing.
RECENT_SECONDS = 1.0


class Flight:
    """One in-process fetch of a key: followers wait on ``done``, then read the outcome."""

    __slots__ = ("done", "landed_at", "nostore", "ok", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.nostore = False
        self.value: Any = None
        self.landed_at = 0.0


class Coalescer:
    """The table of flights in progress and recently landed, keyed by alias and cache key."""

    def __init__(self, max_keys: int = 10_000, max_recent: int = 256) -> None:
        self.max_keys = max_keys
        self.max_recent = max_recent
        self.reset()

    def reset(self) -> None:
        """Forget every flight (after fork: the threads that led them do not exist in the child)."""
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}
        self._recent: OrderedDict[str, Flight] = OrderedDict()

    def join(self, key: str, read_at: float) -> tuple[Flight | None, bool]:
        """Return ``(flight, leader)`` for a caller whose read of ``key`` started at ``read_at``.

        ``(None, True)`` when the table is full: the caller fetches alone.
        """
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            recent = self._recent.get(key)
            if recent is not None and read_at <= recent.landed_at < read_at + RECENT_SECONDS:
                return recent, False
            if len(self._flights) >= self.max_keys:
                return None, True
            flight = self._flights[key] = Flight()
            return flight, True

    def land(self, key: str, flight: Flight | None, ok: bool, value: Any, nostore: bool) -> None:
        """Publish the leader's outcome (``ok`` False: followers fetch for themselves)."""
        if flight is None:
            return
        flight.ok, flight.value, flight.nostore = ok, value, nostore
        flight.landed_at = time.monotonic()
        with self._lock:
            self._flights.pop(key, None)
            self._recent.pop(key, None)
            if ok:
                self._recent[key] = flight
                while len(self._recent) > self.max_recent:
                    self._recent.popitem(last=False)
        flight.done.set()


coalescer = Coalescer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=coalescer.reset)


class RefreshGate:
    """Lets one thread per process and key *try* an early or stale refresh at a time.

    Without it every thread that reads a stale value in the same instant sends its own lock
    attempt (which fails for all but one). Entries expire after ``hold`` seconds, so a refresh
    led by another process is retried at most that often from here.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self.reset()

    def reset(self) -> None:
        """Forget every entry (after fork)."""
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def try_enter(self, key: str, hold: float) -> bool:
        """True if this thread may attempt the refresh of ``key`` now."""
        now = time.monotonic()
        with self._lock:
            until = self._until.get(key)
            if until is not None and until > now:
                return False
            if len(self._until) >= self.max_keys:
                self._until = {k: t for k, t in self._until.items() if t > now}
                if len(self._until) >= self.max_keys:
                    return True  # full of live entries: do not gate (still bounded)
            self._until[key] = now + hold
            return True

    def leave(self, key: str) -> None:
        """The refresh this thread attempted is over: let the next one try."""
        with self._lock:
            self._until.pop(key, None)


refresh_gate = RefreshGate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=refresh_gate.reset)
