"""Failure policy and circuit breaker, per process and cache alias.

Every network call the Redis backend makes, and every raw call another cachewise layer makes
through the backend's client (the store adapter's Lua scripts, locks, counters), goes through
:meth:`Resilience.call` (or :meth:`Resilience.acall` for coroutines)::

    cache = caches["default"]
    value = cache.resilience.call("get", lambda: client.get(key), fallback=lambda error: None)
    token = cache.resilience.call("lock", lambda: script(keys=[key], args=[ttl]))  # raises on outage

What happens on failure is decided at call time:

* An *outage* (connection refused or reset, timeout, a replica that is read-only or still
  loading) is counted (metric ``error``), fed to the breaker, logged at most
  once per ``log_interval`` per operation, and sent as :data:`~cachewise.signals.cache_degraded`.
  Then the policy of the operation decides: ``"miss"`` answers with ``fallback(error)`` (metric
  ``degraded``); ``"raise"`` raises :class:`CacheUnavailableError` (or :class:`CircuitOpenError`).
  Reads (``get``, ``get_many``, ``has_key``) follow ``on_read_error`` (default ``"miss"``); writes
  (``set``, ``set_many``, ``delete``, ``delete_many``, ``touch``, ``clear``, ``fill``) follow
  ``on_write_error`` (default ``"miss"``: not stored); ``add`` follows ``on_add_error`` and ``incr``
  ``on_incr_error`` (default ``"raise"``: faking them breaks locks and rate limits). Any other
  operation name raises. Without a ``fallback`` the call always raises.
* No free pooled connection within ``pool_timeout`` (``PoolTimeoutError``) is reported and
  handled like an outage, but not fed to the breaker: the server is not at fault.
* A *server error* that is not an outage (WRONGTYPE, OOM, a script error) is raised as
  :class:`CacheServerError` whatever the policy: hiding it would hide a bug. It proves the server
  is up, so it counts as a success for the breaker.

The breaker (one per process and alias, shared by every thread and event loop): after
``failure_threshold`` outages within ``failure_window`` seconds, or ``timeout_threshold`` of them
that were *timeouts* (each already cost its caller a whole ``socket_timeout``, so a hung server
should cost a page a second, not five), it *opens* and answers every call
without touching the network for ``cooldown`` seconds; then it lets exactly one *probe* call
through (half-open). A successful probe closes it; a failed one re-opens it for another cooldown.

Failure domains follow the topology (:mod:`cachewise.backends.topology`): on Redis Cluster each
node has a breaker of its own (``Resilience.attribute`` names the node an outage came from, and
the node's connection pool refuses calls while its breaker is open), so a dead master stops
only the keys of its slots; on Sentinel and Cluster a watcher started when a breaker opens closes
it as soon as the topology names a new master that answers (:meth:`Breaker.topology_changed`),
instead of waiting for the cooldown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cachewise.monitoring.metrics import record
from cachewise.signals import cache_degraded, circuit_state_changed

from .exceptions import CacheServerError, CacheUnavailableError, CircuitOpenError, translate_redis_error

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "Breaker",
    "FailurePolicy",
    "RateLimitedLog",
    "Resilience",
    "breaker_for",
    "reset_breakers",
]

T = TypeVar("T")
Action = Literal["miss", "raise"]
State = Literal["closed", "open", "half-open"]
CLOSED: State = "closed"
OPEN: State = "open"
HALF_OPEN: State = "half-open"

logger = logging.getLogger("cachewise.resilience")

READ_OPERATIONS = frozenset({"get", "get_many", "has_key"})
WRITE_OPERATIONS = frozenset({"set", "set_many", "delete", "delete_many", "touch", "clear", "fill"})
_ACTIONS = frozenset({"miss", "raise"})


def _redis_errors() -> tuple[type[BaseException], ...]:
    return (RedisError, OSError)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (RedisTimeoutError, TimeoutError))


class Breaker:
    """A thread-safe circuit breaker: closed -> open -> half-open (one probe) -> closed or open."""

    def __init__(
        self,
        alias: str,
        failure_threshold: int = 5,
        failure_window: float = 10.0,
        cooldown: float = 5.0,
        timeout_threshold: int = 2,
        label: str | None = None,
    ):
        self.alias = alias
        #: What the breaker guards, in logs and signals: the alias, or ``alias@host:port`` for a node.
        self.label = label or alias
        #: Called (with the breaker, outside its lock) each time it opens: the topology watchers.
        self.on_open: list[Callable[[Breaker], None]] = []
        self.failure_threshold = failure_threshold
        self.timeout_threshold = timeout_threshold
        self.failure_window = failure_window
        self.cooldown = cooldown
        self.state: State = CLOSED
        self._lock = threading.Lock()
        self._failures: deque[float] = deque(maxlen=failure_threshold)
        self._timeouts: deque[float] = deque(maxlen=timeout_threshold)
        self._opened_at = 0.0
        self._probe_started = 0.0

    def allow(self) -> bool:
        """True if a call may touch the network now (closed, or this caller is the probe)."""
        if self.state == CLOSED:  # the hot path: one attribute read, no lock
            return True
        now = time.monotonic()
        with self._lock:
            if self.state == OPEN and now - self._opened_at >= self.cooldown:
                changed = self._set_state(HALF_OPEN)
                self._probe_started = now
            elif self.state == HALF_OPEN and now - self._probe_started >= self.cooldown:
                # The probe never reported (its thread died): let another caller probe.
                self._probe_started = now
                return True
            else:
                return self.state == CLOSED
        self._announce(changed)
        return True

    def record_success(self) -> None:
        """Report a call that reached the server; closes a half-open breaker."""
        if self.state == CLOSED:
            return
        with self._lock:
            changed = self._set_state(CLOSED) if self.state == HALF_OPEN else None
            self._failures.clear()
            self._timeouts.clear()
        self._announce(changed)

    def record_failure(self, *, timeout: bool = False) -> None:
        """Report an outage (``timeout``: the call waited out its socket timeout); may open."""
        now = time.monotonic()
        with self._lock:
            changed = None
            if self.state == HALF_OPEN:
                changed = self._set_state(OPEN)
                self._opened_at = now
            elif self.state == CLOSED:
                self._failures.append(now)
                if timeout:
                    self._timeouts.append(now)
                if self._recent(self._failures, self.failure_threshold, now) or (
                    timeout and self._recent(self._timeouts, self.timeout_threshold, now)
                ):
                    changed = self._set_state(OPEN)
                    self._opened_at = now
                    self._failures.clear()
                    self._timeouts.clear()
        self._announce(changed)

    def topology_changed(self, reason: str) -> bool:
        """Close an open (or half-open) breaker at once: the topology names a master that answers.

        Called by the failover watchers (:mod:`cachewise.backends.topology`); ``reason`` is logged.
        Returns whether the breaker was closed by this call.
        """
        if self.state == CLOSED:
            return False
        with self._lock:
            if self.state == CLOSED:
                return False
            changed = self._set_state(CLOSED)
            self._failures.clear()
            self._timeouts.clear()
        logger.warning("cache %r: %s: closing the circuit breaker before its cooldown", self.label, reason)
        self._announce(changed)
        return True

    def _recent(self, times: deque[float], threshold: int, now: float) -> bool:
        return len(times) >= threshold and now - times[0] <= self.failure_window

    def reset(self) -> None:
        """Close the breaker and forget failures (tests, or after an operator fixed the server)."""
        with self._lock:
            changed = self._set_state(CLOSED)
            self._failures.clear()
            self._timeouts.clear()
        self._announce(changed)

    def _set_state(self, new: State) -> tuple[State, State] | None:
        old, self.state = self.state, new
        return None if old == new else (old, new)

    def _announce(self, changed: tuple[State, State] | None) -> None:
        if changed is None:
            return

        logger.warning("cache %r circuit breaker %s -> %s", self.label, *changed)
        circuit_state_changed.send(
            sender=Breaker, alias=self.alias, old=changed[0], new=changed[1], domain=self.label
        )
        if changed[1] == OPEN:
            for hook in list(self.on_open):
                try:
                    hook(self)
                except RuntimeError:  # no thread for the watcher: the breaker's own probe still runs
                    logger.exception("cache %r: could not start the failover watcher", self.label)


_BREAKERS: dict[tuple[Any, ...], Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(alias: str, location: str, **settings: Any) -> Breaker:
    """The process-wide breaker of ``alias`` at ``location`` with ``settings`` (made on first use).

    Every thread's backend instance of an alias gets the same breaker; new thresholds (settings
    overridden in tests) get a breaker of their own rather than silently keeping the old ones.
    """
    key = (alias, location, *sorted(settings.items()))
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(key)
        if breaker is None:
            breaker = _BREAKERS[key] = Breaker(alias, **settings)
        return breaker


def reset_breakers() -> None:
    """Close every breaker of this process (tests)."""
    with _BREAKERS_LOCK:
        breakers = list(_BREAKERS.values())
    for breaker in breakers:
        breaker.reset()


class FailurePolicy:
    """What each operation does on an outage: ``"miss"`` (fail open) or ``"raise"``."""

    def __init__(
        self,
        on_read_error: Action = "miss",
        on_write_error: Action = "miss",
        on_add_error: Action = "raise",
        on_incr_error: Action = "raise",
    ) -> None:
        for name, value in locals().items():
            if name != "self" and value not in _ACTIONS:
                raise ValueError(f"{name}={value!r}: use 'miss' (fail open) or 'raise'")
        self.on_read_error = on_read_error
        self.on_write_error = on_write_error
        self.on_add_error = on_add_error
        self.on_incr_error = on_incr_error

    def action(self, operation: str) -> Action:
        """The action for ``operation``; unknown operations raise."""
        if operation in READ_OPERATIONS:
            return self.on_read_error
        if operation in WRITE_OPERATIONS:
            return self.on_write_error
        if operation == "add":
            return self.on_add_error
        if operation == "incr":
            return self.on_incr_error
        return "raise"


class RateLimitedLog:
    """Log one line per kind at most every ``interval`` seconds, with the count of lines suppressed.

    A failure that repeats on every request (each save during an outage, each read of a degraded
    path) would otherwise write a line per request: the first line of a kind is logged, the
    repeats within ``interval`` are counted, and the next line logged says how many were dropped.
    Kinds come from code (operation and error type names); the table stays bounded anyway.
    """

    def __init__(self, interval: float, logger: logging.Logger = logger) -> None:
        self.interval = interval
        self.logger = logger
        self._last: dict[Any, float] = {}
        self._suppressed: dict[Any, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, kind: Any, message: str, *args: Any, exc_info: Any = None) -> bool:
        """Log ``message % args`` unless a line of ``kind`` was logged within ``interval``."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.interval) < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            if len(self._last) > 256:
                self._last.clear()
                self._suppressed.clear()
            self._last[kind] = now
            dropped = self._suppressed.pop(kind, 0)
        if dropped:
            message += " (%d similar lines suppressed in the last %gs)"
            args = (*args, dropped, self.interval)
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True

    def warn(self, alias: str, operation: str, error: BaseException, action: str) -> None:
        """The degraded-call line of :class:`Resilience`: one per (operation, error type)."""
        self.log(
            logging.WARNING,
            (operation, type(error).__name__),
            "cache %r %s failed (%s), answered with %s",
            alias,
            operation,
            error,
            action,
        )


