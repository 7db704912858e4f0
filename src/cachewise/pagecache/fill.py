"""The one place a page or fragment is read from and filled into the cache.

Every fill of the view and template layer goes through :func:`fetch_or_fill` /
:func:`afetch_or_fill`, so the stampede policy lives in one module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from django.core.cache import caches

__all__ = ["NoStore", "afetch_or_fill", "fetch_or_fill"]


class NoStore:
    """Returned by a compute function: hand ``value`` back without storing it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def fetch_or_fill(key: str, compute: Callable[[], Any], ttl: int, *, stampede: str, alias: str) -> Any:
    """The cached value of ``key``, or ``compute()``'s (stored unless it is a NoStore)."""
    cache = caches[alias]
    value = cache.get(key)
    if value is not None:
        return value
    value = compute()
    if isinstance(value, NoStore):
        return value.value
    cache.set(key, value, ttl)
    return value


async def afetch_or_fill(
    key: str, compute: Callable[[], Awaitable[Any]], ttl: int, *, stampede: str, alias: str
) -> Any:
    """Async :func:`fetch_or_fill`; ``compute`` is a coroutine function."""
    cache = caches[alias]
    value = await cache.aget(key)
    if value is not None:
        return value
    value = await compute()
    if isinstance(value, NoStore):
        return value.value
    await cache.aset(key, value, ttl)
    return value
