"""``MISSING``: the one "no value" marker of cachewise (``None`` is a cacheable value).

At the bottom of the package (imports nothing of cachewise) so the backend, the store and the
ORM all answer absence with the same object.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MISSING", "Missing"]


class Missing:
    """Type of :data:`MISSING`: "no value", distinct from a cached ``None``."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


#: The "no value" sentinel: ``None`` is a cacheable value, so absence needs its own marker.
MISSING: Final = Missing()
