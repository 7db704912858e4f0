"""The lower tier of the backend: Redis commands for each cache operation, one round trip each.

:class:`RedisCacheClient` receives finished keys (prefix and version applied by the backend) and
TTLs in milliseconds (``None``: no expiry; ``<= 0``: expire now). It owns no sockets: the clients
come from :mod:`cachewise.backends.pools`, shared by every thread of the process. Every command
runs through the alias' :class:`~cachewise.resilience.Resilience`, so the failure policy and the
breaker apply to all of them. The async twin is :mod:`cachewise.backends.aclient`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from cachewise.exceptions import SerializationError
from cachewise.resilience import Resilience

from .format import ValueFormat
from .pools import ConnectionSettings, sync_client

__all__ = ["INCR_IF_EXISTS", "RedisCacheClient", "escape_pattern"]

#: INCRBY only if the key exists, in one round trip and atomically (Django raises on a missing key).
INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""

CLEAR_BATCH = 500
#: Above this size a memoryview beats copying the body out of the payload.
_VIEW_FROM = 32 * 1024


def escape_pattern(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _set_args(ttl_ms: int | None) -> dict[str, Any]:
    return {} if ttl_ms is None else {"px": ttl_ms}


class RedisCacheClient:
    """Cache operations on Redis keys; see the module docstring for the conventions."""

    def __init__(
        self, servers: Sequence[ConnectionSettings], value_format: ValueFormat, resilience: Resilience
    ):
        self.servers = list(servers)
        self.format = value_format
        self.resilience = resilience
        self.cluster = self.servers[0].cluster
        self._write: redis.Redis | None = None
        self._reads: list[redis.Redis] = []
        self._incr: Any = None
        self._fast_header = value_format.fast_header
        self._fast_loads = value_format.fast_loads

    def get_client(self, *, write: bool = True) -> redis.Redis:
        """A raw client (no key prefix): the primary for writes, a replica (if any) for reads."""
        if self._write is None:
            self._reads = [sync_client(server) for server in self.servers[1:]]
            self._incr = sync_client(self.servers[0]).register_script(INCR_IF_EXISTS)
            self._write = sync_client(self.servers[0])  # last: it marks the others as set
        if write or not self._reads:
            return self._write
        return random.choice(self._reads)

    def decode(self, raw: bytes, operation: str = "get") -> Any:
        """Decode ``raw``; an unreadable payload is reported and raised as SerializationError."""
        try:
            return self.format.decode(raw)
        except SerializationError as exc:
            self.resilience.report_unreadable(operation, exc)
            raise

    def _decode_or(self, raw: Any, default: Any, operation: str) -> Any:
        if raw is None:
            return default
        try:
            return self.decode(raw, operation)
        except SerializationError:
            return default  # reported: tampered or unreadable values are misses

    def get(self, key: str, default: Any) -> Any:
        client = self.get_client(write=False)
        raw: Any = self.resilience.call("get", lambda: client.get(key), fallback=_none)
        if raw is None:
            return default
        if raw and raw[0] == self._fast_header and len(raw) < _VIEW_FROM:  # the hit path, inlined
            try:
                return self._fast_loads(raw[1:])
            except Exception:  # unreadable: decode() below reports it and answers a miss
                pass
        return self._decode_or(raw, default, "get")

    def set(self, key: str, value: Any, ttl_ms: int | None) -> bool:
        client = self.get_client()
        if ttl_ms is not None and ttl_ms <= 0:
            self.resilience.call("delete", lambda: client.delete(key), fallback=lambda error: 0)
            return True
        payload = self.format.encode(value)
        return bool(
            self.resilience.call(
                "set", lambda: client.set(key, payload, **_set_args(ttl_ms)), fallback=_false
            )
        )

    def add(self, key: str, value: Any, ttl_ms: int | None, operation: str = "add") -> bool:
        client = self.get_client()
        if ttl_ms is not None and ttl_ms <= 0:
            # Nothing would be stored; the answer is whether it would have been added.
            return not self.resilience.call(operation, lambda: client.exists(key), fallback=lambda error: 1)
        payload = self.format.encode(value)
        stored = self.resilience.call(
            operation, lambda: client.set(key, payload, nx=True, **_set_args(ttl_ms)), fallback=_false
        )
        return bool(stored)

    def touch(self, key: str, ttl_ms: int | None) -> bool:
        client = self.get_client()
        if ttl_ms is None:
            # PERSIST answers 0 for a key without a TTL; EXISTS tells whether the key is there.
            def persist() -> list[Any]:
                with client.pipeline(transaction=False) as pipe:
                    pipe.persist(key)
                    pipe.exists(key)
                    return pipe.execute()

            return bool(self.resilience.call("touch", persist, fallback=lambda error: [0, 0])[1])
        if ttl_ms <= 0:
            return bool(self.resilience.call("touch", lambda: client.delete(key), fallback=lambda error: 0))
        return bool(self.resilience.call("touch", lambda: client.pexpire(key, ttl_ms), fallback=_false))

    def delete(self, key: str) -> bool:
        client = self.get_client()
        return bool(self.resilience.call("delete", lambda: client.delete(key), fallback=lambda error: 0))

    def get_many(self, keys: Sequence[str], names: Sequence[Any]) -> dict[Any, Any]:
        """MGET ``keys``; return ``{name: value}`` for the hits (``names[i]`` names ``keys[i]``)."""
        if not keys:
            return {}
        client = self.get_client(write=False)
        mget = client.mget_nonatomic if self.cluster else client.mget  # type: ignore[attr-defined]
        raws: list[Any] | None = self.resilience.call("get_many", lambda: mget(keys), fallback=_none)
        return {} if raws is None else self._decode_hits(names, raws)

    def _decode_hits(self, names: Sequence[Any], raws: list[Any]) -> dict[Any, Any]:
        decode, fast, loads = self.format.decode, self._fast_header, self._fast_loads
        pairs = zip(names, raws, strict=True)
        try:  # the common case: every payload readable, one tight loop
            return {
                name: loads(raw[1:]) if raw[0] == fast else decode(raw)
                for name, raw in pairs
                if raw is not None
            }
        except Exception:  # some payload is unreadable: decode one by one, report each, leave it out
            pairs = zip(names, raws, strict=True)
            values = {name: self._decode_or(raw, MISSING, "get_many") for name, raw in pairs}
            return {name: value for name, value in values.items() if value is not MISSING}

    def set_many(self, data: dict[str, Any], ttl_ms: int | None) -> bool:
        """Store every item in one pipelined round trip; False if the policy skipped it."""
        client = self.get_client()
        if ttl_ms is not None and ttl_ms <= 0:
            self.resilience.call("delete_many", lambda: client.delete(*data), fallback=lambda error: 0)
            return True
        payloads = {key: self.format.encode(value) for key, value in data.items()}
        args = _set_args(ttl_ms)

        def store() -> bool:
            with client.pipeline(transaction=False) as pipe:
                for key, payload in payloads.items():
                    pipe.set(key, payload, **args)
                pipe.execute()
            return True

        return self.resilience.call("set_many", store, fallback=_false)

    def delete_many(self, keys: Iterable[str]) -> int:
        client = self.get_client()
        keys = list(keys)
        return int(
            self.resilience.call("delete_many", lambda: client.delete(*keys), fallback=lambda error: 0)
        )

    def has_key(self, key: str) -> bool:
        client = self.get_client(write=False)
        return bool(self.resilience.call("has_key", lambda: client.exists(key), fallback=lambda error: 0))

    def incr(self, key: str, delta: int) -> int:
        """INCRBY an existing key in one round trip; ValueError if it is missing (Django's contract)."""
        self.get_client()
        script = self._incr
        result = self.resilience.call(
            "incr", lambda: script(keys=[key], args=[delta]), fallback=lambda error: None
        )
        if result is None:
            raise ValueError(f"Key '{key}' not found.")
        return int(result)

    def clear(self, pattern: str) -> int:
        """UNLINK every key matching ``pattern`` (SCAN in batches, never FLUSHDB); return the count."""
        client = self.get_client()

        def unlink_matching() -> int:
            removed = 0
            batch: list[bytes] = []
            for found in client.scan_iter(match=pattern, count=CLEAR_BATCH):
                batch.append(found)
                if len(batch) >= CLEAR_BATCH:
                    removed += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(client.unlink(*batch))
            return removed

        return self.resilience.call("clear", unlink_matching, fallback=lambda error: 0)

    def flush_db(self) -> None:
        """FLUSHDB the whole logical database (every prefix!); raises on failure."""
        client = self.get_client()
        self.resilience.call("flush_db", client.flushdb)


class _Missing:
    """Marks a key absent from a get_many answer (``None`` is a cacheable value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<MISSING>"


MISSING: Any = _Missing()


def _false(error: Exception) -> bool:
    return False


def _none(error: Exception) -> None:
    return None
