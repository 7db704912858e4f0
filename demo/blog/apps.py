"""App config of the demo blog."""

from __future__ import annotations

from django.apps import AppConfig


class BlogConfig(AppConfig):
    """``demo.blog``."""

    name = "demo.blog"
    label = "blog"
    default_auto_field = "django.db.models.AutoField"
