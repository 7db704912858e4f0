"""cachewise's Redis cache backend: a drop-in for Django's RedisCache and django-redis.

Usage::

    CACHES = {"default": {"BACKEND": "cachewise.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:6379/0", "KEY_PREFIX": "shop",
                          "OPTIONS": {"serializer": "pickle", "sign": True}}}

Two tiers, as in Django's own backend: :class:`RedisCache` (this module) makes and validates keys
and converts timeouts; :class:`~cachewise.backends.client.RedisCacheClient` (and its async twin)
runs one round trip per operation on connections pooled per process
(:mod:`cachewise.backends.pools`). OPTIONS are listed in :data:`ALLOWED_OPTIONS` and validated
when the backend is built (:mod:`cachewise.backends.options`).

Hooks for the rest of cachewise (and users):

``get_client(*, write=True) -> redis.Redis``
    The raw sync client, no key prefix applied (shared, thread-safe, bounded pool).
``get_async_client() -> redis.asyncio.Redis``
    The raw async client of the running event loop.
``encode(value) -> bytes | int`` / ``decode(raw) -> Any``
    The value format of get/set (header byte; ints raw so INCR works). ``decode`` raises
    :class:`~cachewise.exceptions.SerializationError` (``SignatureError`` when tampered).
``resilience``
    The alias' :class:`~cachewise.resilience.Resilience`: route raw calls through
    ``cache.resilience.call(operation, fn, fallback=...)`` (or ``await ...acall(...)``) so they
    share the breaker, the failure policy, the counting and the signals.
``clear()`` / ``flush_db()``
    ``clear()`` UNLINKs only keys under this cache's KEY_PREFIX (SCAN in batches); ``flush_db()``
    empties the whole logical database, on purpose only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    default_key_func,
)

from cachewise.exceptions import ConfigurationError
from cachewise.monitoring.metrics import namespace_of, record, record_many
from cachewise.resilience import Resilience, breaker_for

from .aclient import AsyncRedisCacheClient
from .client import MISSING, RedisCacheClient, escape_pattern
from .options import ALLOWED_OPTIONS, BackendOptions

__all__ = ["ALLOWED_OPTIONS", "RedisCache"]

_UNPORTABLE_CHARS = re.compile(r"[\x00-\x20\x7f]")


def _infer_alias(location: str | list[str], params: dict[str, Any]) -> str:
    """Find this cache's alias in settings.CACHES (Django does not pass it to backends)."""
    from django.conf import settings

    prefix = params.get("KEY_PREFIX", "")
    for alias, entry in getattr(settings, "CACHES", {}).items():
        same_place = entry.get("LOCATION") == location and entry.get("KEY_PREFIX", "") == prefix
        if same_place and entry.get("BACKEND", "").endswith("RedisCache"):
            return str(alias)
    return "default"


class _Setup:
    """What every instance of one configured cache shares: options, resilience, clients."""

    def __init__(self, server: str | list[str], options: dict[str, Any] | None, alias: str | None) -> None:
        self.options = BackendOptions(server, options)
        self.alias = self.options.alias or alias or "default"
        location_key = server if isinstance(server, str) else ";".join(server)
        breaker = breaker_for(self.alias, location_key, **self.options.breaker)
        self.resilience = Resilience(self.alias, breaker, self.options.policy, self.options.log_interval)
        self.client = RedisCacheClient(self.options.servers, self.options.format, self.resilience)
        self.aclient = AsyncRedisCacheClient(self.client)


_SETUPS: dict[tuple[Any, ...], _Setup] = {}
_BY_IDENTITY: dict[tuple[Any, ...], tuple[dict[str, Any], _Setup]] = {}
_SETUPS_LIMIT = 256  # configurations are few; the bound only guards a test suite making thousands


