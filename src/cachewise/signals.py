"""Django signals cachewise sends, so any sink (logging, Sentry, StatsD) can observe the cache.

Every signal is sent with ``sender`` set to the class or module that observed the event, and the
keyword arguments listed beside it. Receivers must be cheap: several fire on the request path.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "cache_bypassed",
    "cache_degraded",
    "cache_invalidated",
    "circuit_state_changed",
    "stampede_recomputed",
]

#: A cache operation failed and was answered by the failure policy instead of the server.
#: Arguments: ``alias`` (str), ``operation`` (str, e.g. "get"), ``error`` (Exception),
#: ``action`` ("miss", "skipped", "raised").
cache_degraded = Signal()

#: The circuit breaker of an alias changed state.
#: Arguments: ``alias`` (str), ``old`` and ``new`` (one of "closed", "open", "half-open").
circuit_state_changed = Signal()

#: Cached data was invalidated. Arguments: ``alias`` (str), ``namespace`` (str), ``reason`` (str).
cache_invalidated = Signal()

#: A response or fragment was deliberately not cached. Arguments: ``alias`` (str),
#: ``reason`` (str, one of the documented bypass reasons), ``path`` (str).
cache_bypassed = Signal()

#: A value was recomputed after a miss or an early refresh. Arguments: ``alias`` (str),
#: ``namespace`` (str), ``seconds`` (float, measured compute time), ``mode`` (str).
stampede_recomputed = Signal()
