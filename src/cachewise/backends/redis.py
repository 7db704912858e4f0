"""Placeholder cachewise Redis backend: Django's RedisCache with one reused client.

Replaced by the full backend (issue: cachewise RedisCache backend). It exists so that
``caches_from_url()`` works from the first commit.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

__all__ = ["RedisCache"]


class RedisCache(DjangoRedisCache):
    """Django's RedisCache, exposing ``get_client()`` for cachewise's Redis fast paths."""

    def get_client(self, *, write: bool = True) -> redis.Redis:
        """The raw redis-py client (no key prefix applied) for ``write`` or read operations."""
        client: Any = self._cache.get_client(write=write)
        return client  # type: ignore[no-any-return]
