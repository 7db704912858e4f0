"""The site-wide cache middleware: same rules as the decorator, include/exclude paths, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponseBase
from django.test import AsyncClient, Client

from cachewise.monitoring.metrics import metrics
from tests import views_views

pytestmark = pytest.mark.urls("tests.urls_views")

UPDATE = "cachewise.middleware.UpdateCacheMiddleware"
FETCH = "cachewise.middleware.FetchFromCacheMiddleware"


class OuterCookieMiddleware:
    """Sets a cookie on /plain/ab/ responses, outside FetchFromCacheMiddleware (an A/B bucket)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path.startswith("/plain/ab/"):
            response.set_cookie("bucket", "b")
        return response


class OuterTokenMiddleware:
    """Issues an API token in a response header on /plain/token/ (outside the cache middleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path.startswith("/plain/token/"):
            response["X-Api-Key"] = "issued-to-this-visitor"
        return response


@pytest.fixture(autouse=True)
def _site_cache(settings: Any) -> None:
    settings.CACHEWISE_DEBUG_HEADERS = True
    settings.CACHE_MIDDLEWARE_SECONDS = 30
    settings.MIDDLEWARE = [UPDATE, *settings.MIDDLEWARE, FETCH]


def _header(response: Any) -> str:
    return str(response["X-Cachewise"])


def test_anonymous_pages_are_cached_site_wide() -> None:
    client = Client()
    first, second = client.get("/plain/a"), client.get("/plain/a")
    assert (_header(first), _header(second)) == ("miss", "hit")
    assert second.content == first.content
    assert "max-age=30" in second["Cache-Control"]


@pytest.mark.django_db
def test_logged_in_users_never_get_the_anonymous_page_or_each_other() -> None:
    anon = Client()
    cached = anon.get("/plain/p").content
    for name in ("alice", "bob"):
        client = Client()
        client.force_login(User.objects.create_user(name))
        for _ in range(2):
            response = client.get("/plain/p")
            assert response.content.startswith(f"plain /plain/p {name} ".encode())
            assert _header(response) == "bypass; reason=session"
    assert anon.get("/plain/p").content == cached


def test_post_bypasses() -> None:
    assert _header(Client().post("/plain/form")) == "bypass; reason=method"


def test_exclude_patterns(settings: Any) -> None:
    settings.CACHEWISE_MIDDLEWARE_EXCLUDE = [r"^/plain/admin/"]
    before = metrics.snapshot().get(("bypass:excluded-path", "default", "page"), 0.0)
    client = Client()
    assert _header(client.get("/plain/admin/x")) == "bypass; reason=excluded-path"
    assert _header(client.get("/plain/admin/x")) == "bypass; reason=excluded-path"
    assert metrics.snapshot()[("bypass:excluded-path", "default", "page")] - before == 2
    client.get("/plain/public/x")
    assert _header(client.get("/plain/public/x")) == "hit"


def test_include_patterns_limit_caching_to_matching_paths(settings: Any) -> None:
    settings.CACHEWISE_MIDDLEWARE_INCLUDE = [r"^/plain/public/"]
    settings.CACHEWISE_MIDDLEWARE_EXCLUDE = [r"/private$"]
    client = Client()
    client.get("/plain/public/a")
    assert _header(client.get("/plain/public/a")) == "hit"
    assert _header(client.get("/plain/other")) == "bypass; reason=excluded-path"
    assert _header(client.get("/plain/public/private")) == "bypass; reason=excluded-path"


def test_key_prefix_setting_separates_sites(settings: Any) -> None:
    client = Client()
    client.get("/plain/k")
    settings.CACHE_MIDDLEWARE_KEY_PREFIX = "site2"
    assert _header(client.get("/plain/k")) == "miss"


def test_a_page_an_outer_middleware_personalised_is_made_private_and_not_kept(settings: Any) -> None:
    settings.MIDDLEWARE = [UPDATE, f"{__name__}.OuterCookieMiddleware", *settings.MIDDLEWARE[1:]]
    client = Client()
    first = client.get("/plain/ab/x")
    assert "private" in first["Cache-Control"]
    assert _header(first) == "bypass; reason=set-cookie"
    second = client.get("/plain/ab/x")
    assert _header(second) == "bypass; reason=set-cookie"
    assert second.content != first.content


def test_async_middleware_chain_caches_async_and_sync_views() -> None:
    client = AsyncClient()

    async def main() -> list[Any]:
        paths = ["/async-plain/x/", "/async-plain/x/", "/plain/s", "/plain/s"]
        return [await client.get(path) for path in paths]

    a1, a2, s1, s2 = asyncio.run(main())
    assert [_header(r) for r in (a1, a2, s1, s2)] == ["miss", "hit", "miss", "hit"]
    assert a2.content == a1.content
    assert s2.content == s1.content


def test_async_middleware_chain_bypasses_and_excludes(settings: Any) -> None:
    settings.CACHEWISE_MIDDLEWARE_EXCLUDE = [r"^/async-plain/ex/"]
    client = AsyncClient()

    async def main() -> list[Any]:
        return [
            await client.get("/async-plain/ex/"),
            await client.get("/async-plain/y/", headers={"Authorization": "Bearer t"}),
            await client.post("/async-plain/y/"),
        ]

    reasons = [_header(r) for r in asyncio.run(main())]
    assert reasons == [
        "bypass; reason=excluded-path",
        "bypass; reason=authorization",
        "bypass; reason=method",
    ]


def test_async_outer_cookie_guard(settings: Any) -> None:
    settings.MIDDLEWARE = [UPDATE, f"{__name__}.OuterCookieMiddleware", *settings.MIDDLEWARE[1:]]
    before = views_views.renders.get("plain", 0)

    async def main() -> list[Any]:
        client = AsyncClient()
        return [await client.get("/plain/ab/y") for _ in range(2)]

    responses = asyncio.run(main())
    assert all("private" in r["Cache-Control"] for r in responses)
    assert views_views.renders["plain"] - before == 2


def test_a_credential_header_added_by_an_outer_middleware_is_never_shared(settings: Any) -> None:
    settings.CACHEWISE_CREDENTIAL_HEADERS = ["X-Api-Key"]
    settings.MIDDLEWARE = [UPDATE, f"{__name__}.OuterTokenMiddleware", *settings.MIDDLEWARE[1:]]
    client = Client()
    first = client.get("/plain/token/x")
    assert "private" in first["Cache-Control"]
    assert _header(first) == "bypass; reason=credential"
    second = client.get("/plain/token/x")
    assert _header(second) == "bypass; reason=credential"
    assert second.content != first.content  # the page the first request stored was deleted


def test_the_middleware_caches_only_declared_query_parameters(settings: Any) -> None:
    client = Client()
    assert _header(client.get("/plain/q?utm_source=x")) == "bypass; reason=query-param"
    settings.CACHEWISE_PAGE_QUERY_PARAMS = ["page"]
    first = client.get("/plain/q?page=2")
    assert _header(first) == "miss"
    assert _header(client.get("/plain/q?page=2")) == "hit"
    assert _header(client.get("/plain/q?page=2&utm_source=x")) == "bypass; reason=query-param"