class Resilience:
    """The failure policy, breaker and reporting of one cache alias; see the module docstring."""

    def __init__(self, alias: str, breaker: Breaker, policy: FailurePolicy, log_interval: float = 10.0):
        self.alias = alias
        self.breaker = breaker
        self.policy = policy
        self._log = RateLimitedLog(log_interval)
        #: What a network call raises on an outage (redis-py's errors and OSError): callers that
        #: inline :meth:`call` on a hot path catch these and hand them to :meth:`failed`.
        self.errors = _redis_errors()
        self._errors = self.errors
        #: On Redis Cluster, the breaker of the node an outage came from (None: the alias' own).
        self.attribute: Callable[[BaseException], Breaker | None] | None = None

    def call(
        self,
        operation: str,
        fn: Callable[[], T],
        *,
        fallback: Callable[[Exception], T] | None = None,
        answered: str | None = None,
    ) -> T:
        """Run ``fn`` (one network call) under the breaker and the policy of ``operation``.

        ``answered`` says what the caller gives *its* caller when this call raises (``"fallback"``:
        it answers from the database): the ``action`` reported in logs and ``cache_degraded``
        instead of ``"raised"``, which is kept for failures the end caller really sees.
        """
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.allow():
            error = CircuitOpenError(f"cache {self.alias!r}: circuit open")
            return self._degrade(operation, error, fallback, answered=answered)
        try:
            result = fn()
        except self._errors as exc:
            return self._failed(operation, exc, fallback, answered)
        if breaker.state != CLOSED:  # the hot path skips the call: closed needs no bookkeeping
            breaker.record_success()
        return result

    async def acall(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        fallback: Callable[[Exception], T] | None = None,
        answered: str | None = None,
    ) -> T:
        """The coroutine twin of :meth:`call`: ``fn`` returns an awaitable."""
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.allow():
            error = CircuitOpenError(f"cache {self.alias!r}: circuit open")
            return self._degrade(operation, error, fallback, answered=answered)
        try:
            result = await fn()
        except self._errors as exc:
            return self._failed(operation, exc, fallback, answered)
        if breaker.state != CLOSED:
            breaker.record_success()
        return result

    def failed(self, operation: str, exc: BaseException, fallback: Callable[[Exception], T] | None) -> T:
        """What :meth:`call` does when ``fn`` raised ``exc`` (one of :attr:`errors`), for inlined calls.

        The caller must have checked that the breaker is closed before the network call, as
        :meth:`call` does.
        """
        return self._failed(operation, exc, fallback)

    def _failed(
        self,
        operation: str,
        exc: BaseException,
        fallback: Callable[[Exception], T] | None,
        answered: str | None = None,
    ) -> T:
        error = translate_redis_error(exc)
        if isinstance(error, CacheServerError):
            self.breaker.record_success()  # the server answered: not an outage
            raise error from exc
        if getattr(exc, "counts_as_outage", True):  # a wait for a pooled connection is not
            domain = self.attribute(exc) if self.attribute is not None else None
            (domain or self.breaker).record_failure(timeout=_is_timeout(exc))
        return self._degrade(operation, error, fallback, cause=exc, answered=answered)

    def _degrade(
        self,
        operation: str,
        error: Exception,
        fallback: Callable[[Exception], T] | None,
        cause: BaseException | None = None,
        answered: str | None = None,
    ) -> T:
        action = self.policy.action(operation) if fallback is not None else "raise"
        shown = "raised" if action == "raise" else ("miss" if operation in READ_OPERATIONS else "skipped")
        if action == "raise" and answered is not None:
            shown = answered
        record("error", self.alias)
        self._log.warn(self.alias, operation, error, shown)
        cache_degraded.send(
            sender=Resilience, alias=self.alias, operation=operation, error=error, action=shown
        )
        if action == "raise" or fallback is None:
            if isinstance(error, CacheUnavailableError) and cause is not None:
                raise error from cause
            raise error
        record("degraded", self.alias)
        return fallback(error)

    def report_unreadable(self, operation: str, error: Exception) -> None:
        """Count and report a payload that could not be decoded (tampered, unknown format)."""
        record("error", self.alias)
        self._log.warn(self.alias, operation, error, "miss")
        cache_degraded.send(
            sender=Resilience, alias=self.alias, operation=operation, error=error, action="miss"
        )
