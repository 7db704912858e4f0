"""``cache.client`` and ``get_redis_connection()``: the two ways third-party code reaches django-redis' Redis.

Code written for django-redis calls ``django_redis.get_redis_connection(alias)`` or
``caches[alias].client.get_client(write)`` to run commands the cache API lacks. cachewise
offers both with the same signatures: :func:`cachewise.get_redis_connection` (change the import)
and :attr:`RedisCache.client <cachewise.backends.redis.RedisCache.client>` (works unchanged).
The client is the backend's own redis-py client (shared bounded pool, no key prefix): build keys
with ``client.make_key(key)``; commands on it do not go through the failure policy unless wrapped
in ``cache.resilience.call()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cachewise.exceptions import ConfigurationError
from cachewise.store.raw_client import get_redis_client

if TYPE_CHECKING:
    import redis

    from .redis import RedisCache

__all__ = ["CompatClient", "get_redis_connection"]


class CompatClient:
    """The part of django-redis' ``DefaultClient`` that third-party apps use: ``get_client`` and keys."""

    def __init__(self, cache: RedisCache) -> None:
        self._backend = cache

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> redis.Redis:
        """The raw redis-py client: the primary for ``write``, else a replica when LOCATION lists some."""
        return self._backend.get_client(write=write)

    def make_key(self, key: str, version: int | None = None, prefix: str | None = None) -> str:
        """The full Redis key of ``key`` (``KEY_PREFIX``, or ``prefix``, and the version)."""
        if prefix is None:
            return self._backend.make_key(key, version)
        chosen = self._backend.version if version is None else version
        return str(self._backend.key_func(key, prefix, chosen))

    def encode(self, value: Any) -> bytes | int:
        """The stored form of ``value`` in the cache's value format."""
        return self._backend.encode(value)

    def decode(self, value: bytes) -> Any:
        """The value stored as ``value``; raises SerializationError when it cannot be read."""
        return self._backend.decode(value)

    @property
    def _serializer(self) -> Any:
        """The serializer instance (code written for django-redis inspects it)."""
        return self._backend.options.format.serializer

    def _has_compression_enabled(self) -> bool:
        return self._backend.options.format.compressor is not None

    def close(self) -> None:
        """Nothing to close: connections return to the shared pool after each command."""


def get_redis_connection(alias: str = "default", write: bool = True) -> redis.Redis:
    """django-redis' ``get_redis_connection``: the raw client of cache ``alias``.

    Works for cachewise's backend, Django's built-in ``RedisCache`` and django-redis; raises
    :class:`NotImplementedError` for any other backend, as django-redis does.
    """

    try:
        return get_redis_client(alias, write=write)
    except ConfigurationError as exc:
        raise NotImplementedError("This backend does not support this feature") from exc
