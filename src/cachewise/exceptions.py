"""Errors raised by cachewise.

Every error derives from :class:`CachewiseError`, and where the meaning matches a Django or
Python type the error subclasses it too, so existing ``except`` clauses keep working::

    CachewiseError
    ├── ConfigurationError (django.core.exceptions.ImproperlyConfigured)
    │   ├── EmbeddedRedisError          no redis-server binary, or it would not start
    │   ├── CacheNotConfiguredError     a cache used while its URL variable (REDIS_URL) was unset
    │   └── MissingExtraError           a feature whose optional package (pip extra) is not installed
    ├── InvalidKeyError (ValueError)     a key part that cannot be encoded safely
    ├── CacheUnavailableError            the cache could not be reached (connection, timeout,
    │   └── CircuitOpenError             breaker open: the call did not touch the network)
    ├── UnconfirmedWriteError            applied on the primary, not confirmed by a replica in time
    ├── CacheServerError                 the server answered with an error that is not an outage
    │                                    (WRONGTYPE, OOM, a script error): never swallowed
    ├── SerializationError (ValueError)  a value that cannot be stored, or a payload that cannot be read
    │   └── SignatureError               a signed payload whose signature does not match
    └── LockError                        a single-flight lock could not be taken or was lost

redis-py's own exceptions are translated at one boundary (``translate_redis_error``) with
``raise ... from exc`` so callers never need to import redis to handle cachewise failures.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "OUTAGE_ERRORS",
    "CacheNotConfiguredError",
    "CacheServerError",
    "CacheUnavailableError",
    "CachewiseError",
    "CircuitOpenError",
    "ConfigurationError",
    "EmbeddedRedisError",
    "InvalidKeyError",
    "LockError",
    "MissingExtraError",
    "SerializationError",
    "SignatureError",
    "UnconfirmedWriteError",
    "translate_redis_error",
]


class CachewiseError(Exception):
    """Base class of every error cachewise raises on purpose."""


class ConfigurationError(CachewiseError, ImproperlyConfigured):
    """Settings or arguments that cannot work; the message names the setting and the fix."""


class EmbeddedRedisError(ConfigurationError):
    """A private redis-server could not be found or started."""


class CacheNotConfiguredError(ConfigurationError):
    """A cache from ``caches_from_env()`` was used while its environment variable was unset."""


class MissingExtraError(ConfigurationError):
    """A feature needs an optional package; the message names the extra, e.g. ``[cli]``."""


class InvalidKeyError(CachewiseError, ValueError):
    """A cache key or key part that cannot be encoded into a safe key."""


class CacheUnavailableError(CachewiseError):
    """The cache server could not be reached in time (connection refused, reset, timeout)."""


class UnconfirmedWriteError(CachewiseError):
    """A write the primary applied but no replica confirmed within the timeout (``WAIT``).

    It is in Redis and counts unless the primary fails before replicating it: never retry it
    (a retry would apply it twice). Not a :class:`CacheUnavailableError` on purpose: a fallback
    that writes elsewhere when the cache is down would count it twice too.
    """


class CircuitOpenError(CacheUnavailableError):
    """The circuit breaker is open: the call was answered without touching the network."""


class CacheServerError(CachewiseError):
    """The server answered with an error that is not an outage (WRONGTYPE, OOM, script error)."""


class SerializationError(CachewiseError, ValueError):
    """A value could not be serialized, or a stored payload could not be read back."""


class SignatureError(SerializationError):
    """A signed payload failed verification; it is treated as a miss and never deserialized."""


class LockError(CachewiseError):
    """A single-flight lock could not be acquired, or was lost before release."""


#: What "the cache could not be reached" looks like to a caller that fails open on it (page and
#: fragment caching): cachewise's own translated error (``CircuitOpenError`` included), or the
#: ``OSError`` (refused, reset, timed out) a backend other than cachewise's lets through, as Django's
#: memcached backends do. Server errors (``CacheServerError``), bad values and bugs are not in it:
#: they propagate, whatever fails open.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (CacheUnavailableError, OSError)


def translate_redis_error(exc: BaseException) -> CachewiseError:
    """Map a redis-py exception to the cachewise error a caller should handle.

    Outages (connection and timeout errors, a read-only replica, a server still loading) become
    :class:`CacheUnavailableError`; every other server reply error becomes
    :class:`CacheServerError`, because hiding it would hide a bug (wrong type, OOM, bad script).
    Use as ``raise translate_redis_error(exc) from exc``.
    """
    # Here, not at the top: settings files import this module (through caches_url), and redis-py
    # costs ~150 ms to load; it is loaded already by the time a Redis error is translated.
    from redis import exceptions as redis_exc  # noqa: PLC0415

    outage_types = (
        redis_exc.ConnectionError,
        redis_exc.TimeoutError,
        redis_exc.BusyLoadingError,
        redis_exc.ReadOnlyError,
        redis_exc.ClusterDownError,
        redis_exc.TryAgainError,
        ConnectionError,
        TimeoutError,
        OSError,
    )
    if isinstance(exc, CachewiseError):
        return exc
    if isinstance(exc, outage_types):
        return CacheUnavailableError(f"cache server unavailable: {exc}")
    return CacheServerError(f"cache server error: {exc}")
