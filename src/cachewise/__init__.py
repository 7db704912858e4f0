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
    "CacheServerError": "cachewise.exceptions",
    "CacheUnavailableError": "cachewise.exceptions",
    "CachewiseError": "cachewise.exceptions",
    "CircuitOpenError": "cachewise.exceptions",
    "ConfigurationError": "cachewise.exceptions",
    "Counter": "cachewise.counters",
    "EmbeddedRedis": "cachewise.embedded",
    "InvalidKeyError": "cachewise.exceptions",
    "LockError": "cachewise.exceptions",
    "NoStore": "cachewise.compute",
    "Namespace": "cachewise.versions",
    "SerializationError": "cachewise.exceptions",
    "SignatureError": "cachewise.exceptions",
    "aget_or_compute": "cachewise.compute",
    "cached": "cachewise.compute",
    "caches_from_env": "cachewise.config",
    "caches_from_url": "cachewise.config",
    "get_or_compute": "cachewise.compute",
    "get_redis_client": "cachewise.clients",
    "invalidate_model": "cachewise.orm.invalidation",
    "make_key": "cachewise.keys",
}

__all__ = [
    "CacheServerError",
    "CacheUnavailableError",
    "CachewiseError",
    "CircuitOpenError",
    "ConfigurationError",
    "Counter",
    "EmbeddedRedis",
    "InvalidKeyError",
    "LockError",
    "Namespace",
    "NoStore",
    "SerializationError",
    "SignatureError",
    "aget_or_compute",
    "cached",
    "caches_from_env",
    "caches_from_url",
    "get_or_compute",
    "get_redis_client",
    "invalidate_model",
    "make_key",
]

if TYPE_CHECKING:  # pragma: no cover - static view of the lazy names
    from .clients import get_redis_client
    from .compute import NoStore, aget_or_compute, cached, get_or_compute
    from .config import caches_from_env, caches_from_url
    from .counters import Counter
    from .embedded import EmbeddedRedis
    from .exceptions import (
        CacheServerError,
        CacheUnavailableError,
        CachewiseError,
        CircuitOpenError,
        ConfigurationError,
        InvalidKeyError,
        LockError,
        SerializationError,
        SignatureError,
    )
    from .keys import make_key
    from .orm.invalidation import invalidate_model
    from .versions import Namespace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cachewise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
