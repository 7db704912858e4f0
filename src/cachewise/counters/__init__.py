"""Counters: atomic increments in the cache, drained exactly once into the database.

``counter`` holds ``Counter``; ``redis`` and ``scripts`` its Redis side; ``batches`` and
``rollback`` the exactly-once flush; ``guard`` (eviction policy) and ``replicas`` (``WAIT``) what
keeps an increment from being lost; ``apply`` the ready-made ``increment_field``. The public names
are re-exported here lazily (PEP 562), as in :mod:`cachewise`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Counter", "CounterId", "increment_field"]

_EXPORTS = {
    "Counter": "cachewise.counters.counter",
    "CounterId": "cachewise.counters.ids",
    "increment_field": "cachewise.counters.apply",
}

if TYPE_CHECKING:  # pragma: no cover - static view of the lazy names
    from .apply import increment_field
    from .counter import Counter
    from .ids import CounterId


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cachewise.counters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
