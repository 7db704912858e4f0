"""Typed accessors for the advisor's ``CACHEWISE_ADVISOR_*`` settings, read on access.

They live here rather than in :mod:`cachewise.conf` so the advisor stays one removable package;
they read through ``conf.get`` like every other sub-module setting.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from cachewise.conf import conf

__all__ = ["MIDDLEWARE_PATH", "AdvisorSettings", "advisor_settings"]

#: The dotted path projects put in ``MIDDLEWARE``; it never moves.
MIDDLEWARE_PATH = "cachewise.monitoring.advisor.middleware.AdvisorMiddleware"


class AdvisorSettings:
    """The advisor's settings with their documented defaults."""

    @property
    def RECORD(self) -> bool:
        """Record traffic: ``None`` (default) means "when ``AdvisorMiddleware`` is in MIDDLEWARE".

        ``True`` also counts table writes in processes that serve no request (workers, commands);
        ``False`` turns recording off without removing the middleware.
        """
        value = conf.get("ADVISOR_RECORD", None)
        if value is None:
            return MIDDLEWARE_PATH in getattr(settings, "MIDDLEWARE", ())
        return bool(value)

    @property
    def ALIAS(self) -> str:
        """Cache alias whose Redis aggregates every process's advisor counters."""
        return str(conf.get("ADVISOR_ALIAS", "default"))

    @property
    def MAX_ROUTES(self) -> int:
        """Routes recorded (per process and fleet-wide in Redis); later ones count as ``other``."""
        return int(conf.get("ADVISOR_MAX_ROUTES", 200))

    @property
    def MAX_URLS(self) -> int:
        """URLs a process remembers for reuse and digests (least recently seen forgotten first)."""
        return int(conf.get("ADVISOR_MAX_URLS", 10000))

    @property
    def MAX_QUERIES(self) -> int:
        """Distinct (statement, parameters) a process remembers to find repeated queries."""
        return int(conf.get("ADVISOR_MAX_QUERIES", 20000))

    @property
    def SAMPLE_RATE(self) -> float:
        """Share of requests recorded in full (counted with weight 1/rate); the rest cost a coin toss.

        A GET that sets a cookie is always counted as one, sampled or not: one such response is
        enough to rule page caching out.
        """
        return float(conf.get("ADVISOR_SAMPLE_RATE", 0.1))

    @property
    def DIGEST_RATE(self) -> float:
        """Share of recorded GET responses whose body is hashed and compared with the URL's last one."""
        return float(conf.get("ADVISOR_DIGEST_RATE", 0.1))

    @property
    def INCLUDE(self) -> tuple[re.Pattern[str], ...]:
        """Path regexes to record (empty: every path)."""
        return tuple(re.compile(pattern) for pattern in conf.get("ADVISOR_INCLUDE", ()))

    @property
    def EXCLUDE(self) -> tuple[re.Pattern[str], ...]:
        """Path regexes never recorded (checked before the include list)."""
        return tuple(re.compile(pattern) for pattern in conf.get("ADVISOR_EXCLUDE", ()))

    @property
    def LARGE_RESPONSE(self) -> int:
        """Mean response size in bytes from which ``advise`` warns (cache memory, transfer time)."""
        return int(conf.get("ADVISOR_LARGE_RESPONSE", 1_000_000))

    @property
    def MIN_REQUESTS(self) -> int:
        """Requests a route needs before ``advise`` recommends anything for it."""
        return int(conf.get("ADVISOR_MIN_REQUESTS", 20))

    @property
    def LOOKUP_SECONDS(self) -> float:
        """What one cache read costs, subtracted from every saving (a loopback Redis GET: ~0.15 ms)."""
        return float(conf.get("ADVISOR_LOOKUP_SECONDS", 0.00015))

    def get(self, name: str, default: Any = None) -> Any:
        """Any other ``CACHEWISE_ADVISOR_<name>``."""
        return conf.get(f"ADVISOR_{name}", default)


advisor_settings = AdvisorSettings()
