"""Compute and cache: ``get_or_compute``, ``@cached``, ``invalidate`` and what keeps them safe.

``api`` holds the calls applications make; ``stampede`` (single flight, XFetch early refresh,
stale-while-revalidate), ``coalesce`` (threads of one process share one fetch), ``background``
(bounded refresh pools) and ``namespace`` (``Namespace``: versioned keys) hold the machinery.
The public names are re-exported here lazily (PEP 562), so importing one submodule does not load
the whole stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "AsyncCachedFunction",
    "CachedDecorator",
    "CachedFunction",
    "FetchOptions",
    "NoStore",
    "StampedeMode",
    "aget_or_compute",
    "cached",
    "get_or_compute",
    "invalidate",
]

if TYPE_CHECKING:  # pragma: no cover - static view of the lazy names
    from .api import (
        AsyncCachedFunction,
        CachedDecorator,
        CachedFunction,
        FetchOptions,
        NoStore,
        StampedeMode,
        aget_or_compute,
        cached,
        get_or_compute,
        invalidate,
    )


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'cachewise.compute' has no attribute {name!r}")
    value = getattr(importlib.import_module("cachewise.compute.api"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
