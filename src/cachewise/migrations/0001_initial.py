"""CounterBatch: the exactly-once record of counter flushes."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="CounterBatch",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                ("counter", models.CharField(max_length=200)),
                ("batch_id", models.CharField(max_length=32)),
                ("applied_at", models.DateTimeField(db_index=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("counter", "batch_id"), name="cachewise_counter_batch_once"
                    )
                ],
            },
        ),
    ]
