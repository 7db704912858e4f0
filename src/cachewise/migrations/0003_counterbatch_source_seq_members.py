"""CounterBatch: the Redis run and number of each batch, and its ids (snapshot rollback)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cachewise", "0002_undeliveredinvalidation")]

    operations = [
        migrations.AddField(
            model_name="counterbatch", name="source", field=models.CharField(default="", max_length=12)
        ),
        migrations.AddField(model_name="counterbatch", name="seq", field=models.BigIntegerField(default=0)),
        migrations.AddField(model_name="counterbatch", name="members", field=models.TextField(default="")),
        migrations.AddIndex(
            model_name="counterbatch",
            index=models.Index(fields=["counter", "source", "seq"], name="cachewise_counter_batch_seq"),
        ),
    ]
