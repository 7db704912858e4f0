"""Root URLconf of the demo: the blog, the admin (staff login) and the cachewise dashboard."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from demo.blog.features import feature

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("demo.blog.urls")),
]

if feature("dashboard") is not None:
    urlpatterns.insert(0, path("cachewise/", include("cachewise.monitoring.urls")))
