"""Cache sessions while the session cache is down: a login answers 503 with Retry-After, not 500.

The README's ``SESSION_ENGINE`` keeps sessions in the cache. A login must store a new session
(``create()`` is an ``add``, which raises rather than pretend), so while Redis is down it cannot
succeed; ``CacheUnavailableMiddleware`` makes that a clear, retryable 503. When Redis is back
the same POST logs in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import authenticate, login
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("bad credentials", status=401)
    login(request, user)
    return HttpResponse("welcome", status=200)


def whoami_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() or "anonymous")


def remember_view(request: HttpRequest) -> HttpResponse:
    request.session["theme"] = "dark"  # a first session write, saved by SessionMiddleware
    return HttpResponse("remembered")


urlpatterns = [
    path("login/", login_view),
    path("whoami/", whoami_view),
    path("remember/", remember_view),
]

MIDDLEWARE = [
    "cachewise.middleware.CacheUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@pytest.fixture
def session_redis(disposable_redis: EmbeddedRedis) -> Iterator[EmbeddedRedis]:
    """Cache sessions on a Redis of this test's own, as the README configures them."""
    caches = caches_from_url(disposable_redis.url, key_prefix="sessions-test", options={"cooldown": 0.2})
    settings: dict[str, Any] = {
        "CACHES": caches,
        "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        "SESSION_CACHE_ALIAS": "sessions",
        "MIDDLEWARE": MIDDLEWARE,
    }
    with override_settings(**settings):
        yield disposable_redis


def _login(client: Client) -> Any:
    return client.post("/login/", {"username": "ann", "password": "pw-of-ann"})


def test_login_while_the_session_cache_is_down_is_a_503_then_works_when_it_is_back(
    session_redis: EmbeddedRedis,
) -> None:
    User.objects.create_user("ann", password="pw-of-ann")
    session_redis.kill()
    client = Client(raise_request_exception=False)
    down = _login(client)
    assert down.status_code == 503
    assert down["Retry-After"] == "5"
    assert "no-store" in down["Cache-Control"]
    assert client.get("/whoami/").content == b"anonymous"  # session reads fail open

    session_redis.restart()
    time.sleep(0.3)  # the circuit breaker's cool-down (0.2 s here) passes: it probes again
    assert _login(client).status_code == 200
    assert client.get("/whoami/").content == b"ann"


def test_first_session_write_saved_by_the_session_middleware_is_a_503(session_redis: EmbeddedRedis) -> None:
    session_redis.kill()
    response = Client(raise_request_exception=False).get("/remember/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_w035_cache_sessions_without_the_503_middleware_above_them() -> None:
    from cachewise.checks.session_outage import check_session_outage_answer

    sessions = "django.contrib.sessions.middleware.SessionMiddleware"
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache", MIDDLEWARE=[sessions]):
        assert [m.id for m in check_session_outage_answer()] == ["cachewise.W035"]
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache", MIDDLEWARE=MIDDLEWARE):
        assert check_session_outage_answer() == []
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db", MIDDLEWARE=[sessions]):
        assert check_session_outage_answer() == []
