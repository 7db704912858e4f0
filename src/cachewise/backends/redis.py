"""cachewise's Redis cache backend: a drop-in for Django's RedisCache and django-redis.

Usage::

    CACHES = {"default": {"BACKEND": "cachewise.backends.redis.RedisCache",
                          "LOCATION": "redis://127.0.0.1:6379/0", "KEY_PREFIX": "shop",
                          "OPTIONS": {"serializer": "pickle"}}}  # signed by default

Two tiers, as in Django's own backend: :class:`RedisCache` (this module) makes and validates keys
and converts timeouts; :class:`~cachewise.backends.client.RedisCacheClient` (and its async twin)
runs one round trip per operation on connections pooled per process
(:mod:`cachewise.backends.pools`). OPTIONS are listed in :data:`ALLOWED_OPTIONS` and validated
when the backend is built (:mod:`cachewise.backends.options`); an invalid configuration raises at
the first operation, so that ``manage.py check`` reports it (E002/E004) instead of a traceback.

Hooks for the rest of cachewise (and users):

``get_client(*, write=True) -> redis.Redis``
    The raw sync client, no key prefix applied (shared, thread-safe, bounded pool).
``get_async_client() -> redis.asyncio.Redis``
    The raw async client of the running event loop.
``encode(value) -> bytes | int`` / ``decode(raw) -> Any``
    The value format of get/set (header byte; ints raw so INCR works). ``decode`` raises
    :class:`~cachewise.exceptions.SerializationError` (``SignatureError`` when tampered).
``decode_many(raws, missing=None) -> list``
    ``decode`` of many payloads at once (the hit path of ORM row reads); absent (``None``) and
    unreadable payloads give ``missing`` (unreadable ones are reported, as ``get`` does).
``resilience``
    The alias' :class:`~cachewise.resilience.Resilience`: route raw calls through
    ``cache.resilience.call(operation, fn, fallback=...)`` (or ``await ...acall(...)``) so they
    share the breaker, the failure policy, the counting and the signals.
``clear()`` / ``flush_db()``
    ``clear()`` UNLINKs only keys under this cache's KEY_PREFIX (SCAN in batches); ``flush_db()``
    empties the whole logical database, on purpose only.

django-redis 7.0's methods (``keys``, ``ttl``, ``lock``, the set, sorted-set and hash families,
``cache.client.get_client()``) come from the mixins of :mod:`.djredis_keys`, :mod:`.djredis_sets`
and :mod:`.djredis_zsets`; its OPTIONS are translated by :mod:`.djredis_options`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    BaseCache,
    default_key_func,
)
from django.utils.module_loading import import_string

from cachewise.exceptions import CacheServerError, ConfigurationError
from cachewise.monitoring.metrics import namespace_of, record, record_many
from cachewise.resilience import Resilience, breaker_for

from .aclient import AsyncRedisCacheClient
from .client import MISSING, RedisCacheClient, escape_pattern
from .djredis_client import CompatClient
from .djredis_keys import KeysMixin
from .djredis_sets import SetsMixin
from .djredis_zsets import HashesMixin, SortedSetsMixin
from .generation import generation_of
from .near import NearCache
from .options import ALLOWED_OPTIONS, BackendOptions
from .signing import secrets_of_options
from .topology import attach as attach_topology

__all__ = ["ALLOWED_OPTIONS", "RedisCache"]

#: A get_many of more keys than this reads Redis directly (one script call holds every key).
NEAR_MAX_KEYS = 1000

_UNPORTABLE_CHARS = re.compile(r"[\x00-\x20\x7f]")
#: The ASCII characters a portable key may hold (what ``_UNPORTABLE_CHARS`` does not match).
_PORTABLE_ASCII = bytes(range(0x21, 0x7F))


def _clean(head: str, joined: str) -> bool:
    """True when ``head + joined`` has no character Django's key check would warn about.

    ASCII text (the usual key) is checked by deleting the portable bytes and seeing that nothing
    is left: a C loop ~3.5x faster than ``str.isprintable()``, which looks up each character's
    Unicode category. Other text: ``isprintable()`` (False for every control character, and for
    some harmless non-ASCII ones, which the slow path then clears) and no space.
    """
    if head.isascii() and joined.isascii():
        return not (head + joined).encode("ascii").translate(None, _PORTABLE_ASCII)
    return (head + joined).isprintable() and " " not in joined and " " not in head


def _infer_alias(location: str | list[str], params: dict[str, Any]) -> str:
    """Find this cache's alias in settings.CACHES (Django does not pass it to backends)."""
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
        attach_topology(self.alias, self.options.servers, breaker, self.resilience)
        self.client = RedisCacheClient(self.options.servers, self.options.format, self.resilience)
        self.aclient = AsyncRedisCacheClient(self.client)
        self._near: dict[str, NearCache] = {}

    def near_for(self, prefix: str) -> NearCache | None:
        """The near cache of keys under ``prefix`` (one per process), or None when it is off."""
        settings = self.options.near
        if settings is None:
            return None
        near = self._near.get(prefix)
        if near is None:
            breaker = self.resilience.breaker
            near = NearCache(self.alias, settings, prefix, self.client.get_client, breaker)
            near = self._near.setdefault(prefix, near)
        return near


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
    secrets = secrets_of_options(options)  # a new SECRET_KEY (or fallback) must give new keys
    # Django copies the settings entry shallowly, so OPTIONS is the very dict from settings: an
    # identity hit skips the alias search and the repr below (the dict is kept alive in the entry).
    fast_key = (id(options), location_key, params.get("KEY_PREFIX", ""), secrets)
    known = _BY_IDENTITY.get(fast_key)
    if known is not None and known[0] is options:
        return known[1]
    alias = options.get("alias") or _infer_alias(server, params)
    key = (location_key, alias, secrets, repr(sorted(options.items())))
    setup = _SETUPS.get(key)
    if setup is None:
        setup = _Setup(server, options, alias)
        if len(_SETUPS) >= _SETUPS_LIMIT:
            _SETUPS.clear()
        _SETUPS[key] = setup  # a race builds two equal setups; either is fine
    if len(_BY_IDENTITY) >= _SETUPS_LIMIT:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[fast_key] = (options, setup)
    return setup