def _setup_for(server: str | list[str], params: dict[str, Any]) -> _Setup:
    """The shared setup of this configuration, built once per process.

    Django makes a backend instance per thread, and under ASGI per request context: building
    the options, plug-ins and clients each time would cost ~20 us per request.
    """
    options = params.get("OPTIONS") or {}
    location_key = server if isinstance(server, str) else ";".join(server)
    # Django copies the settings entry shallowly, so OPTIONS is the very dict from settings: an
    # identity hit skips the alias search and the repr below (the dict is kept alive in the entry).
    fast_key = (id(options), location_key, params.get("KEY_PREFIX", ""))
    known = _BY_IDENTITY.get(fast_key)
    if known is not None and known[0] is options:
        return known[1]
    alias = options.get("alias") or _infer_alias(server, params)
    secret = ""
    if options.get("sign") and not options.get("signing_key"):
        from django.conf import settings

        secret = settings.SECRET_KEY  # a new SECRET_KEY must give a new signing key
    key = (location_key, alias, secret, repr(sorted(options.items())))
    setup = _SETUPS.get(key)
    if setup is None:
        setup = _Setup(server, options, alias)
        if len(_SETUPS) >= _SETUPS_LIMIT:
            _SETUPS.clear()
        _SETUPS[key] = setup  # a race builds two equal setups; either is fine
    if not secret:  # with sign=True a SECRET_KEY change must be seen: no identity shortcut
        if len(_BY_IDENTITY) >= _SETUPS_LIMIT:
            _BY_IDENTITY.clear()
        _BY_IDENTITY[fast_key] = (options, setup)
    return setup


