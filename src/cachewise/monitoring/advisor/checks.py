"""System checks of the advisor (registered when ``CachewiseConfig.ready`` imports this).

========================  =========================================================================
``cachewise.E070``        ``CACHEWISE_ADVISOR_ALIAS`` names no cache in ``CACHES``
``cachewise.W070``        ``AdvisorMiddleware`` is not first in ``MIDDLEWARE``
``cachewise.W071``        the advisor records, but no ORM write is counted (no change rates, no TTLs)
========================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning

from cachewise.conf import conf

from .settings import MIDDLEWARE_PATH, advisor_settings

__all__ = ["check_advisor"]


def _alias() -> list[CheckMessage]:
    alias = advisor_settings.ALIAS
    if alias in settings.CACHES:
        return []
    return [
        CheckError(
            f"CACHEWISE_ADVISOR_ALIAS is {alias!r}, which is not in CACHES: the advisor has nowhere "
            "to aggregate what the worker processes record.",
            hint=f"Set CACHEWISE_ADVISOR_ALIAS to one of {', '.join(settings.CACHES)} (a Redis cache).",
            obj="settings.CACHEWISE_ADVISOR_ALIAS",
            id="cachewise.E070",
        )
    ]


def _position(middleware: list[str]) -> list[CheckMessage]:
    if MIDDLEWARE_PATH not in middleware or middleware[0] == MIDDLEWARE_PATH:
        return []
    return [
        CheckWarning(
            f"{MIDDLEWARE_PATH} is not first in MIDDLEWARE: it misses the time of the middleware "
            "above it, answers they give themselves (the site-wide cache), and the cookies they set.",
            hint="Move it to the top of MIDDLEWARE.",
            obj="settings.MIDDLEWARE",
            id="cachewise.W070",
        )
    ]


def _writes() -> list[CheckMessage]:
    if conf.ORM_INVALIDATION:
        return []
    return [
        CheckWarning(
            "The advisor records traffic but CACHEWISE_ORM_INVALIDATION is off: no committed write "
            "is counted, so every table looks unchanging and every suggested TTL is the maximum.",
            hint="Remove CACHEWISE_ORM_INVALIDATION = False, or read the advice's TTLs as upper bounds.",
            obj="settings.CACHEWISE_ORM_INVALIDATION",
            id="cachewise.W071",
        )
    ]


@register(Tags.caches)
def check_advisor(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E070, W070, W071: only when the advisor records (its middleware, or the setting)."""
    if not advisor_settings.RECORD:
        return []
    return [*_alias(), *_position(list(getattr(settings, "MIDDLEWARE", ()))), *_writes()]
