"""Raw Redis clients behind Django cache aliases: ``get_redis_client(alias)``.

Works for cachewise's own backend, Django's built-in ``RedisCache`` and django-redis, so code that
needs a Redis command the cache API lacks (a Lua script, a pipeline, SCAN) can use it on whichever
of the three a project configured. The client is the backend's own (shared pool, same server and
database); keys are *not* prefixed: build them with ``cache.make_and_validate_key(key)``.
"""

from __future__ import annotations

from typing import Any

import redis

from .exceptions import ConfigurationError

__all__ = ["get_redis_client"]


def get_redis_client(alias: str = "default", *, write: bool = True) -> redis.Redis:
    """The raw redis-py client of cache ``alias`` (the primary for ``write``, else maybe a replica).

    Raise :class:`ConfigurationError` when ``alias`` is not a Redis-backed cache.
    """
    from django.core.cache import caches

    cache: Any = caches[alias]
    get_client = getattr(cache, "get_client", None)
    if get_client is not None and hasattr(cache, "resilience"):  # cachewise
        return get_client(write=write)  # type: ignore[no-any-return]
    inner = getattr(type(cache), "_cache", None)
    if inner is not None and hasattr(cache._cache, "get_client"):  # Django's built-in RedisCache
        return cache._cache.get_client(write=write)  # type: ignore[no-any-return]
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "get_client"):  # django-redis
        return client.get_client(write=write)  # type: ignore[no-any-return]
    if get_client is not None:  # another backend following cachewise's hook
        return get_client(write=write)  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"cache {alias!r} ({type(cache).__module__}.{type(cache).__name__}) is not a Redis cache: "
        "use cachewise.backends.redis.RedisCache, django.core.cache.backends.redis.RedisCache or "
        "django_redis.cache.RedisCache"
    )
