"""Counts that came back with an older Redis snapshot are not applied twice.

A Redis server restarted from an older RDB file, or a replica promoted before it received the
last writes, holds the counters as they were at some past moment: pending counts that a flush
has since moved into the database are back in the live hash. Counting them again is the double
count of issue 13.

Every increment lands in the live hash of the server's current *run* (its ``run_id``): counts
made after the restart go to a new hash and never mix with what the snapshot brought back. A
flusher that finds the live hash of an earlier run reconciles it before draining it: the
number of the last batch drained from that run (``~seq``, which went back in time with the
snapshot) is compared with the ``CounterBatch`` rows of that run in the database. Rows numbered
above it are batches drained after the snapshot: each id they list had its whole count at the
time of the snapshot drained into them (a drain takes an id's entire count), so that id's
restored count is dropped. The rest of the hash is applied normally.

Limits (in ``docs/counters.md``): rows are kept a day, so the snapshot must be younger than
that; an id whose first batch after the snapshot was still pending (its flusher dead) when Redis
went back in time, and that a later batch took again, loses its restored count (a double fault:
never a double count).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .redis import RedisBatches

__all__ = ["reconcile"]

logger = logging.getLogger("cachewise.counters")

_CHUNK = 500


def reconcile(batches: RedisBatches, name: str, source: str, db: str) -> int:
    """Drop from ``source``'s live hash the counts the database already holds; return their sum."""
    from cachewise.models import CounterBatch  # noqa: PLC0415 - a model class: importable only once the app registry is ready

    since = batches.last_seq(source)
    rows = list(
        CounterBatch.objects.using(db)
        .filter(counter=name, source=source, seq__gt=since)
        .values_list("seq", "members")
    )
    if not rows:
        return 0
    last = max(seq for seq, _ in rows)
    members = sorted({m for _, text in rows for m in text.split("\n") if m})
    dropped = 0
    for start in range(0, len(members), _CHUNK):
        final = start + _CHUNK >= len(members)
        # Move ~seq only with the last chunk: a concurrent flusher that reads it meanwhile
        # still sees the old number and drops the same ids before it drains any.
        dropped += batches.discard(source, last if final else 0, members[start : start + _CHUNK])
    if not members:
        batches.discard(source, last, [])
    logger.warning(
        "counter %r: Redis went back in time (run %s: last batch %d, the database has up to %d); "
        "dropped %d restored counts of %d ids already applied",
        name,
        source,
        since,
        last,
        dropped,
        len(members),
    )
    return dropped
