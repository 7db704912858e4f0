"""URLconf of the page-cache tests (tests/test_views_*.py, tests/pagecache/test_middleware.py)."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from tests import views_views as v

urlpatterns: list[URLPattern] = [
    path("echo/", v.echo),
    path("token-hello/", v.token_hello),
    path("issues-token/", v.issues_token),
    path("hello/", v.hello),
    path("dashboard/", v.dashboard),
    path("csrf/", v.csrf_form),
    path("template-form/", v.template_form),
    path("template-plain/", v.template_plain),
    path("sets-cookie/", v.sets_cookie),
    path("writes-session/", v.writes_session),
    path("cache-control/", v.cache_control),
    path("vary-star/", v.vary_star),
    path("streaming/", v.streaming),
    path("status/", v.status),
    path("messages/", v.messages_view),
    path("add-message/", v.add_message),
    path("allow-listed/", v.allow_listed),
    path("slow/", v.slow),
    path("short-slow/", v.short_slow),
    path("boom/", v.boom),
    path("short-max-age/", v.short_max_age),
    path("async-echo/", v.async_echo),
    path("async-slow/", v.async_slow),
    path("django-hello/", v.django_hello),
    path("async-plain/<str:name>/", v.async_plain),
    re_path(r"^plain/.*$", v.plain),
]
