"""The Redis side of a counter: live hashes, pending batches (scripts: :mod:`cachewise.store.scripts.counts`).

Every command here is bounded: a drain step moves at most ``batch_size`` ids, whatever the
number of pending ids, so a flush of 100,000 ids is many short steps, never one long one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachewise.store.scripts import Script, counts

if TYPE_CHECKING:
    from cachewise.store.redis import RedisStore

    from .counter import Counter

__all__ = ["PendingBatch", "RedisBatches", "RunChanged"]

#: Pending batches recovered per claim round.
CLAIM_BATCHES = 10


@dataclass(frozen=True)
class PendingBatch:
    """A batch drained into Redis, held by this flusher until ``deadline`` (server ms).

    ``source`` is the run (server incarnation) it was drained from and ``seq`` its number there.
    """

    batch_id: str
    deadline: int
    items: list[tuple[str, int]]  # (member, count)
    source: str = ""
    seq: int = 0


class RunChanged(Exception):
    """The server restarted (or failed over) during a flush: its run is not the current one."""


class RedisBatches:
    """A counter's keys on Redis and the bounded steps that move counts between them."""

    def __init__(self, store: RedisStore, counter: Counter) -> None:
        self.store = store
        full: Callable[[str], str] = store.cache.make_key
        self._full = full
        tag = f"{{{counter.name}}}"
        self.live = full(f"{tag}:~live:")  # + run
        self.lives = full(f"{tag}:~lives")
        self.seq = full(f"{tag}:~seq")
        self.pending = full(f"{tag}:~pending")
        self._batch_prefix = f"{tag}:~batch:"

    def _batch(self, batch_id: str) -> str:
        return self._full(self._batch_prefix + batch_id)

    def _script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        return self.store.script("incr", script, keys, args)

    def run(self) -> str:
        """The current run of the counter's server (changes at every restart or promotion)."""
        return _text(self._script(counts.COUNTER_RUN, [self.live], []))

    def sources(self) -> set[str]:
        """The runs that have a live hash (normally one: the current run)."""
        client, lives = self.store.client, self.lives
        return {_text(m) for m in self.store.call("get", lambda: client.smembers(lives))}

    def size(self, source: str) -> int:
        client, live = self.store.client, self.live + source
        return int(self.store.call("get", lambda: client.hlen(live)))

    def drain_step(
        self, source: str, batch_size: int, lease_ms: int, ttl_ms: int, *, current: bool
    ) -> PendingBatch | None:
        """Move up to ``batch_size`` ids of ``source``'s live hash into a new pending batch.

        None when that hash is empty. Raises :class:`RunChanged` when ``current`` is claimed
        for a run that is not the server's current one any more.
        """
        batch_id = uuid.uuid4().hex
        keys = [self.live, self.lives, self.seq, self.pending, self._batch(batch_id)]
        args = [batch_id, lease_ms, source, batch_size, ttl_ms, "1" if current else "0"]
        out = self._script(counts.COUNTER_DRAIN_BATCH, keys, args)
        if int(out[0]) == -1:
            raise RunChanged(source)
        if int(out[0]) == 0:
            return None
        flat = [_text(x) for x in out[2]]
        items = [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return PendingBatch(batch_id, int(out[0]), items, source, int(out[1]))

    def discard(self, source: str, last_seq: int, members: list[str]) -> int:
        """Drop ``members`` from ``source``'s live hash, move its seq to ``last_seq``; return the
        counts dropped (they are in the database already: see :mod:`cachewise.counter_rollback`)."""
        return int(self._script(counts.COUNTER_DISCARD, [self.live, self.seq], [source, last_seq, *members]))

    def last_seq(self, source: str) -> int:
        client, seq = self.store.client, self.seq
        return int(self.store.call("get", lambda: client.hget(seq, source)) or 0)

    def claim(self, lease_ms: int) -> list[PendingBatch]:
        """Take over the lease of some batches whose lease expired; return them with their counts."""
        deadline, ids = self._script(counts.COUNTER_BATCH_CLAIM, [self.pending], [lease_ms, CLAIM_BATCHES])
        client, claimed = self.store.client, []
        for batch_id in map(_text, ids):
            key = self._batch(batch_id)
            fields = self.store.call("get", lambda key=key: client.hgetall(key))  # type: ignore[misc]
            claimed.append(_from_hash(batch_id, int(deadline), fields))
        return claimed

    def done(self, batch_id: str) -> None:
        """Forget a batch whose counts are committed."""
        self._script(counts.COUNTER_BATCH_DONE, [self.pending, self._batch(batch_id)], [batch_id])

    def restore(self, batch: PendingBatch, ttl_ms: int, members: list[str] | None = None) -> bool:
        """Put a batch (or only ``members`` of it) back into the live counts of the current run,
        if this flusher still holds its lease. Only for a batch surely not committed."""
        keys = [self.live, self.lives, self.pending, self._batch(batch.batch_id)]
        args: list[Any] = [batch.batch_id, batch.deadline, ttl_ms, *(members or [])]
        return bool(self._script(counts.COUNTER_BATCH_RESTORE, keys, args))

    def pending_ids(self) -> set[str]:
        client, pending = self.store.client, self.pending
        return {_text(m) for m in self.store.call("get", lambda: client.zrange(pending, 0, -1))}


def _from_hash(batch_id: str, deadline: int, fields: dict[Any, Any]) -> PendingBatch:
    values = {_text(k): _text(v) for k, v in fields.items()}
    source, seq = values.pop("~src", ""), int(values.pop("~seq", 0))
    items = sorted((member, int(count)) for member, count in values.items())
    return PendingBatch(batch_id, deadline, items, source, seq)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
