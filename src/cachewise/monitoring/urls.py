"""URLs to include: ``path("cache/", include("cachewise.monitoring.urls"))``.

Gives ``cache/metrics/`` (name ``cachewise_monitoring:metrics``) and ``cache/dashboard/``
(``cachewise_monitoring:dashboard``).
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "cachewise_monitoring"

urlpatterns = [
    path("metrics/", views.metrics, name="metrics"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
