"""Stampede protection: single flight, XFetch early refresh, stale-while-revalidate.

The algorithms only use the primitives of a :class:`~cachewise.store.Store` (read, fenced
fill, token lock with compare-and-delete release and compare-and-extend renewal, watch); they
know nothing of Redis commands. See ``docs/stampede.md`` for when to pick which mode.

``lock`` (single flight)
    On a miss, one caller per item takes the lock and computes; threads of the same process
    wait on a local event before any of them touches the cache (:class:`Coalescer`); callers in
    other processes subscribe to the item and are woken when the value lands, never waiting past
    the lock's remaining lease, so a holder that died is replaced as soon as its lease runs out.
    The holder re-reads after taking the lock (another caller may have filled between its miss and
    its lock: the gap that makes the usual recipe recompute twice) and renews its lease while it
    computes.
``xfetch``
    XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): before the soft expiry, each reader
    refreshes with a probability that grows as expiry nears, scaled by the measured compute time
    (``now - compute_seconds * beta * ln(random()) >= expiry``). The refresh is gated by a
    non-blocking lock, so exactly one reader refreshes and nobody waits. A cold miss uses ``lock``.
``none``
    Every missing caller computes. Fills are fenced all the same.

``stale_ttl`` keeps a value for that many seconds past its expiry: one caller refreshes (taking
the lock without waiting) and everyone else is served the old value. ``stale_if_error`` keeps it
for serving when the computation raises.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from .background import refresh_pool
from .coalesce import coalescer, refresh_gate
from .exceptions import CacheUnavailableError, SerializationError
from .monitoring.metrics import namespace_of, record
from .store import MISSING, Entry, Missing, Store

__all__ = ["MODES", "Computation", "Policy", "fetch", "refresh", "xfetch_due"]

MODES = ("lock", "xfetch", "none")


@dataclass(frozen=True)
class Policy:
    """How one call fetches: TTLs in seconds, the stampede mode and the lock's lease."""

    ttl: float | None
    mode: str = "lock"
    beta: float = 1.0
    stale_ttl: float = 0.0
    stale_if_error: float = 0.0
    lease: float = 5.0
    max_wait: float = 60.0
    background: bool = True

    @property
    def hard_ttl(self) -> float | None:
        """How long the entry is kept: its TTL plus the longest window an old value may serve."""
        if self.ttl is None:
            return None
        return self.ttl + max(self.stale_ttl, self.stale_if_error)

    def soft_expiry(self, now: float) -> float:
        return math.inf if self.ttl is None else now + self.ttl


class Computation:
    """Runs the user's compute at most once per call and remembers the outcome.

    ``store`` is False when compute returned a ``NoStore`` wrapper (``unwrap`` knows the type).
    """

    def __init__(self, compute: Callable[[], Any], unwrap: Callable[[Any], tuple[Any, bool]]) -> None:
        self._compute = compute
        self._unwrap = unwrap
        self.done = False
        self.value: Any = None
        self.store = True
        self.seconds = 0.0

    def run(self) -> Any:
        started = time.perf_counter()
        result = self._compute()
        self.seconds = time.perf_counter() - started
        self.value, self.store = self._unwrap(result)
        self.done = True
        return self.value


def xfetch_due(entry: Entry, beta: float, now: float) -> bool:
    """XFetch's test: refresh now with probability rising as the soft expiry nears."""
    if entry.compute_seconds <= 0 or math.isinf(entry.soft_expiry):
        return False
    # 1 - random() is in (0, 1], so log() is defined and <= 0.
    return now - entry.compute_seconds * beta * math.log(1.0 - random.random()) >= entry.soft_expiry


class _Lease:
    """Renews a held lock every third of its lease while the computation runs."""

    def __init__(self, store: Store, key: str, token: str, lease: float) -> None:
        self.store, self.key, self.token, self.lease = store, key, token, lease
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="cachewise-lease", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                if not self.store.extend(self.key, self.token, self.lease):
                    self.lost = True  # invalidated or expired: the fill will not be stored
                    return
            except CacheUnavailableError:
                continue  # keep trying: the lease may survive a short outage