class _Unusable:
    """Stands in for the setup of a cache whose OPTIONS or LOCATION cannot work: every attribute
    of it (options, client, resilience) raises the configuration error, so the first cache
    operation does, with the message the system check shows."""

    def __init__(self, error: ConfigurationError) -> None:
        self.alias = "default"
        self.options: Any = _Raiser(error)
        self.resilience: Any = self.options
        self.client: Any = self.options
        self.aclient: Any = self.options


class _Raiser:
    def __init__(self, error: ConfigurationError) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise ConfigurationError(str(self._error)) from self._error


class RedisCache(KeysMixin, SetsMixin, SortedSetsMixin, HashesMixin, BaseCache):
    """A Django cache on Redis: fast hit path, fail-open reads, circuit breaker, signed values."""

    #: Every instance of an alias holds the same shared setup (pools, format, breaker, near
    #: cache) and nothing of its own thread: the store may use one instance from any thread.
    one_for_all_threads = True

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(params)
        try:
            setup: _Setup | _Unusable = _setup_for(server, params)
        except ConfigurationError as exc:
            # Django's own cache checks build every configured cache: raising here would turn
            # `manage.py check` into a traceback instead of cachewise.E002/E004. Fail at first use.
            setup = _Unusable(exc)
        self.options = setup.options
        self.alias = setup.alias
        self.resilience = setup.resilience
        self._client = setup.client
        self._async = setup.aclient
        self._generation = generation_of(setup, self.key_prefix)
        #: The near cache (``OPTIONS["near_cache"]``), or None: see :mod:`cachewise.backends.near`.
        self.near: NearCache | None = None
        if isinstance(setup, _Setup) and setup.options.near is not None:
            self.near = setup.near_for(self._tracked_prefix())
        reverse = params.get("REVERSE_KEY_FUNCTION")  # django-redis' inverse of KEY_FUNCTION
        if reverse is not None:
            self.reverse_key_func = import_string(reverse) if isinstance(reverse, str) else reverse

    # -- hooks -----------------------------------------------------------------------------------

    def get_client(self, *, write: bool = True) -> redis.Redis:
        """The raw redis-py client (no key prefix applied) for writes, or a replica for reads."""
        return self._client.get_client(write=write)

    @property
    def client(self) -> CompatClient:
        """django-redis' ``cache.client``: ``get_client(write)``, ``make_key``, ``encode``, ``decode``."""
        return CompatClient(self)

    def get_async_client(self) -> aioredis.Redis:
        """The raw ``redis.asyncio`` client bound to the running event loop."""
        return self._async.get_client()

    def encode(self, value: Any) -> bytes | int:
        """The stored form of ``value`` in this cache's format (ints raw)."""
        return self.options.format.encode(value)

    def decode(self, raw: bytes) -> Any:
        """The value stored as ``raw``; raises SerializationError (SignatureError if tampered)."""
        return self.options.format.decode(raw)

    def decode_many(self, raws: Sequence[bytes | None], missing: Any = None) -> list[Any]:
        """``decode`` of each payload in one tight loop; ``missing`` for None and unreadable ones."""
        return self._client.decode_list(raws, missing)

    def make_key(self, key: str, version: int | None = None) -> str:
        """Django's key (``<KEY_PREFIX>:<version>:<key>`` unless KEY_FUNCTION says otherwise)."""
        prefix = self.key_prefix if self._generation is None else self._generation.prefix()
        if self.key_func is default_key_func:  # the common case, without a function call
            return f"{prefix}:{self.version if version is None else version}:{key}"
        return str(self.key_func(key, prefix, self.version if version is None else version))

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        """The full Redis key of ``key``, with Django's portability warnings."""
        if self.key_func is default_key_func and self._generation is None:  # make_key(), inlined
            full_key = f"{self.key_prefix}:{self.version if version is None else version}:{key}"
        else:
            full_key = self.make_key(key, version)
        if len(full_key) > MEMCACHE_MAX_KEY_LENGTH or _UNPORTABLE_CHARS.search(full_key):
            super().validate_key(full_key)
        return full_key

    def make_and_validate_keys(self, keys: Iterable[str], version: int | None = None) -> list[str]:
        """:meth:`make_and_validate_key` of many keys at once (validated in a few passes)."""
        return self._full_keys(keys, version)[1]

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

    def _tracked_prefix(self) -> str:
        """The literal start of every key this cache makes: what the near cache tracks."""
        if self.key_func is default_key_func:
            return f"{self.key_prefix}:" if self.key_prefix else ""
        sample = str(self.key_func("\x00k\x00", self.key_prefix, "\x00v\x00"))
        return sample.split("\x00", 1)[0]

    def _guard_get(self, fn: Callable[[], Any]) -> Any:
        return self.resilience.call("get", fn, fallback=_none)

    def _guard_many(self, fn: Callable[[], Any]) -> Any:
        return self.resilience.call("get_many", fn, fallback=_none)

    async def _aguard_get(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await self.resilience.acall("get", fn, fallback=_none)

    async def _aguard_many(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return await self.resilience.acall("get_many", fn, fallback=_none)

    def _near_many(self, names: list[str], full_keys: list[str]) -> list[Any] | None:
        """The near cache's payloads for a ``get_many`` it may answer, else None."""
        near = self.near
        if near is None or not 0 < len(names) <= NEAR_MAX_KEYS or not all(map(near.wants, names)):
            return None
        return near.read(full_keys, self._guard_many)

    def _forget(self, *full_keys: str) -> None:
        """Drop this process' near copies of keys it just wrote (before the message arrives)."""
        near = self.near
        if near is not None:
            near.discard(full_keys)

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
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return self._client.add(full_key, value, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        full_key = self.make_and_validate_key(key, version=version)
        near = self.near
        raws = None if near is None or not near.wants(key) else near.read((full_key,), self._guard_get)
        if raws is None:
            value = self._client.get(full_key, MISSING)
        else:
            value = self._client.decode_hit(raws[0], MISSING)
        if value is MISSING:
            record("miss", self.alias, namespace_of(key))
            return default
        record("hit", self.alias, namespace_of(key))
        return value

    def set(  # type: ignore[override]  # django-redis' signature: nx/xx, returns whether stored
        self,
        key: str,
        value: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store ``value``; with ``nx`` only if the key is missing, with ``xx`` only if it exists."""
        full_key = self.make_and_validate_key(key, version=version)
        try:
            if nx or xx:
                return self._set_if(full_key, value, timeout, nx=nx)
            return self._client.set(full_key, value, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    def touch(self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return self._client.touch(full_key, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    def delete(self, key: str, version: int | None = None) -> bool:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return self._client.delete(full_key)
        finally:
            self._forget(full_key)

    def _full_keys(self, keys: Iterable[str], version: int | None) -> tuple[list[str], list[str]]:
        """(keys, full keys) for many keys, validated in a few C-level passes over all of them."""
        names = list(keys)
        prefix = self.key_prefix if self._generation is None else self._generation.prefix()
        head = f"{prefix}:{self.version if version is None else version}:"
        try:
            joined = "".join(names)  # raises TypeError for a non-str key: the slow path words it
        except TypeError:
            joined = "\x00"
        room = MEMCACHE_MAX_KEY_LENGTH - len(head)
        if (
            self.key_func is default_key_func
            and _clean(head, joined)
            and (len(joined) <= room or max(map(len, names)) <= room)
        ):
            return names, [head + key for key in names]
        return names, [self.make_and_validate_key(key, version=version) for key in names]

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        names, full_keys = self._full_keys(keys, version)
        raws = self._near_many(names, full_keys)
        if raws is None:
            found = self._client.get_many(full_keys, names)
        else:
            found = self._client._decode_hits(names, raws)
        _record_lookups(self.alias, names, found)
        return found

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        value = self.get(key, MISSING, version=version)
        if value is not MISSING:
            return value
        full_key = self.make_and_validate_key(key, version=version)
        if callable(default):
            default = default()
        # A fill, not a lock: it fails open. Read again if another caller won the race.
        stored = self._client.add(full_key, default, self._ttl_ms(timeout), operation="fill")
        self._forget(full_key)
        if stored:
            return default
        return self._client.get(full_key, default)

    def has_key(self, key: str, version: int | None = None) -> bool:
        return self._client.has_key(self.make_and_validate_key(key, version=version))

    def incr(
        self, key: str, delta: int = 1, version: int | None = None, ignore_key_check: bool = False
    ) -> int:
        """Add ``delta``; ValueError if the key is missing, unless ``ignore_key_check`` (then created).

        Past 2**63-1, where Redis' INCRBY stops, the sum is made in Python (atomically) and kept.
        """
        full_key = self.make_and_validate_key(key, version=version)
        try:
            if ignore_key_check:
                return self._incr_anyway(full_key, delta)
            try:
                return self._client.incr(full_key, delta)
            except CacheServerError as exc:
                return self._incr_wide(full_key, delta, exc, must_exist=True)
        finally:
            self._forget(full_key)

    def set_many(
        self, data: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        if not data:
            return []
        full = {self.make_and_validate_key(key, version=version): value for key, value in data.items()}
        try:
            stored = self._client.set_many(full, self._ttl_ms(timeout))
        finally:
            self._forget(*full)
        return [] if stored == len(data) else list(data)[stored:]

    def delete_many(self, keys: Iterable[str], version: int | None = None) -> int:  # type: ignore[override]
        """Delete ``keys``; return how many existed (django-redis' answer; Django's is None)."""
        full_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        try:
            return self._client.delete_many(full_keys) if full_keys else 0
        finally:
            self._forget(*full_keys)

    def clear(self) -> None:
        """Remove every key of this cache's KEY_PREFIX (other prefixes and databases untouched).

        With ``OPTIONS["clear"] = "generation"``: one INCR that moves the cache to new keys
        (see :mod:`cachewise.backends.generation` for the trade-offs).
        """
        try:
            if self._generation is not None:
                self._generation.bump()
                return
            self._client.clear(self._clear_pattern())
        finally:
            if self.near is not None:
                self.near.flush("clear()")

    def flush_db(self) -> None:
        """FLUSHDB: remove every key of the logical database, whatever its prefix. Raises on failure."""
        try:
            self._client.flush_db()
        finally:
            if self.near is not None:
                self.near.flush("flush_db()")

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: connections go back to the shared pool after every command.

        Django calls this at the end of every request; dropping connections there (as django-redis
        does by default) would cost a TCP handshake per request.
        """

    # -- async API (native redis.asyncio, one pool per event loop) --------------------------------

    async def aadd(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return await self._async.add(full_key, value, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    async def aget(self, key: str, default: Any = None, version: int | None = None) -> Any:
        full_key = self.make_and_validate_key(key, version=version)
        near = self.near
        raws = None
        if near is not None and near.wants(key):
            raws = await near.aread((full_key,), self._aguard_get, self._async.get_client())
        if raws is None:
            value = await self._async.get(full_key, MISSING)
        else:
            value = self._client.decode_hit(raws[0], MISSING)
        if value is MISSING:
            record("miss", self.alias, namespace_of(key))
            return default
        record("hit", self.alias, namespace_of(key))
        return value

    async def aset(
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            await self._async.set(full_key, value, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    async def atouch(
        self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return await self._async.touch(full_key, self._ttl_ms(timeout))
        finally:
            self._forget(full_key)

    async def adelete(self, key: str, version: int | None = None) -> bool:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return await self._async.delete(full_key)
        finally:
            self._forget(full_key)

    async def aget_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        names, full_keys = self._full_keys(keys, version)
        near, raws = self.near, None
        if near is not None and 0 < len(names) <= NEAR_MAX_KEYS and all(map(near.wants, names)):
            raws = await near.aread(full_keys, self._aguard_many, self._async.get_client())
        if raws is None:
            found = await self._async.get_many(full_keys, names)
        else:
            found = self._client._decode_hits(names, raws)
        _record_lookups(self.alias, names, found)
        return found

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: float | None = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        value = await self.aget(key, MISSING, version=version)
        if value is not MISSING:
            return value
        full_key = self.make_and_validate_key(key, version=version)
        if callable(default):
            default = default()
        stored = await self._async.add(full_key, default, self._ttl_ms(timeout), operation="fill")
        self._forget(full_key)
        if stored:
            return default
        return await self._async.get(full_key, default)

    async def ahas_key(self, key: str, version: int | None = None) -> bool:
        return await self._async.has_key(self.make_and_validate_key(key, version=version))

    async def aincr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        full_key = self.make_and_validate_key(key, version=version)
        try:
            return await self._async.incr(full_key, delta)
        finally:
            self._forget(full_key)

    async def aset_many(
        self, data: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        if not data:
            return []
        full = {self.make_and_validate_key(key, version=version): value for key, value in data.items()}
        try:
            stored = await self._async.set_many(full, self._ttl_ms(timeout))
        finally:
            self._forget(*full)
        return [] if stored == len(data) else list(data)[stored:]

    async def adelete_many(self, keys: Iterable[str], version: int | None = None) -> None:
        full_keys = [self.make_and_validate_key(key, version=version) for key in keys]
        if full_keys:
            try:
                await self._async.delete_many(full_keys)
            finally:
                self._forget(*full_keys)

    async def aclear(self) -> None:
        try:
            if self._generation is not None:
                await self._generation.abump(self._async.get_client())
                return
            await self._async.clear(self._clear_pattern())
        finally:
            if self.near is not None:
                self.near.flush("clear()")

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


def _none(error: Exception) -> None:
    return None
