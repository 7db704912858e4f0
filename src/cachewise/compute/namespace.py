"""Namespace: versioned keys; invalidate a whole scope by bumping its version, safely.

A :class:`Namespace` keeps one version counter per *scope* (a category id, a user, a tenant) and
puts the current version into every key it builds; invalidating everything a scope's keys hold
is one atomic ``bump``, with no key scans::

    category = Namespace("category")
    key = category.key(cat_id, "articles", page)   # "category:v<version>:<cat_id>:articles:<page>"
    category.bump(cat_id)                          # every key built before is now unreachable

Two details make it correct where the hand-written recipe is not:

* A missing counter starts at the clock in microseconds, not at 1, and a bump moves it to
  ``max(current + 1, now)`` on Redis. A counter lost to eviction or a restart therefore restarts
  *above* every version it gave out before, so keys built with an old version (still in the cache
  until their TTL) never become live again. The recipe's ``cache.add(key, 1)`` would restart at 1
  and serve the data of version 1, 2, 3... as they are reached again.
* On Redis, :meth:`Namespace.get` reads the version and the value under it in one round trip.

Because the version is read *before* a value is computed, a fill that started before a bump is
written under the old version: it can never be read again, so a slow fill racing an
invalidation cannot resurrect stale data.

The counter of ``scope`` lives at ``make_key(name, scope, version=0)``; real versions are never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from cachewise import recovery
from cachewise.compute.api import get_or_compute
from cachewise.exceptions import CacheUnavailableError
from cachewise.keys import make_key, validate_namespace
from cachewise.monitoring.metrics import record
from cachewise.signals import cache_invalidated
from cachewise.store.adapter import MISSING
from cachewise.store.choice import get_store

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is 3.11+

    from .api import FetchOptions, NoStore

T = TypeVar("T")

__all__ = ["Namespace"]


class Namespace:
    """Version counters under ``name`` on cache ``alias``; ``ttl`` bounds a counter's life.

    Leave ``ttl`` as ``None`` (the default): a counter that expires restarts at a new, higher
    version, which is safe but drops every cached value of the scope at once.
    """

    def __init__(self, name: str, alias: str = "default", *, ttl: float | None = None) -> None:
        self.name = validate_namespace(name)
        self.alias = alias
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, alias={self.alias!r})"

    def counter_key(self, scope: Any) -> str:
        """The key of the version counter of ``scope``."""
        return make_key(self.name, scope, version=0)

    _counter_key = counter_key

    def version(self, scope: Any) -> int:
        """The current version of ``scope`` (created on first use)."""
        recovery.tick()
        return get_store(self.alias).version(self._counter_key(scope), self.ttl)

    def bump(self, scope: Any) -> int:
        """Invalidate every key of ``scope`` by advancing its version atomically; return it.

        If the cache cannot be reached, the bump is recorded in the database (see
        :mod:`cachewise.recovery`; needs ``cachewise`` in ``INSTALLED_APPS``, migrated) and
        applied by the first process that reaches the cache again, then
        :class:`~cachewise.exceptions.CacheUnavailableError` is raised as before.
        """

        key = self._counter_key(scope)
        try:
            version = get_store(self.alias).bump(key, self.ttl)
        except CacheUnavailableError:
            recovery.record(self.alias, "namespace", [key], ttl=self.ttl)
            raise
        record("invalidate", self.alias, self.name)
        cache_invalidated.send(sender=Namespace, alias=self.alias, namespace=self.name, reason="bump")
        return version

    def key(self, scope: Any, *parts: Any) -> str:
        """A key for ``parts`` under the current version of ``scope`` (one round trip)."""
        return self.key_for(self.version(scope), scope, *parts)

    def key_for(self, version: int, scope: Any, *parts: Any) -> str:
        """The key ``parts`` of ``scope`` have under ``version`` (no round trip)."""
        return make_key(self.name, scope, *parts, version=version)

    def get(self, scope: Any, *parts: Any, default: Any = None) -> Any:
        """The value cached at ``key(scope, *parts)``, reading the version in the same round trip."""
        recovery.tick()
        store = get_store(self.alias)
        _, value = store.versioned_get(
            self._counter_key(scope), self.ttl, lambda version: self.key_for(version, scope, *parts)
        )
        return default if value is MISSING else value

    # Two signatures for the reason given at cachewise.compute.api.get_or_compute.
    @overload
    def get_or_compute(
        self,
        scope: Any,
        *parts: Any,
        compute: Callable[[], NoStore[T]],
        ttl: float | None,
        **options: Unpack[FetchOptions],
    ) -> T: ...
    @overload
    def get_or_compute(
        self,
        scope: Any,
        *parts: Any,
        compute: Callable[[], T | NoStore[T]],
        ttl: float | None,
        **options: Unpack[FetchOptions],
    ) -> T: ...
    def get_or_compute(
        self,
        scope: Any,
        *parts: Any,
        compute: Callable[[], T | NoStore[T]],
        ttl: float | None,
        **options: Unpack[FetchOptions],
    ) -> T:
        """:func:`~cachewise.compute.api.get_or_compute` on ``key(scope, *parts)``.

        The version is read before ``compute`` runs, so a bump during a slow computation sends
        its result to a key nobody reads any more. ``options`` are get_or_compute's.
        """
        return get_or_compute(self.key(scope, *parts), compute, ttl, alias=self.alias, **options)
