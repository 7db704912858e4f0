"""django-redis 7.0's key-level methods on cachewise's backend: patterns, TTLs, locks, counters.

Mixed into :class:`~cachewise.backends.redis.RedisCache`. Keys get ``KEY_PREFIX`` and the version
exactly as ``get``/``set`` do (``cache.make_key``); patterns get them too, with the prefix and the
version escaped so only ``search`` is a glob. Each method is one round trip except where noted,
and each goes through the alias' failure policy: reads (``keys``, ``iter_keys``, ``ttl``,
``pttl``) as ``get`` (an outage answers as for a missing key), expiry changes as ``touch``,
``delete_pattern`` as ``delete_many``, ``incr(ignore_key_check=True)`` as ``incr`` and locks as
``lock`` (both raise on an outage).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, default_key_func

from cachewise.exceptions import CacheServerError
from cachewise.store.scripts import run
from cachewise.store.scripts.counts import INCR_ANYWAY

from .client import escape_pattern
from .djredis_lock import CacheLock

if TYPE_CHECKING:
    import redis

    from cachewise.resilience import Resilience

    from .client import RedisCacheClient

__all__ = ["KeysMixin"]

#: INCRBY whether or not the key exists (django-redis's ``ignore_key_check=True``).
_SCAN_COUNT = 10  # django-redis's DJANGO_REDIS_SCAN_ITERSIZE default


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _expiry(remaining: int) -> int | None:
    """django-redis's answer for a TTL reply: None for no expiry, 0 for a missing key."""
    if remaining == -1:
        return None
    return max(remaining, 0)


def _overflowed(exc: CacheServerError) -> bool:
    """True when INCRBY failed because the result or the stored number is past 64 bits."""
    text = str(exc)
    return "overflow" in text or "not an integer or out of range" in text


