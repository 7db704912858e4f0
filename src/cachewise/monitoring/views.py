"""``/metrics`` for Prometheus and the staff dashboard; include :mod:`cachewise.monitoring.urls`.

Access to ``/metrics``: a staff user's session, ``Authorization: Bearer <CACHEWISE_METRICS_TOKEN>``
(compared in constant time), or a ``REMOTE_ADDR`` listed in ``CACHEWISE_METRICS_ALLOWED_IPS``.
Anything else gets 403 (scrapers are not logged in, so no redirect). By default no token and no
address are configured: only staff can read it, and nothing leaks when the URL is public.

The dashboard is staff-only: anonymous users are redirected to ``settings.LOGIN_URL``, logged-in
users who are not staff get 403. It renders (200) even when Redis is unreachable, saying so.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from cachewise.conf import conf
from cachewise.monitoring.advisor.advice import build
from cachewise.monitoring.advisor.settings import advisor_settings

from .chart import hit_rate_chart
from .report import build_report

__all__ = ["dashboard", "metrics"]


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_allowed(request: HttpRequest) -> bool:
    """True if ``request`` may read ``/metrics`` (staff, bearer token or allowed address)."""
    if _is_staff(request):
        return True
    token = conf.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())
    return request.META.get("REMOTE_ADDR", "") in conf.METRICS_ALLOWED_IPS


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of every alias's whole-site counters and Redis health."""
    if not metrics_allowed(request):
        raise PermissionDenied("cachewise metrics: staff, bearer token or allowed address required")
    from .prometheus import CONTENT_TYPE_LATEST, render  # noqa: PLC0415 - prometheus_client: an extra

    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def _aliases(request: HttpRequest) -> list[str]:
    chosen = request.GET.get("alias", "")
    return [chosen] if chosen in settings.CACHES else list(settings.CACHES)


@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    """The staff dashboard: hit rate over time, namespaces, Redis memory and evictions, breaker."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not _is_staff(request):
        raise PermissionDenied("cachewise dashboard: staff only")
    sections = []
    for alias in _aliases(request):
        report = build_report(alias, pings=10)
        sections.append({"report": report, "chart": hit_rate_chart(report.series)})
    context = {"sections": sections, "refresh": 30, "advisor": _advisor_ranking()}
    return render(request, "cachewise/dashboard.html", context)


def _advisor_ranking() -> Any:
    """The advisor's top routes when it records, else None (the dashboard never stores predictions)."""
    if not advisor_settings.RECORD:
        return None

    return build(save_predictions=False, limit=10)
