"""Stampede protection: single flight, XFetch early refresh, stale-while-revalidate.

The algorithms only use the primitives of a :class:`~cachewise.store.adapter.Store` (read, fenced
fill, token lock with compare-and-delete release and compare-and-extend renewal, watch); they
know nothing of Redis commands. See ``docs/stampede.md`` for when to pick which mode.

``lock`` (single flight)
    On a miss, one caller per item takes the lock and computes; threads of the same process
    wait on a local event before any of them touches the cache (:class:`Coalescer`); callers in
    other processes subscribe to the item and are woken when the value lands, never waiting past
    the lock's remaining lease, so a holder that died is replaced as soon as its lease runs out.
    The holder re-reads after taking the lock (another caller may have filled between its miss and
    its lock: the gap that makes a check-then-lock recompute twice) and renews its lease while it
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
from typing import Any, Generic, Literal, TypeGuard, TypeVar, get_args

from django.db import connections

from cachewise.exceptions import CacheUnavailableError, SerializationError
from cachewise.monitoring.metrics import namespace_of, record
from cachewise.signals import stampede_recomputed
from cachewise.store.adapter import MISSING, NO_FENCE, Entry, Held, Missing, Read, Store
from cachewise.store.fill_budget import FillBudget

from .background import refresh_pool
from .coalesce import coalescer, refresh_gate
from .lease import LeaseRenewal

__all__ = [
    "MODES",
    "Capped",
    "Computation",
    "LeaseRenewal",
    "Policy",
    "StampedeMode",
    "fetch",
    "refresh",
    "xfetch_due",
]

T = TypeVar("T")
W = TypeVar("W")  # what compute returns: T, or T wrapped to say "do not store"

#: The stampede modes, in one place: the type every ``stampede=`` argument takes (so a typo is a
#: mypy error) and, through ``MODES``, the runtime check for callers that are not type-checked.
StampedeMode = Literal["lock", "xfetch", "none"]
MODES: tuple[StampedeMode, ...] = get_args(StampedeMode)


@dataclass(frozen=True)
class Policy:
    """How one call fetches: TTLs in seconds, the stampede mode and the lock's lease."""

    ttl: float | None
    mode: StampedeMode = "lock"
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


class Capped:
    """Return ``Capped(value, budget)`` from a compute to store ``value`` only within ``budget``.

    The budget is counted by the fenced fill itself (:class:`~cachewise.store.fill_budget.FillBudget`:
    one script on Redis); a refused value is handled as a ``NoStore`` one (waiters compute for
    themselves) and ``budget.refused`` tells the caller.
    """

    __slots__ = ("budget", "value")

    def __init__(self, value: Any, budget: FillBudget) -> None:
        self.value, self.budget = value, budget


class Computation(Generic[T]):
    """Runs the user's compute at most once per call and remembers the outcome.

    ``store`` is False when compute returned a ``NoStore`` wrapper (``unwrap`` knows the type).
    ``T`` is the type of the value, after unwrapping. ``budget``: from a :class:`Capped` result.
    """

    def __init__(self, compute: Callable[[], W], unwrap: Callable[[W], tuple[T, bool]]) -> None:
        self._compute = compute
        self._unwrap = unwrap
        self.done = False
        self.value: T  # set by run(); read only once ``done``
        self.store = True
        self.seconds = 0.0
        self.budget: FillBudget | None = None

    def run(self) -> T:
        started = time.perf_counter()
        result = self._compute()
        self.seconds = time.perf_counter() - started
        if isinstance(result, Capped):
            self.budget, result = result.budget, result.value
        self.value, self.store = self._unwrap(result)
        self.done = True
        return self.value


def xfetch_due(entry: Entry, beta: float, now: float) -> bool:
    """XFetch's test: refresh now with probability rising as the soft expiry nears."""
    if entry.compute_seconds <= 0 or math.isinf(entry.soft_expiry):
        return False
    # 1 - random() is in (0, 1], so log() is defined and <= 0.
    return now - entry.compute_seconds * beta * math.log(1.0 - random.random()) >= entry.soft_expiry


