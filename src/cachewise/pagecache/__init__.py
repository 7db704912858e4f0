"""The page cache behind :func:`cachewise.decorators.cache_page` and the cache middleware.

One job per module: :mod:`.rules` (what may be cached, and the reason when not), :mod:`.key`
(the page key), :mod:`.entry` (the stored form of a page), :mod:`.serve` (serving a request, filling the cache
through :func:`cachewise.compute.api.get_or_compute`'s single flight), :mod:`.outage` (noticing that
the cache degraded during a request), :mod:`.budget` (how many pages one view may have cached).
See ``docs/views.md``.
"""

from __future__ import annotations

from .rules import BYPASS_REASONS

__all__ = ["BYPASS_REASONS"]
