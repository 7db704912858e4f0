"""System check W035: cache sessions without a clear answer for an outage of the session cache.

Kept apart from :mod:`cachewise.checks.caches` (imported by it, so ``ready()`` registers it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

__all__ = ["check_session_outage_answer"]

_MIDDLEWARE = "cachewise.middleware.CacheUnavailableMiddleware"
_SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"


@register(Tags.caches)
def check_session_outage_answer(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W035: ``SESSION_ENGINE`` on the cache, but no CacheUnavailableMiddleware above the sessions.

    While the session cache is down a login cannot store its session: without the middleware
    (first, above ``SessionMiddleware``) it ends in a 500 and an error report instead of a 503.
    """
    if getattr(settings, "SESSION_ENGINE", "") != "django.contrib.sessions.backends.cache":
        return []
    stack = list(getattr(settings, "MIDDLEWARE", None) or [])
    if _SESSIONS not in stack:
        return []
    if _MIDDLEWARE in stack and stack.index(_MIDDLEWARE) < stack.index(_SESSIONS):
        return []
    return [
        CheckWarning(
            "Sessions live in the cache (SESSION_ENGINE='django.contrib.sessions.backends.cache') but "
            f"{_MIDDLEWARE!r} is not above {_SESSIONS!r}: while the session cache is down, a login "
            "(or any first session write) fails with a 500 instead of a retryable 503.",
            hint=f"Put {_MIDDLEWARE!r} first in MIDDLEWARE (see docs/guarantees.md).",
            id="cachewise.W035",
        )
    ]
