"""System checks of page dependencies (registered when ``CachewiseConfig.ready`` imports this).

========================  =========================================================================
``cachewise.W030``        pages track their queries, but no ORM write invalidates anything
========================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from cachewise.conf import conf

__all__ = ["check_tracking_without_invalidation"]


@register(Tags.caches)
def check_tracking_without_invalidation(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W030: page tracking on while the ORM invalidation receivers are off.

    Cached pages then record the tables they read, and pay for it, but saves and deletes bump no
    counter: a page stays as stored until its timeout, whatever is written.
    """
    if not conf.PAGE_TRACK_QUERIES or conf.ORM_INVALIDATION:
        return []
    return [
        CheckWarning(
            "CACHEWISE_PAGE_TRACK_QUERIES is on but CACHEWISE_ORM_INVALIDATION is off: cached pages "
            "record the tables they read, yet no save, delete or bulk write bumps their versions, so "
            "a page stays as stored until its timeout.",
            hint="Remove CACHEWISE_ORM_INVALIDATION = False, or set CACHEWISE_PAGE_TRACK_QUERIES = "
            "False and call cachewise.invalidate_page() / invalidate_model() after writes.",
            obj="settings.CACHEWISE_ORM_INVALIDATION",
            id="cachewise.W030",
        )
    ]