class RedisCache(BaseCache):
    """A Django cache on Redis: fast hit path, fail-open reads, circuit breaker, signed values."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(params)
        setup = _setup_for(server, params)
        self.options = setup.options
        self.alias = setup.alias
        self.resilience = setup.resilience
        self._client = setup.client
        self._async = setup.aclient

    # -- hooks -----------------------------------------------------------------------------------

    def get_client(self, *, write: bool = True) -> redis.Redis:
        """The raw redis-py client (no key prefix applied) for writes, or a replica for reads."""
        return self._client.get_client(write=write)

    def get_async_client(self) -> aioredis.Redis:
        """The raw ``redis.asyncio`` client bound to the running event loop."""
        return self._async.get_client()

    def encode(self, value: Any) -> bytes | int:
        """The stored form of ``value`` in this cache's format (ints raw)."""
        return self.options.format.encode(value)

    def decode(self, raw: bytes) -> Any:
        """The value stored as ``raw``; raises SerializationError (SignatureError if tampered)."""
        return self.options.format.decode(raw)

    def make_key(self, key: str, version: int | None = None) -> str:
        """Django's key (``<KEY_PREFIX>:<version>:<key>`` unless KEY_FUNCTION says otherwise)."""
        if self.key_func is default_key_func:  # the common case, without a function call
            return f"{self.key_prefix}:{self.version if version is None else version}:{key}"
        return str(self.key_func(key, self.key_prefix, self.version if version is None else version))

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        """The full Redis key of ``key``, with Django's portability warnings."""
        full_key = self.make_key(key, version)
        if len(full_key) > MEMCACHE_MAX_KEY_LENGTH or _UNPORTABLE_CHARS.search(full_key):
            super().validate_key(full_key)
        return full_key

    def validate_key(self, key: str) -> None:
        """Django's key portability warnings; the usual clean key is checked without a generator."""
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _UNPORTABLE_CHARS.search(key):
            super().validate_key(key)

    def get_backend_timeout(self, timeout: float | object | None = DEFAULT_TIMEOUT) -> float | None:
        """Seconds until expiry (``None``: never; ``0``: now), sub-second values kept."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0.0, float(timeout))  # type: ignore[arg-type]

    def _ttl_ms(self, timeout: float | object | None) -> int | None:
        seconds = self.get_backend_timeout(timeout)
        return None if seconds is None else int(seconds * 1000)

    def _clear_pattern(self) -> str:
        """The SCAN pattern of every key this cache can make, whatever the key and version."""
        if self.key_func is default_key_func:
            return f"{escape_pattern(self.key_prefix)}:*"
        # A custom KEY_FUNCTION: make a key from markers and turn the markers into wildcards.
        key_mark, version_mark = "\x00k\x00", "\x00v\x00"
        sample = str(self.key_func(key_mark, self.key_prefix, version_mark))
        if key_mark not in sample or version_mark not in sample or not self.key_prefix:
            raise ConfigurationError(
                f"clear() cannot tell this cache's keys from others: KEY_FUNCTION {self.key_func!r} "
                "does not keep the key and version visible, or KEY_PREFIX is empty. Set KEY_PREFIX and a "
                "KEY_FUNCTION that embeds them, or empty the database on purpose with flush_db()"
            )
        parts = [escape_pattern(part) for part in sample.replace(version_mark, key_mark).split(key_mark)]
        return "*".join(parts)

    # -- sync API ---------------------------------------------------------------------------------

    def add(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self._client.add(
            self.make_and_validate_key(key, version=version), value, self._ttl_ms(timeout)
        )

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        value = self._client.get(self.make_and_validate_key(key, version=version), MISSING)
        if value is MISSING:
            record("miss", self.alias, namespace_of(key))
            return default
        record("hit", self.alias, namespace_of(key))
        return value

    def set(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._client.set(self.make_and_validate_key(key, version=version), value, self._ttl_ms(timeout))

    def touch(self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._client.touch(self.make_and_validate_key(key, version=version), self._ttl_ms(timeout))

    def delete(self, key: str, version: int | None = None) -> bool:
        return self._client.delete(self.make_and_validate_key(key, version=version))

    def _full_keys(self, keys: Iterable[str], version: int | None) -> tuple[list[str], list[str]]:
        """(keys, full keys) for many keys, validated in a few C-level passes over all of them."""
        names = list(keys)
        head = f"{self.key_prefix}:{self.version if version is None else version}:"
        try:
            joined = "".join(names)  # raises TypeError for a non-str key: the slow path words it
        except TypeError:
            joined = "\x00"
        room = MEMCACHE_MAX_KEY_LENGTH - len(head)
        # isprintable() is False for every control character (and some harmless non-ASCII ones,
        # which the slow path then clears); space is the one printable character Django flags.
        clean = (head + joined).isprintable() and " " not in joined and " " not in head
        if (
            self.key_func is default_key_func
            and clean
            and (len(joined) <= room or max(map(len, names)) <= room)
        ):
            return names, [head + key for key in names]
        return names, [self.make_and_validate_key(key, version=version) for key in names]

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        names, full_keys = self._full_keys(keys, version)
        found = self._client.get_many(full_keys, names)
        _record_lookups(self.alias, names, found)
        return found

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        full_key = self.make_and_validate_key(key, version=version)
        value = self._client.get(full_key, MISSING)
        record("miss" if value is MISSING else "hit", self.alias, namespace_of(key))
        if value is not MISSING:
            return value
        if callable(default):
            default = default()
        # A fill, not a lock: it fails open. Read again if another caller won the race.
        if self._client.add(full_key, default, self._ttl_ms(timeout), operation="fill"):
            return default
        return self._client.get(full_key, default)

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self._client.has_key(self.make_and_validate_key(key, version=version))

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return self._client.incr(self.make_and_validate_key(key, version=version), delta)

    def set_many(
        self, data: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        if not data:
            return []
        full = {self.make_and_validate_key(key, version=version): value for key, value in data.items()}
        return [] if self._client.set_many(full, self._ttl_ms(timeout)) else list(data)

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        full_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        if full_keys:
            self._client.delete_many(full_keys)

    def clear(self) -> None:
        """Remove every key of this cache's KEY_PREFIX (other prefixes and databases untouched)."""
        self._client.clear(self._clear_pattern())

    def flush_db(self) -> None:
        """FLUSHDB: remove every key of the logical database, whatever its prefix. Raises on failure."""
        self._client.flush_db()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: connections go back to the shared pool after every command.

        Django calls this at the end of every request; dropping connections there (as django-redis
        does by default) would cost a TCP handshake per request.
        """

    # -- async API (native redis.asyncio, one pool per event loop) --------------------------------

    async def aadd(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self._async.add(
            self.make_and_validate_key(key, version=version), value, self._ttl_ms(timeout)
        )

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        value = await self._async.get(self.make_and_validate_key(key, version=version), MISSING)
        if value is MISSING:
            record("miss", self.alias, namespace_of(key))
            return default
        record("hit", self.alias, namespace_of(key))
        return value

    async def aset(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        await self._async.set(self.make_and_validate_key(key, version=version), value, self._ttl_ms(timeout))

    async def atouch(
        self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self._async.touch(
            self.make_and_validate_key(key, version=version), self._ttl_ms(timeout)
        )

    async def adelete(self, key: str, version: int | None = None) -> bool:
        return await self._async.delete(self.make_and_validate_key(key, version=version))

    async def aget_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        names, full_keys = self._full_keys(keys, version)
        found = await self._async.get_many(full_keys, names)
        _record_lookups(self.alias, names, found)
        return found

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        full_key = self.make_and_validate_key(key, version=version)
        value = await self._async.get(full_key, MISSING)
        record("miss" if value is MISSING else "hit", self.alias, namespace_of(key))
        if value is not MISSING:
            return value
        if callable(default):
            default = default()
        if await self._async.add(full_key, default, self._ttl_ms(timeout), operation="fill"):
            return default
        return await self._async.get(full_key, default)

    async def ahas_key(self, key: str, version: int | None = None) -> bool:
        return await self._async.has_key(self.make_and_validate_key(key, version=version))

    async def aincr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return await self._async.incr(self.make_and_validate_key(key, version=version), delta)

    async def aset_many(
        self, data: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        if not data:
            return []
        full = {self.make_and_validate_key(key, version=version): value for key, value in data.items()}
        return [] if await self._async.set_many(full, self._ttl_ms(timeout)) else list(data)

    async def adelete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        full_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        if full_keys:
            await self._async.delete_many(full_keys)

    async def aclear(self) -> None:
        await self._async.clear(self._clear_pattern())

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do per request (see :meth:`close`); use :meth:`adisconnect` to drop the pool."""

    async def adisconnect(self) -> None:
        """Disconnect the running event loop's pool: call before closing a loop you created."""
        await self._async.close()


def _shared_namespace(names: list[Any]) -> str | None:
    """The namespace every name has, found in a few C-level passes; None if mixed or not str."""
    try:
        # Every name sorts between the smallest and the largest: if both start with "<ns>:", all do.
        lowest, highest = min(names), max(names)
        head, colon, _ = lowest.partition(":")
        if colon:
            return (head or "-") if highest.startswith(f"{head}:") else None
        return "-" if ":" not in "".join(names) else None
    except (TypeError, AttributeError):
        return None


def _record_lookups(alias: str, names: list[Any], found: dict[Any, Any]) -> None:
    """Count a hit or a miss per key of a ``get_many``, per namespace, at a few us per 100 keys."""
    if not names:
        return
    namespace = _shared_namespace(names)
    if namespace is not None:
        # found's keys are a subset of names: equal sizes mean every name is distinct and a hit.
        hits = len(names) if len(found) == len(names) else sum(map(found.__contains__, names))
        counts = {("hit", namespace): float(hits), ("miss", namespace): float(len(names) - hits)}
    else:
        counts = {}
        for name in names:
            outcome = ("hit" if name in found else "miss", namespace_of(name))
            counts[outcome] = counts.get(outcome, 0.0) + 1
    record_many(alias, counts)
