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
    "cache_metrics_collected",
    "circuit_state_changed",
    "page_invalidated",
    "stampede_recomputed",
]

#: A cache operation failed and was answered by the failure policy instead of the server.
#: Arguments: ``alias`` (str), ``operation`` (str, e.g. "get"), ``error`` (Exception),
#: ``action``: what the caller got: "miss", "skipped" (not stored), "fallback" (answered from the
#: database instead), "deferred" (an ORM invalidation recorded for delivery once the cache
#: answers), "unconfirmed" (an ORM invalidation the primary has but no replica confirmed within
#: ``CACHEWISE_ORM_REPLICA_TIMEOUT``) or "raised" (only when the caller saw an exception).
cache_degraded = Signal()

#: The circuit breaker of an alias changed state.
#: Arguments: ``alias`` (str), ``old`` and ``new`` (one of "closed", "open", "half-open").
circuit_state_changed = Signal()

#: Cached data was invalidated. Arguments: ``alias`` (str), ``namespace`` (str), ``reason`` (str).
cache_invalidated = Signal()

#: Cached pages were purged by URL (:func:`cachewise.invalidate_page`, ``invalidate --path`` or
#: ``--prefix``), after the bump. Arguments: ``path`` (str, decoded), ``host`` (str or None: every
#: host), ``prefix`` (bool: the whole subtree), ``aliases`` (tuple of the cache aliases bumped).
#: Connect a receiver to forward the purge to a CDN or reverse proxy.
page_invalidated = Signal()

#: A response or fragment was deliberately not cached. Arguments: ``alias`` (str),
#: ``reason`` (str, one of the documented bypass reasons), ``path`` (str).
cache_bypassed = Signal()

#: A value was recomputed after a miss or an early refresh. Arguments: ``alias`` (str),
#: ``namespace`` (str), ``seconds`` (float, measured compute time), ``mode`` (str).
stampede_recomputed = Signal()

#: A batch of this process's counter deltas was collected for export (every flush interval, on a
#: stats read and at exit; never per request). Arguments: ``alias`` (str), ``deltas``
#: (dict mapping ``(event, namespace)`` to the amount added since the previous batch). Each
#: recorded amount is in exactly one batch, whether or not Redis is reachable, so a StatsD or
#: Datadog receiver can forward them as counters. Sent with ``send_robust``.
cache_metrics_collected = Signal()