class KeysMixin:
    """``keys``, ``iter_keys``, ``delete_pattern``, TTLs, expiries, ``lock`` and wide ``incr``."""

    resilience: Resilience
    key_prefix: str
    version: int
    key_func: Any
    default_timeout: float | None
    #: CACHES' REVERSE_KEY_FUNCTION (django-redis): full key -> the user's key; None: the default.
    reverse_key_func: Any = None

    if TYPE_CHECKING:  # provided by RedisCache

        def get_client(self, *, write: bool = True) -> redis.Redis: ...
        def make_and_validate_key(self, key: str, version: int | None = None) -> str: ...
        def decode(self, raw: bytes) -> Any: ...
        def encode(self, value: Any) -> bytes | int: ...
        def _ttl_ms(self, timeout: float | object | None) -> int | None: ...

        _client: RedisCacheClient

    # -- patterns ---------------------------------------------------------------------------------

    def _live_prefix(self) -> str:
        """The prefix keys are made with now: KEY_PREFIX, plus the generation with clear="generation"."""
        generation = getattr(self, "_generation", None)
        return self.key_prefix if generation is None else str(generation.prefix())

    def make_pattern(self, pattern: str, version: int | None = None) -> str:
        """The SCAN/KEYS pattern of ``pattern`` under this cache's prefix and version."""
        version_text = escape_pattern(str(self.version if version is None else version))
        prefix = escape_pattern(self._live_prefix())
        if self.key_func is default_key_func:
            return f"{prefix}:{version_text}:{pattern}"
        return str(self.key_func(pattern, prefix, version_text))

    def reverse_key(self, full_key: str) -> str:
        """The user's key of ``full_key`` (``<prefix>:<version>:<key>``), or REVERSE_KEY_FUNCTION's.

        The prefix is removed as a whole, so a ``KEY_PREFIX`` with colons (``"shop:v2"``) is not
        mistaken for a version (django-redis' default splits at the first two colons).
        """
        if self.reverse_key_func is not None:
            return str(self.reverse_key_func(full_key))
        head = f"{self._live_prefix()}:"
        rest = full_key[len(head) :] if full_key.startswith(head) else full_key
        return rest.split(":", 1)[1] if ":" in rest else rest

    def _node_clients(self, *, write: bool) -> list[redis.Redis]:
        """One client per server that holds keys: every primary of a Cluster, else the one server."""
        client = self.get_client(write=write)
        if type(client).__name__ != "RedisCluster":
            return [client]
        cluster: Any = client
        return [cluster.get_redis_connection(node) for node in cluster.get_primaries()]

    def keys(self, search: str, version: int | None = None) -> list[str]:
        """Every key matching the glob ``search`` (Redis KEYS: blocks the server; prefer iter_keys)."""
        pattern = self.make_pattern(search, version)
        found = [self._node_keys(client, pattern) for client in self._node_clients(write=False)]
        return [self.reverse_key(_text(key)) for keys in found for key in keys]

    def _node_keys(self, client: redis.Redis, pattern: str) -> list[Any]:
        return list(self.resilience.call("get", lambda: client.keys(pattern), fallback=lambda error: []))

    def iter_keys(
        self, search: str, itersize: int | None = None, version: int | None = None
    ) -> Iterator[str]:
        """The keys matching ``search``, SCANned ``itersize`` at a time (one round trip per batch)."""
        pattern = self.make_pattern(search, version)
        for client in self._node_clients(write=False):
            yield from self._scan(client, pattern, itersize)

    def _scan(self, client: redis.Redis, pattern: str, itersize: int | None) -> Iterator[str]:
        def step(at: int) -> tuple[int, list[Any]]:
            found = self.resilience.call(
                "get", lambda: client.scan(at, match=pattern, count=itersize), fallback=lambda error: (0, [])
            )
            return int(found[0]), list(found[1])

        cursor, batch = step(0)
        while True:
            yield from (self.reverse_key(_text(key)) for key in batch)
            if cursor == 0:
                return
            cursor, batch = step(cursor)

    def delete_pattern(
        self, pattern: str, version: int | None = None, prefix: str | None = None, itersize: int | None = None
    ) -> int:
        """Delete every key matching ``pattern`` (SCAN, then UNLINK per batch); return how many.

        Not atomic: a key written during the scan may be missed. Prefer versioned keys or
        ``cachewise.Namespace`` for invalidation (a bump is one command).
        """
        client = self.get_client()
        glob = self.make_pattern(pattern, version)
        if prefix is not None:
            glob = escape_pattern(prefix) + glob[len(escape_pattern(self._live_prefix())) :]
        count = itersize or _SCAN_COUNT

        def unlink_matching() -> int:
            removed, batch = 0, []
            for key in client.scan_iter(match=glob, count=count):
                batch.append(key)
                if len(batch) >= 500:
                    removed += int(client.unlink(*batch))
                    batch.clear()
            return removed + (int(client.unlink(*batch)) if batch else 0)

        return int(self.resilience.call("delete_many", unlink_matching, fallback=lambda error: 0))

    # -- expiry -----------------------------------------------------------------------------------

    def ttl(self, key: str, version: int | None = None) -> int | None:
        """Seconds left: None when the key never expires, 0 when it does not exist."""
        client, full = self.get_client(write=False), self.make_and_validate_key(key, version)
        return _expiry(int(self.resilience.call("get", lambda: client.ttl(full), fallback=lambda error: -2)))

    def pttl(self, key: str, version: int | None = None) -> int | None:
        """Milliseconds left: None when the key never expires, 0 when it does not exist."""
        client, full = self.get_client(write=False), self.make_and_validate_key(key, version)
        return _expiry(int(self.resilience.call("get", lambda: client.pttl(full), fallback=lambda error: -2)))

    def _expire_call(self, key: str, version: int | None, command: str, arg: Any) -> bool:
        client, full = self.get_client(), self.make_and_validate_key(key, version)
        method = getattr(client, command)
        return bool(self.resilience.call("touch", lambda: method(full, arg), fallback=lambda error: False))

    def persist(self, key: str, version: int | None = None) -> bool:
        """Remove the key's expiry; False if it has none or does not exist."""
        client, full = self.get_client(), self.make_and_validate_key(key, version)
        return bool(self.resilience.call("touch", lambda: client.persist(full), fallback=lambda error: False))

    def expire(self, key: str, timeout: Any, version: int | None = None) -> bool:
        """Expire the key in ``timeout`` seconds (an int or a timedelta; DEFAULT_TIMEOUT: the cache's)."""
        timeout = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return self._expire_call(key, version, "expire", timeout)

    def pexpire(self, key: str, timeout: Any, version: int | None = None) -> bool:
        """Expire the key in ``timeout`` milliseconds (an int or a timedelta)."""
        timeout = self.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return self._expire_call(key, version, "pexpire", timeout)

    def expire_at(self, key: str, when: int | datetime.datetime, version: int | None = None) -> bool:
        """Expire the key at ``when`` (a Unix time in seconds, or a datetime)."""
        return self._expire_call(key, version, "expireat", when)

    def pexpire_at(self, key: str, when: int | datetime.datetime, version: int | None = None) -> bool:
        """Expire the key at ``when`` (a Unix time in milliseconds, or a datetime)."""
        return self._expire_call(key, version, "pexpireat", when)

    def _set_if(self, full_key: str, value: Any, timeout: float | None, *, nx: bool) -> bool:
        """django-redis' ``set(nx=True)`` (an ``add``) or ``set(xx=True)`` (replace only)."""
        ttl_ms = self._ttl_ms(timeout)
        if nx:
            return self._client.add(full_key, value, ttl_ms)
        if ttl_ms is not None and ttl_ms <= 0:
            return self._client.delete(full_key)
        client, payload = self.get_client(), self.encode(value)
        stored = self.resilience.call(
            "set", lambda: client.set(full_key, payload, xx=True, px=ttl_ms), fallback=lambda error: False
        )
        return bool(stored)

    # -- locks ------------------------------------------------------------------------------------

    def lock(
        self,
        key: str,
        version: int | None = None,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
        auto_renewal: bool = False,
    ) -> CacheLock:
        """A distributed mutex on ``key`` (see :class:`~cachewise.backends.djredis_lock.CacheLock`)."""
        return CacheLock(
            self,  # type: ignore[arg-type]  # mixed into RedisCache
            self.make_and_validate_key(key, version),
            timeout=timeout,
            sleep=sleep,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
            thread_local=thread_local,
            auto_renewal=auto_renewal,
        )

    # -- counters past 64 bits --------------------------------------------------------------------

    def _incr_anyway(self, full_key: str, delta: int) -> int:
        """INCRBY creating the key at ``delta`` when missing (``ignore_key_check=True``)."""
        client = self.get_client()
        try:
            return int(self.resilience.call("incr", lambda: run(client, INCR_ANYWAY, [full_key], [delta])))
        except CacheServerError as exc:
            return self._incr_wide(full_key, delta, exc, must_exist=False)

    def _incr_wide(self, full_key: str, delta: int, error: CacheServerError, *, must_exist: bool) -> int:
        """Add ``delta`` in Python when Redis cannot (past 2**63-1), atomically (WATCH/MULTI), TTL kept.

        Redis' INCRBY stops at 64 bits; django-redis then returns the Python int. Raise ``error``
        again when the stored value is not an int at all.
        """
        if not _overflowed(error):
            raise error
        client = self.get_client()

        def add(pipe: Any) -> int:
            raw = pipe.get(full_key)
            if raw is None and must_exist:
                raise ValueError(f"Key '{full_key}' not found.")
            current = 0 if raw is None else self.decode(raw)
            if type(current) is not int:
                raise error
            pipe.multi()
            pipe.set(full_key, current + delta, keepttl=True)
            return int(current + delta)

        result = self.resilience.call(
            "incr",
            lambda: client.transaction(add, full_key, value_from_callable=True),  # type: ignore[arg-type]
        )
        return int(result)  # type: ignore[arg-type]