class _Call:
    """One get-or-compute call: the store, the key, the policy and the computation."""

    def __init__(self, store: Store, key: str, policy: Policy, work: Computation, mode_label: str) -> None:
        self.store, self.key, self.policy, self.work = store, key, policy, work
        self.alias = store.alias
        self.namespace = namespace_of(key)
        self.mode_label = mode_label
        self.fallback: Entry | Missing = MISSING
        self.read_at = time.monotonic()

    def record(self, event: str, value: float = 1.0) -> None:
        record(event, self.alias, self.namespace, value)

    def fresh(self, entry: Entry | Missing) -> TypeGuard[Entry]:
        return isinstance(entry, Entry) and time.time() < entry.soft_expiry

    # Computing and filling ----------------------------------------------------------------------
    def compute(self, token: str | None, fence: str) -> Any:
        """Compute (renewing the lease when locked), then fill fenced; release on every path."""
        try:
            if token is None:
                self.work.run()
            else:
                with _Lease(self.store, self.key, token, self.policy.lease):
                    self.work.run()
        except Exception:
            if token is not None:
                self._quietly(lambda: self.store.release(self.key, token))
            if isinstance(self.fallback, Entry):
                self.record("stale")
                return self.fallback.value
            raise
        self._report()
        if not self.work.store:
            if token is not None:
                self._quietly(lambda: self.store.release(self.key, token, note="nostore"))
            return self.work.value
        now = time.time()
        entry = Entry(self.work.value, now, self.policy.soft_expiry(now), self.work.seconds)
        self._quietly(
            lambda: self.store.fill(self.key, entry, self.policy.hard_ttl, token=token, fence=fence)
        )
        return self.work.value

    def _report(self) -> None:
        from .signals import stampede_recomputed

        self.record("recompute")
        self.record("compute_seconds", self.work.seconds)
        stampede_recomputed.send(
            sender=Store,
            alias=self.alias,
            namespace=self.namespace,
            seconds=self.work.seconds,
            mode=self.mode_label,
        )

    def _quietly(self, operation: Callable[[], Any]) -> None:
        # The value is computed: a cache that fails now must not fail the request.
        try:
            operation()
        except CacheUnavailableError:
            self.record("degraded")

    # Modes --------------------------------------------------------------------------------------
    def refresh_in_place(self, entry: Entry, lock_ttl: float) -> Any:
        """Early or stale refresh: take the lock without waiting, else serve ``entry``.

        The winner hands the computation to the background pool and serves ``entry`` too, so no
        request waits (it computes in place only when background refresh is off or the pool is
        full). Either way exactly one caller holds the lock while refreshing. Threads of this
        process pass a local gate first, so a herd reading the same stale value sends one lock
        attempt per process, not one per request.
        """
        served = "hit" if self.fresh(entry) else "stale"
        gate_key = f"{self.alias}\0{self.key}"
        # A lock seen in the read means someone is refreshing: serve without trying to take it.
        if lock_ttl > 0 or not refresh_gate.try_enter(gate_key, min(self.policy.lease, 1.0)):
            self.record(served)
            return entry.value
        token = self.store.acquire(self.key, self.policy.lease)
        if token is None:  # another process refreshes: keep the gate closed for its hold time
            self.record(served)
            return entry.value
        self.fallback = entry
        if self.policy.background and refresh_pool.try_submit(lambda: self._refresh_held(token, entry)):
            self.record(served)
            return entry.value
        return self._refresh_held(token, entry)

    def _refresh_held(self, token: str, entry: Entry) -> Any:
        try:
            read = self.store.read(self.key)
            if isinstance(read.entry, Entry) and read.entry.created > entry.created:
                self.store.release(self.key, token)  # refreshed meanwhile by another caller
                return read.entry.value
            return self.compute(token, read.fence)
        finally:
            refresh_gate.leave(f"{self.alias}\0{self.key}")
            if threading.current_thread().name.startswith(refresh_pool.name):
                _close_db_connections()

    def single_flight(self) -> Any:
        """Compute under the item's lock, or wait for the holder's value (see the module doc)."""
        deadline = time.monotonic() + self.policy.max_wait
        while True:
            token = self.store.acquire(self.key, self.policy.lease)
            if token is not None:
                return self._hold(token)
            outcome = self._wait(deadline)
            if outcome is not MISSING:
                return outcome
            if self.work.done:
                return self.work.value
            if time.monotonic() >= deadline:  # waited long enough for a holder: compute our own
                return self.compute(None, self.store.read(self.key).fence)

    def _hold(self, token: str) -> Any:
        read = self.store.read(self.key)
        # Re-check: another caller may have filled between our miss and our lock.
        if self.fresh(read.entry):
            self.store.release(self.key, token)
            self.record("lock_wait")
            return read.entry.value
        return self.compute(token, read.fence)

    def _wait(self, deadline: float) -> Any:
        """Wait for the holder: the value (or what this caller computed), or MISSING to retry."""
        started = time.monotonic()
        with self.store.watch(self.key) as watch:
            while True:
                read = self.store.read_waiting(self.key)
                if self.fresh(read.entry):
                    self._waited(started)
                    return read.entry.value
                left = deadline - time.monotonic()
                if read.lock_ttl <= 0 or left <= 0:
                    return MISSING  # free (holder done or dead): try to take it
                note = watch.wait(min(read.lock_ttl, left))
                if note == "nostore":
                    # The holder's value was not to be cached: compute our own, like it did.
                    self._waited(started)
                    return self.compute(None, read.fence)

    def _waited(self, started: float) -> None:
        self.record("lock_wait")
        self.record("lock_wait_seconds", time.monotonic() - started)


