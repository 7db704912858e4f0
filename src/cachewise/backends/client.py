"""The lower tier of the backend: Redis commands for each cache operation, one round trip each.

:class:`RedisCacheClient` receives finished keys (prefix and version applied by the backend) and
TTLs in milliseconds (``None``: no expiry; ``<= 0``: expire now). It owns no sockets: the clients
come from :mod:`cachewise.backends.pools`, shared by every thread of the process. Every command
runs through the alias' :class:`~cachewise.resilience.Resilience`, so the failure policy and the
breaker apply to all of them. The async twin is :mod:`cachewise.backends.aclient`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import redis

from cachewise.exceptions import SerializationError
from cachewise.missing import MISSING
from cachewise.resilience import CLOSED, Resilience
from cachewise.store.scripts import run
from cachewise.store.scripts.counts import INCR_IF_EXISTS

from .batches import MAX_KEYS, ReadSizer, key_chunks, write_chunks
from .connection import ConnectionSettings
from .direct import direct_get
from .format import ValueFormat
from .pools import sync_client

__all__ = ["MISSING", "RedisCacheClient", "escape_pattern"]


CLEAR_BATCH = 500


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
        self._fast_header = value_format.fast_header
        self._fast_loads = value_format.fast_loads
        self._fast_decode = value_format.fast_decoder()
        self._breaker = resilience.breaker
        self._errors = resilience.errors
        #: GET without redis-py's per-command machinery (:mod:`.direct`); None: use client.get.
        self._direct_get: Callable[[str], Any] | None = None

    def get_client(self, *, write: bool = True) -> redis.Redis:
        """A raw client (no key prefix): the primary for writes, a replica (if any) for reads."""
        if self._write is None:
            self._reads = [sync_client(server) for server in self.servers[1:]]
            primary = sync_client(self.servers[0])
            self._direct_get = None if self._reads else direct_get(primary)
            self._write = primary  # last: it marks the others as set
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
        direct = self._direct_get
        if direct is None:
            if self._write is not None:  # not a plain client: Cluster, Sentinel, a replica
                client = self.get_client(write=False)
                raw: Any = self.resilience.call("get", lambda: client.get(key), fallback=_none)
                return self.decode_hit(raw, default)
            self.get_client()
            return self.get(key, default)
        if self._breaker.state != CLOSED:  # open or half-open: the breaker decides, and learns
            raw = self.resilience.call("get", partial(direct, key), fallback=_none)
        else:  # the hit path: resilience.call's work inlined (a closed breaker needs no bookkeeping)
            try:
                raw = direct(key)
            except self._errors as exc:
                raw = self.resilience.failed("get", exc, _none)
        if raw is None:
            return default
        try:
            return self._fast_decode(raw)
        except Exception:  # noqa: BLE001 - unreadable or unauthenticated: decode() reports it, a miss
            return self._decode_or(raw, default, "get")

    def decode_hit(self, raw: Any, default: Any, operation: str = "get") -> Any:
        """The value of a ``GET`` reply: the usual headers inlined, everything else via decode()."""
        if raw is None:
            return default
        try:
            return self._fast_decode(raw)
        except Exception:  # noqa: BLE001 - unreadable or unauthenticated: decode() reports it, a miss
            return self._decode_or(raw, default, operation)

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
        """MGET ``keys`` in bounded chunks; return ``{name: value}`` for the hits.

        ``names[i]`` names ``keys[i]``. Each chunk is one command with its own socket timeout
        (:mod:`.batches`); a chunk that fails ends the batch, and the keys not read are misses.
        """
        if not keys:
            return {}
        client = self.get_client(write=False)
        if self.cluster and len(keys) > 1:
            try:
                groups = _by_node(client, keys, names)
            except Exception:  # noqa: BLE001 - a slot with no known node: one call, whose error the policy answers
                groups = []
            if len(groups) > 1:  # one call per node: a dead master costs only its own keys
                found: dict[Any, Any] = {}
                for node_keys, node_names in groups:
                    found.update(self._get_many(client, node_keys, node_names))
                return found
        return self._get_many(client, keys, names)

    def _get_many(self, client: Any, keys: Sequence[str], names: Sequence[Any]) -> dict[Any, Any]:
        mget = client.mget_nonatomic if self.cluster else client.mget
        if len(keys) <= MAX_KEYS:  # the common case: one command
            raws: list[Any] | None = self.resilience.call("get_many", lambda: mget(keys), fallback=_none)
            return {} if raws is None else self._decode_hits(names, raws)
        found: dict[Any, Any] = {}
        sizer, start = ReadSizer(), 0
        while start < len(keys):
            chunk = keys[start : start + sizer.size]
            raws = self.resilience.call("get_many", partial(mget, chunk), fallback=_none)
            if raws is None:
                break
            found.update(self._decode_hits(names[start : start + len(chunk)], raws))
            start += len(chunk)
            if start < len(keys):
                sizer.seen(raws)
        return found

    def _decode_hits(self, names: Sequence[Any], raws: list[Any]) -> dict[Any, Any]:
        decode, fast, loads = self._fast_decode, self._fast_header, self._fast_loads
        pairs = zip(names, raws, strict=True)
        try:  # the common case: every payload readable, one tight loop
            return {
                name: loads(raw[1:]) if raw[0] == fast else decode(raw)
                for name, raw in pairs
                if raw is not None
            }
        except Exception:  # noqa: BLE001 - some payload is unreadable: decode one by one, report each, leave it out
            pairs = zip(names, raws, strict=True)
            values = {name: self._decode_or(raw, MISSING, "get_many") for name, raw in pairs}
            return {name: value for name, value in values.items() if value is not MISSING}

    def decode_list(self, raws: Sequence[Any], missing: Any) -> list[Any]:
        """Each raw payload decoded, ``missing`` for absent or unreadable ones (reported)."""
        fast, loads, decode = self._fast_header, self._fast_loads, self._fast_decode
        try:  # the common case: every payload readable, one tight loop
            return [
                missing if raw is None else loads(raw[1:]) if raw[0] == fast else decode(raw) for raw in raws
            ]
        except Exception:  # noqa: BLE001 - a codec error in one payload: decode one by one, each reported
            return [self._decode_or(raw, missing, "get_many") for raw in raws]

    def set_many(self, data: dict[str, Any], ttl_ms: int | None) -> int:
        """Store the items in pipelined chunks (:mod:`.batches`); return how many were stored.

        Items are stored in order; a chunk the policy skipped ends the batch, so the items from
        the returned index on were not stored.
        """
        if ttl_ms is not None and ttl_ms <= 0:
            self.delete_many(list(data))
            return len(data)
        client = self.get_client()
        keys = list(data)
        payloads = [self.format.encode(value) for value in data.values()]
        args = _set_args(ttl_ms)
        for start, stop in write_chunks(keys, payloads):

            def store(start: int = start, stop: int = stop) -> bool:
                with client.pipeline(transaction=False) as pipe:
                    for index in range(start, stop):
                        pipe.set(keys[index], payloads[index], **args)
                    pipe.execute()
                return True

            if not self.resilience.call("set_many", store, fallback=_false):
                return start
        return len(keys)

    def delete_many(self, keys: Iterable[str]) -> int:
        """UNLINK ``keys`` in chunks of MAX_KEYS (memory is freed off the main thread)."""
        client = self.get_client()
        removed = 0
        for chunk in key_chunks(list(keys)):
            deleted = self.resilience.call("delete_many", partial(client.unlink, *chunk), fallback=_none)
            if deleted is None:
                break
            removed += int(deleted)
        return removed

    def has_key(self, key: str) -> bool:
        client = self.get_client(write=False)
        return bool(self.resilience.call("has_key", lambda: client.exists(key), fallback=lambda error: 0))

    def incr(self, key: str, delta: int) -> int:
        """INCRBY an existing key in one round trip; ValueError if it is missing (Django's contract)."""
        client = self.get_client()
        result = self.resilience.call(
            "incr", lambda: run(client, INCR_IF_EXISTS, [key], [delta]), fallback=lambda error: None
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


def _by_node(client: Any, keys: Sequence[str], names: Sequence[Any]) -> list[tuple[list[str], list[Any]]]:
    """``keys`` (and their names) grouped by the cluster node that serves them now."""
    groups: dict[str, tuple[list[str], list[Any]]] = {}
    nodes = client.nodes_manager
    for key, name in zip(keys, names, strict=True):
        node = nodes.get_node_from_slot(client.keyslot(key)).name
        group = groups.setdefault(node, ([], []))
        group[0].append(key)
        group[1].append(name)
    return list(groups.values())


def _false(error: Exception) -> bool:
    return False


def _none(error: Exception) -> None:
    return None
