"""Raw Redis clients behind Django cache aliases: ``get_redis_client(alias)``, ``redis_client_of(cache)``.

The one way cachewise (the store, the ORM, metrics, the CLI) and projects reach the redis-py
client of an alias. Works for cachewise's own backend, Django's built-in ``RedisCache`` and
django-redis, so code that needs a Redis command the cache API lacks (a Lua script, a pipeline,
SCAN) can use it on whichever of the three a project configured. The client is the backend's own
(shared pool, same server and database); keys are *not* prefixed: build them with
``cache.make_and_validate_key(key)``.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from cachewise.exceptions import ConfigurationError

__all__ = ["get_redis_client", "redis_client_of"]


def redis_client_of(cache: BaseCache, *, write: bool = True) -> Any | None:
    """The raw redis-py client behind ``cache`` (the primary for ``write``), or None when not Redis.

    Django's built-in backend builds a new ``redis.Redis`` on its pool per call: callers on a
    hot path keep the client they get (the pool is thread-safe).
    """
    get_client = getattr(cache, "get_client", None)
    if callable(get_client) and hasattr(cache, "resilience"):  # cachewise
        return get_client(write=write)
    if isinstance(cache, DjangoRedisCache):
        return cache._cache.get_client(write=write)
    client = getattr(cache, "client", None)
    if client is not None and callable(getattr(client, "get_client", None)):  # django-redis
        return client.get_client(write=write)
    if callable(get_client):  # another backend following cachewise's hook
        return get_client(write=write)
    return None


def get_redis_client(alias: str = "default", *, write: bool = True) -> redis.Redis:
    """The raw redis-py client of cache ``alias`` (the primary for ``write``, else maybe a replica).

    Raise :class:`ConfigurationError` when ``alias`` is not a Redis-backed cache.
    """
    cache = caches[alias]
    client = redis_client_of(cache, write=write)
    if client is None:
        raise ConfigurationError(
            f"cache {alias!r} ({type(cache).__module__}.{type(cache).__name__}) is not a Redis cache: "
            "use cachewise.backends.redis.RedisCache, django.core.cache.backends.redis.RedisCache or "
            "django_redis.cache.RedisCache"
        )
    return client  # type: ignore[no-any-return]
