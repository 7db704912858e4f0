"""App config of the demo blog."""

from __future__ import annotations

from typing import Any

import django
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _tune_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django >= 5.1 applies these through OPTIONS (init_command, transaction_mode); older
    # versions get WAL and relaxed syncs here, which is what keeps Gunicorn threads from
    # "database is locked" errors on the uncached counter view.
    if connection.vendor == "sqlite":
        from demo.settings import SQLITE_PRAGMAS

        with connection.cursor() as cursor:
            for pragma in filter(None, (p.strip() for p in SQLITE_PRAGMAS.split(";"))):
                cursor.execute(pragma)


class BlogConfig(AppConfig):
    """``demo.blog``."""

    name = "demo.blog"
    label = "blog"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """On Django < 5.1, tune SQLite connections by hand (see demo/settings.py)."""
        if django.VERSION < (5, 1):
            connection_created.connect(_tune_sqlite, dispatch_uid="demo.blog.tune_sqlite")
