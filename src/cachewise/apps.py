"""Django app config: registers the system checks, the ORM invalidation receivers and the hooks
of the packages that sit above the ones they observe.

Everything is imported here, at module level: none of these modules touches a model class or a
setting when imported (models are looked up through the app registry when used), so the app
module can load before the registry is ready. Importing the ``checks`` modules runs their
``@register``; importing :mod:`cachewise.monitoring.advisor.changes` and
:mod:`cachewise.monitoring.aggregate` registers their hooks with the ORM and the metrics.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import request_finished, request_started

from cachewise.checks import caches, cluster, counters, pages, project, security  # noqa: F401
from cachewise.conf import conf
from cachewise.monitoring import aggregate  # noqa: F401  (starts flushing once counting is on)
from cachewise.monitoring.advisor import changes  # noqa: F401  (counts committed writes)
from cachewise.monitoring.advisor import checks as advisor_checks  # noqa: F401
from cachewise.monitoring.report import connect_signals
from cachewise.orm.invalidation import connect_receivers
from cachewise.pagecache import tracking  # noqa: F401  (connects the page query tracker to new connections)
from cachewise.pagecache.fragments import mark_request_finished, mark_request_started


class CachewiseConfig(AppConfig):
    """``INSTALLED_APPS = [..., "cachewise"]``."""

    name = "cachewise"
    verbose_name = "cachewise"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Connect the monitoring signal receivers, the request-start mark of fragment fills, and
        the ORM invalidation receivers unless ``CACHEWISE_ORM_INVALIDATION`` is False. Nothing
        here touches the network."""
        connect_signals()
        request_started.connect(mark_request_started, dispatch_uid="cachewise.fragments.request_started")
        request_finished.connect(mark_request_finished, dispatch_uid="cachewise.fragments.request_finished")
        if conf.ORM_INVALIDATION:
            connect_receivers()
