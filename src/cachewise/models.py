"""The cachewise app's models: durable records that let guarantees survive a crash or an outage."""

from __future__ import annotations

import datetime

from django.db import models


class CounterBatch(models.Model):
    """A counter batch applied to the database (see :mod:`cachewise.counters.batches`).

    ``Counter.flush`` inserts this row in the same transaction as the batch's ``apply`` calls:
    the row exists exactly when the batch's counts are in the database, so a flusher that
    finds a batch left in Redis by a dead one knows whether to apply it or only delete it.
    ``source`` (the Redis run the batch was drained from), ``seq`` (its number in that run) and
    ``members`` (its ids, one per line) let a flusher tell, after Redis came back from an older
    snapshot, which of the counts the snapshot brought back are already in the database.
    Rows are pruned a day after their batch left Redis.
    """

    counter: models.CharField[str, str] = models.CharField(max_length=200)
    batch_id: models.CharField[str, str] = models.CharField(max_length=32)
    applied_at: models.DateTimeField[datetime.datetime, datetime.datetime] = models.DateTimeField(
        db_index=True
    )
    source: models.CharField[str, str] = models.CharField(max_length=12, default="")
    seq: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    members: models.TextField[str, str] = models.TextField(default="")

    class Meta:
        app_label = "cachewise"
        constraints = [
            models.UniqueConstraint(fields=["counter", "batch_id"], name="cachewise_counter_batch_once")
        ]
        indexes = [models.Index(fields=["counter", "source", "seq"], name="cachewise_counter_batch_seq")]

    def __str__(self) -> str:
        return f"{self.counter} batch {self.batch_id}"


class UndeliveredInvalidation(models.Model):
    """An invalidation the cache did not receive (see :mod:`cachewise.recovery`).

    Written when a version bump fails (after the write committed), and inside the write's own
    transaction when the cache is already known to be down. Every process polls this table and
    the first one that reaches the cache bumps ``keys`` there, then deletes the row; so a writer
    that exits (a management command, a task) does not take the invalidation with it.
    """

    alias: models.CharField[str, str] = models.CharField(max_length=100)
    #: ``"orm"`` (ORM version counters) or ``"namespace"`` (a Namespace scope's version).
    kind: models.CharField[str, str] = models.CharField(max_length=16)
    #: JSON list of the counter keys to bump, as :func:`cachewise.make_key` built them.
    keys: models.TextField[str, str] = models.TextField()
    #: Lifetime of a Namespace counter (None: no expiry); unused for ORM counters.
    ttl: models.FloatField[float | None, float | None] = models.FloatField(null=True)
    created_at: models.DateTimeField[datetime.datetime, datetime.datetime] = models.DateTimeField(
        auto_now_add=True
    )

    class Meta:
        app_label = "cachewise"

    def __str__(self) -> str:
        return f"{self.kind} invalidation on {self.alias!r} at {self.created_at}"
