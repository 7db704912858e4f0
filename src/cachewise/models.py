"""The cachewise app's one model: the record that makes counter flushes exactly-once."""

from __future__ import annotations

import datetime

from django.db import models


class CounterBatch(models.Model):
    """A counter batch applied to the database (see :mod:`cachewise.counter_batches`).

    ``Counter.flush`` inserts this row in the same transaction as the batch's ``apply`` calls:
    the row exists exactly when the batch's counts are in the database, so a flusher that
    finds a batch left in Redis by a dead one knows whether to apply it or only delete it.
    Rows are pruned an hour after their batch left Redis.
    """

    counter: models.CharField[str, str] = models.CharField(max_length=200)
    batch_id: models.CharField[str, str] = models.CharField(max_length=32)
    applied_at: models.DateTimeField[datetime.datetime, datetime.datetime] = models.DateTimeField(
        db_index=True
    )

    class Meta:
        app_label = "cachewise"
        constraints = [
            models.UniqueConstraint(fields=["counter", "batch_id"], name="cachewise_counter_batch_once")
        ]

    def __str__(self) -> str:
        return f"{self.counter} batch {self.batch_id}"
