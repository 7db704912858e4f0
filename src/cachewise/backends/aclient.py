"""The async lower tier: the same operations as :mod:`.client`, natively on ``redis.asyncio``.

No thread hop (``sync_to_async``): each coroutine awaits the Redis reply on the running event
loop, through a pool that belongs to that loop (:func:`cachewise.backends.pools.async_client`).
Semantics, TTL conventions, value format and failure policy are those of
:class:`~cachewise.backends.client.RedisCacheClient`, whose decoding it shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import redis.asyncio as aioredis

from cachewise.store.scripts import arun
from cachewise.store.scripts.counts import INCR_IF_EXISTS

from .batches import MAX_KEYS, ReadSizer, key_chunks, write_chunks
from .client import CLEAR_BATCH, RedisCacheClient, _false, _none, _set_args
from .pools import async_client, close_async_client

__all__ = ["AsyncRedisCacheClient"]


class AsyncRedisCacheClient:
    """Async cache operations on Redis keys; wraps the sync tier for format and resilience."""

    def __init__(self, sync: RedisCacheClient) -> None:
        self.sync = sync
        self.resilience = sync.resilience
        self.format = sync.format

    def get_client(self) -> aioredis.Redis:
        """The running loop's client of the primary server (created on first use in this loop)."""
        return async_client(self.sync.servers[0])

    async def close(self) -> None:
        """Disconnect the running loop's pool; call before closing a loop you created yourself."""
        for server in self.sync.servers:
            await close_async_client(server)

    async def get(self, key: str, default: Any) -> Any:
        client = self.get_client()
        raw = await self.resilience.acall("get", lambda: client.get(key), fallback=lambda error: None)
        return self.sync.decode_hit(raw, default)

    async def set(self, key: str, value: Any, ttl_ms: int | None) -> bool:
        client = self.get_client()
        if ttl_ms is not None and ttl_ms <= 0:
            await self.resilience.acall("delete", lambda: client.delete(key), fallback=lambda error: 0)
            return True
        payload = self.format.encode(value)
        stored = await self.resilience.acall(
            "set", lambda: client.set(key, payload, **_set_args(ttl_ms)), fallback=_false
        )
        return bool(stored)

    async def add(self, key: str, value: Any, ttl_ms: int | None, operation: str = "add") -> bool:
        client = self.get_client()
        if ttl_ms is not None and ttl_ms <= 0:
            return not await self.resilience.acall(
                operation, lambda: client.exists(key), fallback=lambda error: 1
            )
        payload = self.format.encode(value)
        stored = await self.resilience.acall(
            operation, lambda: client.set(key, payload, nx=True, **_set_args(ttl_ms)), fallback=_false
        )
        return bool(stored)

    async def touch(self, key: str, ttl_ms: int | None) -> bool:
        client = self.get_client()
        if ttl_ms is None:

            async def persist() -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.persist(key)
                    pipe.exists(key)
                    return await pipe.execute()

            return bool((await self.resilience.acall("touch", persist, fallback=lambda error: [0, 0]))[1])
        if ttl_ms <= 0:
            return bool(
                await self.resilience.acall("touch", lambda: client.delete(key), fallback=lambda error: 0)
            )
        return bool(
            await self.resilience.acall("touch", lambda: client.pexpire(key, ttl_ms), fallback=_false)
        )

    async def delete(self, key: str) -> bool:
        client = self.get_client()
        return bool(
            await self.resilience.acall("delete", lambda: client.delete(key), fallback=lambda error: 0)
        )

    async def get_many(self, keys: Sequence[str], names: Sequence[Any]) -> dict[Any, Any]:
        """MGET in bounded chunks, as the sync tier does (:mod:`.batches`)."""
        if not keys:
            return {}
        client = self.get_client()
        mget = client.mget_nonatomic if self.sync.cluster else client.mget  # type: ignore[attr-defined]
        raws: list[Any] | None
        if len(keys) <= MAX_KEYS:  # the common case: one command
            raws = await self.resilience.acall("get_many", partial(mget, keys), fallback=_none)
            return {} if raws is None else self.sync._decode_hits(names, raws)
        found: dict[Any, Any] = {}
        sizer, start = ReadSizer(), 0
        while start < len(keys):
            chunk = keys[start : start + sizer.size]
            raws = await self.resilience.acall("get_many", partial(mget, chunk), fallback=_none)
            if raws is None:
                break
            found.update(self.sync._decode_hits(names[start : start + len(chunk)], raws))
            start += len(chunk)
            if start < len(keys):
                sizer.seen(raws)
        return found

    async def set_many(self, data: dict[str, Any], ttl_ms: int | None) -> int:
        """Pipelined chunks in order; the number of items stored (see the sync tier)."""
        if ttl_ms is not None and ttl_ms <= 0:
            await self.delete_many(list(data))
            return len(data)
        client = self.get_client()
        keys = list(data)
        payloads = [self.format.encode(value) for value in data.values()]
        args = _set_args(ttl_ms)
        for start, stop in write_chunks(keys, payloads):

            async def store(start: int = start, stop: int = stop) -> bool:
                async with client.pipeline(transaction=False) as pipe:
                    for index in range(start, stop):
                        pipe.set(keys[index], payloads[index], **args)
                    await pipe.execute()
                return True

            if not await self.resilience.acall("set_many", store, fallback=_false):
                return start
        return len(keys)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """UNLINK in chunks of MAX_KEYS."""
        client = self.get_client()
        removed = 0
        for chunk in key_chunks(list(keys)):
            deleted = await self.resilience.acall(
                "delete_many", partial(client.unlink, *chunk), fallback=_none
            )
            if deleted is None:
                break
            removed += int(deleted)
        return removed

    async def has_key(self, key: str) -> bool:
        client = self.get_client()
        return bool(
            await self.resilience.acall("has_key", lambda: client.exists(key), fallback=lambda error: 0)
        )

    async def incr(self, key: str, delta: int) -> int:
        client = self.get_client()
        result = await self.resilience.acall(
            "incr", lambda: arun(client, INCR_IF_EXISTS, [key], [delta]), fallback=lambda error: None
        )
        if result is None:
            raise ValueError(f"Key '{key}' not found.")
        return int(result)

    async def clear(self, pattern: str) -> int:
        client = self.get_client()

        async def unlink_matching() -> int:
            removed = 0
            batch: list[bytes] = []
            async for found in client.scan_iter(match=pattern, count=CLEAR_BATCH):
                batch.append(found)
                if len(batch) >= CLEAR_BATCH:
                    removed += int(await client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(await client.unlink(*batch))
            return removed

        return await self.resilience.acall("clear", unlink_matching, fallback=lambda error: 0)
