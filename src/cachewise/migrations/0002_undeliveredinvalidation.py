"""UndeliveredInvalidation: invalidations the cache did not receive, applied when it answers."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("cachewise", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="UndeliveredInvalidation",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                ("alias", models.CharField(max_length=100)),
                ("kind", models.CharField(max_length=16)),
                ("keys", models.TextField()),
                ("ttl", models.FloatField(null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
