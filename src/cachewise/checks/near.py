"""System checks of the near cache (ids cachewise.E060-E069, W060-W069).

========================  =========================================================================
``cachewise.E060``        ``OPTIONS["near_cache"]`` on Redis Cluster, Sentinel or with replica reads,
                          where tracking cannot keep it consistent (the backend raises the same
                          :class:`~cachewise.backends.near.NearCacheRefused` at its first use)
========================  =========================================================================

Registered by :mod:`cachewise.checks.caches` (imported in the app's ``ready()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from cachewise.backends.near import NearCacheRefused
from cachewise.backends.options import BackendOptions
from cachewise.checks.redis_probe import is_cachewise_backend
from cachewise.exceptions import ConfigurationError

__all__ = ["check_near_cache_deployment"]


@register(Tags.caches)
def check_near_cache_deployment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E060: a near cache where a write could reach Redis without its invalidation reaching us."""
    messages: list[CheckMessage] = []
    for alias, entry in (getattr(settings, "CACHES", {}) or {}).items():
        options = entry.get("OPTIONS") or {}
        if not is_cachewise_backend(entry.get("BACKEND")) or not options.get("near_cache"):
            continue
        try:
            BackendOptions(entry.get("LOCATION") or "", options)
        except NearCacheRefused as exc:
            messages.append(
                Error(
                    f"CACHES[{alias!r}]: {exc}",
                    hint="Remove OPTIONS['near_cache'] from this alias, or give the near-cached keys an "
                    "alias on a single Redis server (docs/near-cache.md).",
                    obj=alias,
                    id="cachewise.E060",
                )
            )
        except ConfigurationError:
            continue  # another problem: cachewise.E004 reports it
    return messages
