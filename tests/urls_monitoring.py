"""URLconf for the monitoring tests: the include-able monitoring URLs plus a test-only login."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, include, path


def login_as_staff(request: HttpRequest) -> HttpResponse:
    """Log in the staff user ``staff`` (created by the test) and go to ``?next=``."""
    user = get_user_model().objects.get(username="staff")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(request.GET.get("next", "/"))


urlpatterns: list[URLPattern | URLResolver] = [
    path("cache/", include("cachewise.monitoring.urls")),
    path("test-login/", login_as_staff),
]
