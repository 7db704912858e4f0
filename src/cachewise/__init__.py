"""cachewise: correct, fast and safe-by-default caching for Django on Redis.

The public Python API is re-exported here. Names are resolved lazily (PEP 562) so that
``import cachewise`` reads no setting, opens no socket and imports no heavy module; a test keeps
``__all__`` and ``_EXPORTS`` in step.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CacheNotConfiguredError": "cachewise.exceptions",
    "CacheServerError": "cachewise.exceptions",
    "CacheUnavailableError": "cachewise.exceptions",
    "CachewiseError": "cachewise.exceptions",
    "CircuitOpenError": "cachewise.exceptions",
    "ConfigurationError": "cachewise.exceptions",
    "Counter": "cachewise.counters.counter",
    "EmbeddedRedis": "cachewise.embedded",
    "InvalidKeyError": "cachewise.exceptions",
    "LockError": "cachewise.exceptions",
    "MissingExtraError": "cachewise.exceptions",
    "NoStore": "cachewise.compute.api",
    "Namespace": "cachewise.compute.namespace",
    "SerializationError": "cachewise.exceptions",
    "SignatureError": "cachewise.exceptions",
    "UnconfirmedWriteError": "cachewise.exceptions",
    "aget_or_compute": "cachewise.compute.api",
    "cached": "cachewise.compute.api",
    "caches_from_env": "cachewise.caches_url",
    "caches_from_url": "cachewise.caches_url",
    "get_or_compute": "cachewise.compute.api",
    "get_redis_client": "cachewise.store.raw_client",
    "get_redis_connection": "cachewise.backends.djredis_client",
    "increment_field": "cachewise.counters.apply",
    "invalidate": "cachewise.compute.api",
    "invalidate_model": "cachewise.orm.invalidation",
    "invalidate_page": "cachewise.pagecache.purge",
    "make_key": "cachewise.keys",
    "private_key": "cachewise.keys",
    "page_depends_on": "cachewise.pagecache.tracking",
}

__all__ = [
    "CacheNotConfiguredError",
    "CacheServerError",
    "CacheUnavailableError",
    "CachewiseError",
    "CircuitOpenError",
    "ConfigurationError",
    "Counter",
    "EmbeddedRedis",
    "InvalidKeyError",
    "LockError",
    "MissingExtraError",
    "Namespace",
    "NoStore",
    "SerializationError",
    "SignatureError",
    "UnconfirmedWriteError",
    "aget_or_compute",
    "cached",
    "caches_from_env",
    "caches_from_url",
    "get_or_compute",
    "get_redis_client",
    "get_redis_connection",
    "increment_field",
    "invalidate",
    "invalidate_model",
    "invalidate_page",
    "make_key",
    "page_depends_on",
    "private_key",
]

if TYPE_CHECKING:  # pragma: no cover - static view of the lazy names
    from .backends.djredis_client import get_redis_connection
    from .caches_url import caches_from_env, caches_from_url
    from .compute.api import NoStore, aget_or_compute, cached, get_or_compute, invalidate
    from .compute.namespace import Namespace
    from .counters.apply import increment_field
    from .counters.counter import Counter
    from .embedded import EmbeddedRedis
    from .exceptions import (
        CacheNotConfiguredError,
        CacheServerError,
        CacheUnavailableError,
        CachewiseError,
        CircuitOpenError,
        ConfigurationError,
        InvalidKeyError,
        LockError,
        MissingExtraError,
        SerializationError,
        SignatureError,
        UnconfirmedWriteError,
    )
    from .keys import make_key, private_key
    from .orm.invalidation import invalidate_model
    from .pagecache.purge import invalidate_page
    from .pagecache.tracking import page_depends_on
    from .store.raw_client import get_redis_client


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cachewise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