class _Call:
    """One get-or-compute call: the store, the key, the policy and the computation."""

    def __init__(
        self, store: Store, key: str, policy: Policy, work: Computation[Any], mode_label: str
    ) -> None:
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
        settled = self._settle(fence)
        try:
            if token is None:
                self.work.run()
            else:
                with LeaseRenewal(
                    lambda: self.store.extend(self.key, token, self.policy.lease), self.policy.lease
                ):
                    self.work.run()
        except Exception:  # the caller's compute failed, whatever it raised: free the lock, then decide
            if token is not None:
                self._quietly(lambda: self.store.release(self.key, token))
            if isinstance(self.fallback, Entry):
                self.record("stale")
                return self.fallback.value
            raise
        self._report()
        if not self.work.store or settled is None:
            if token is not None:
                self._quietly(lambda: self.store.release(self.key, token, note="nostore"))
            return self.work.value
        now = time.time()
        entry = Entry(self.work.value, now, self.policy.soft_expiry(now), self.work.seconds)
        budget = self.work.budget
        try:
            self._quietly(
                lambda: self.store.fill(
                    self.key, entry, self.policy.hard_ttl, token=token, fence=settled, budget=budget
                )
            )
            if budget is not None and budget.refused:
                self.work.store = False  # as a NoStore: local waiters compute for themselves
        except Exception:
            # The value cannot be encoded (a lambda under pickle, a datetime under JSON): the fill
            # never reached the server, so the lock is still ours. Free it now, or every other
            # caller would wait out the whole lease for a value that will never land.
            if token is not None:
                self._quietly(lambda: self.store.release(self.key, token))
            raise
        return self.work.value

    def _settle(self, fence: str) -> str | None:
        """The fence this fill is checked against, established *before* computing.

        A fence the read found missing ("0") is created now with a value no earlier fence of
        the item held: a fence that an invalidation advanced and the cache then evicted would
        otherwise read as "0" again, and a fill computed before that invalidation would pass.
        None when the cache cannot be reached: compute, serve, store nothing.
        """
        if fence != NO_FENCE:
            return fence
        try:
            return self.store.settle_fence(self.key)
        except CacheUnavailableError:
            self.record("degraded")
            return None

    def _report(self) -> None:

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
            token, read = self.store.acquire_read(self.key, self.policy.lease)
            if token is not None and read is not None:
                return self._hold(token, read)
            outcome = self._wait(deadline)
            if outcome is not MISSING:
                return outcome
            if self.work.done:
                return self.work.value
            if time.monotonic() >= deadline:  # waited long enough for a holder: compute our own
                return self.compute(None, self.store.read(self.key).fence)

    def _hold(self, token: str, read: Read) -> Any:
        # Re-check (read as the lock was taken): another caller may have filled between our
        # miss and our lock.
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

    connections.close_all()


def fetch(
    store: Store,
    key: str,
    policy: Policy,
    work: Computation[T],
    *,
    missing: bool = False,
    held: Held | None = None,
) -> T:
    """The value of ``key``: cached, refreshed or computed according to ``policy``.

    A cache that cannot be reached is no reason to fail: the value is computed and returned
    (fail open), and counted by the store's failure policy. ``missing``: the caller has just
    read the key and found nothing, so the first read is skipped (the lock script re-reads).
    ``held``: that read also took the key's lock; compute and fill under it.
    """
    # Values read from the cache are untyped (Any); this is where they become ``T``, which is
    # what this key's computation stored. Annotated locals, not cast(): no call on the hit path.
    call = _Call(store, key, policy, work, policy.mode)
    try:
        if held is not None:
            value: T = _under(call, held)
        else:
            value = _missed(call, NO_FENCE) if missing else _fetch(call)
    except (CacheUnavailableError, SerializationError):
        call.record("degraded")
        if work.done:
            return work.value
        if isinstance(call.fallback, Entry):
            call.record("stale")
            stale: T = call.fallback.value
            return stale
        return work.run()
    return value


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
    return _missed(call, read.fence)


def _missed(call: _Call, fence: str) -> Any:
    call.record("miss")
    if call.policy.mode == "none":
        return call.compute(None, fence)
    return _coalesced(call)


def _under(call: _Call, held: Held) -> Any:
    # The only holder of the lock computes: not through the process' coalescer, whose leader
    # (another thread that read the key missing without getting the lock) waits on this fill.
    call.record("miss")
    return call._hold(held.token, Read(MISSING, held.fence, math.inf))


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


def refresh(store: Store, key: str, policy: Policy, work: Computation[T]) -> T:
    """Compute now and store the result (fenced: an invalidation meanwhile wins)."""
    call = _Call(store, key, policy, work, "refresh")
    fence = store.read(key).fence
    value: T = call.compute(None, fence)
    return value
