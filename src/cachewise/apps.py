"""Django app config: registers the system checks and the ORM invalidation receivers."""

from __future__ import annotations

from django.apps import AppConfig


class CachewiseConfig(AppConfig):
    """``INSTALLED_APPS = [..., "cachewise"]``."""

    name = "cachewise"
    verbose_name = "cachewise"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Register the system checks (importing ``checks`` runs its ``@register``), connect the
        monitoring signal receivers, and the ORM invalidation receivers unless
        ``CACHEWISE_ORM_INVALIDATION`` is False. Nothing here touches the network."""
        from . import checks  # noqa: F401
        from .conf import conf
        from .monitoring.report import connect_signals

        connect_signals()
        if conf.ORM_INVALIDATION:
            from .orm.invalidation import connect_receivers

            connect_receivers()
