"""Bounded commands for batches of any size: how ``get_many``, ``set_many`` and ``delete_many`` split.

Redis runs one command at a time: a single ``MGET`` of two million keys holds every other client
for the better part of a second, and takes longer than the socket timeout, so the caller sees an
outage that is not one. Each batch is therefore cut into chunks of at most :data:`MAX_KEYS` keys
and (for writes, and for reads once the first answer shows how large values are) about
:data:`MAX_BYTES` bytes, each sent as its own command or pipeline:

* no single command holds Redis for more than about a millisecond, whatever the batch size;
* every chunk has its own ``socket_timeout``: a large batch may take seconds as a whole, and only
  a chunk that gets no answer (a server that stopped answering) counts as an outage;
* memory stays bounded: a chunk's payloads are encoded just before they are sent.

A chunk that fails stops the batch (the breaker counts one failure, not one per remaining chunk):
reads answer what came back before it (the rest are misses), writes report what was not stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["FIRST_READ", "MAX_BYTES", "MAX_KEYS", "ReadSizer", "key_chunks", "write_chunks"]

T = TypeVar("T")

#: Keys per command: an MGET/DEL of 1,000 small keys runs in ~0.1-0.3 ms on the server.
MAX_KEYS = 1000
#: Keys of the first read chunk of a larger batch, before value sizes are known.
FIRST_READ = 100
#: Payload bytes per chunk: copying 1 MiB into a reply or out of a query buffer takes well under 1 ms.
MAX_BYTES = 1 << 20


def key_chunks(keys: Sequence[T], size: int = MAX_KEYS) -> Iterator[Sequence[T]]:
    """``keys`` in slices of at most ``size`` (the sequence itself when it fits)."""
    if len(keys) <= size:
        yield keys
        return
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def write_chunks(keys: Sequence[str], payloads: Sequence[Any]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` index ranges of at most MAX_KEYS items and about MAX_BYTES of payload.

    A single payload larger than MAX_BYTES is a chunk of its own (one SET cannot be split).
    """
    start, size = 0, 0
    for index, payload in enumerate(payloads):
        length = len(payload) if isinstance(payload, (bytes, bytearray, str)) else 8
        length += len(keys[index])
        if index > start and (index - start >= MAX_KEYS or size + length > MAX_BYTES):
            yield start, index
            start, size = index, 0
        size += length
    if start < len(payloads):
        yield start, len(payloads)


class ReadSizer:
    """The size of the next read chunk: FIRST_READ keys, then about MAX_BYTES (<= MAX_KEYS keys).

    Value sizes are unknown before the first answer, so a batch larger than FIRST_READ starts
    with a probe of FIRST_READ keys; after each chunk the next one is sized so that its reply
    stays near MAX_BYTES at the average value size seen so far.
    """

    __slots__ = ("keys", "size", "total_bytes")

    def __init__(self) -> None:
        self.keys = 0
        self.total_bytes = 0
        self.size = FIRST_READ

    def seen(self, raws: Sequence[Any]) -> None:
        """Account for one chunk's raw answers (``None`` for absent keys)."""
        self.keys += len(raws)
        self.total_bytes += sum(map(len, filter(None, raws)))
        average = self.total_bytes / self.keys if self.keys else 0
        self.size = MAX_KEYS if average <= 0 else max(1, min(MAX_KEYS, int(MAX_BYTES / average)))