def _close_db_connections() -> None:
    # A background refresh may have opened database connections in a pool thread: close them,
    # as Django does at the end of a request, so they do not outlive the thread's work.
    from django.db import connections

    connections.close_all()


def fetch(store: Store, key: str, policy: Policy, work: Computation) -> Any:
    """The value of ``key``: cached, refreshed or computed according to ``policy``.

    A cache that cannot be reached is no reason to fail: the value is computed and returned
    (fail open), and counted by the store's failure policy.
    """
    call = _Call(store, key, policy, work, policy.mode)
    try:
        return _fetch(call)
    except (CacheUnavailableError, SerializationError):
        call.record("degraded")
        if work.done:
            return work.value
        if isinstance(call.fallback, Entry):
            call.record("stale")
            return call.fallback.value
        return work.run()


def _fetch(call: _Call) -> Any:
    policy = call.policy
    read = call.store.read(call.key)
    entry, now = read.entry, time.time()
    if not isinstance(entry, Missing):
        if now < entry.soft_expiry:
            if policy.mode == "xfetch" and xfetch_due(entry, policy.beta, now):
                call.mode_label = "xfetch"
                return call.refresh_in_place(entry, read.lock_ttl)
            call.record("hit")
            return entry.value
        if now < entry.soft_expiry + policy.stale_ttl:
            call.mode_label = "stale"
            return call.refresh_in_place(entry, read.lock_ttl)
        if now < entry.soft_expiry + policy.stale_if_error:
            call.fallback = entry
    call.record("miss")
    if policy.mode == "none":
        return call.compute(None, read.fence)
    return _coalesced(call)


def _coalesced(call: _Call) -> Any:
    full_key = f"{call.alias}\0{call.key}"
    flight, leader = coalescer.join(full_key, call.read_at)
    if not leader:
        assert flight is not None
        started = time.monotonic()
        landed = flight.done.wait(timeout=call.policy.max_wait + call.policy.lease)
        if landed and flight.ok:
            call._waited(started)
            return flight.value
        if landed and flight.nostore:
            # The leader's value was not to be cached: compute our own, as it did.
            return call.compute(None, call.store.read(call.key).fence)
        return call.single_flight()  # the leader failed: fetch for ourselves
    ok, value = False, None
    try:
        value = call.single_flight()
        ok = call.work.store or not call.work.done
        return value
    finally:
        nostore = call.work.done and not call.work.store
        coalescer.land(full_key, flight, ok, value if ok else None, nostore)


def refresh(store: Store, key: str, policy: Policy, work: Computation) -> Any:
    """Compute now and store the result (fenced: an invalidation meanwhile wins)."""
    call = _Call(store, key, policy, work, "refresh")
    fence = store.read(key).fence
    return call.compute(None, fence)
