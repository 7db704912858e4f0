"""The placeholder ``caches_from_env()`` puts in ``CACHES`` when its environment variable is unset.

Settings must import on a machine without the variable: a Docker build running ``collectstatic``,
CI running ``makemigrations --check``, a test run whose pytest plugin swaps in a private Redis.
Raising at settings time breaks all of them, and falling back to LocMem would hide a missing URL in
production behind per-process caches. So the entry builds fine and fails loudly where a cache is
really needed: every cache operation raises :class:`CacheNotConfiguredError` naming the variable,
and ``manage.py check --deploy`` reports ``cachewise.E003``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from cachewise.caches_url import UNCONFIGURED_BACKEND as BACKEND
from cachewise.exceptions import CacheNotConfiguredError

__all__ = ["BACKEND", "UnconfiguredCache"]


class UnconfiguredCache(BaseCache):
    """A ``CACHES`` entry with no server: built without error, unusable (``LOCATION`` is the variable)."""

    def __init__(self, variable: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.variable = variable or "REDIS_URL"

    def _fail(self) -> NoReturn:
        raise CacheNotConfiguredError(
            f"this cache has no Redis URL: environment variable {self.variable} was not set when "
            f"settings were loaded (CACHES = caches_from_env()). Set {self.variable} to your Redis "
            f"URL, for example {self.variable}=redis://127.0.0.1:6379/0, and restart the process."
        )

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Raise :class:`CacheNotConfiguredError`, as every operation does."""
        self._fail()

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """Raise :class:`CacheNotConfiguredError`: a miss would hide the missing URL."""
        self._fail()

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """Raise :class:`CacheNotConfiguredError`."""
        self._fail()

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Raise :class:`CacheNotConfiguredError`."""
        self._fail()

    def delete(self, key: Any, version: int | None = None) -> bool:
        """Raise :class:`CacheNotConfiguredError`."""
        self._fail()

    def clear(self) -> None:
        """Raise :class:`CacheNotConfiguredError`."""
        self._fail()

    def close(self, **kwargs: Any) -> None:
        """Nothing to close (Django calls this at the end of every request)."""
