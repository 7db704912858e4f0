"""Bounded page-cache growth: an anonymous client cannot grow the cache by inventing URLs or headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.urls import path, re_path
from django.utils.cache import patch_vary_headers

from cachewise.decorators import cache_page

pytestmark = pytest.mark.urls(__name__)


@cache_page(60, query_params=("q",), max_entries=10)
def search(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"q={request.GET.get('q')}")


@cache_page(60, max_entries=10)
def article(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(f"article {slug}", status=404 if slug.startswith("x") else 200)


@cache_page(60, max_entries=10)
def custom(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"custom {request.headers.get('X-Custom')}")
    patch_vary_headers(response, ("X-Custom",))
    return response


@cache_page(1, query_params="*", max_entries=4)
def short(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"short {request.META['QUERY_STRING']}")


@cache_page(60, query_params=("q",), max_entries=10)
async def async_search(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"async q={request.GET.get('q')}")


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"plain {request.path}")


urlpatterns = [
    path("search/", search),
    path("async-search/", async_search),
    path("article/<str:slug>/", article),
    path("custom/", custom),
    path("short/", short),
    re_path(r"^plain/.*$", plain),
]


@pytest.fixture(autouse=True)
def _debug_headers(settings: Any) -> None:
    settings.CACHEWISE_DEBUG_HEADERS = True


def page_keys(redis_client: Any) -> list[bytes]:
    """Page entries in Redis (pages and variants; not budget counters, locks or fences)."""
    return [
        key
        for pattern in ("*page:v1:view:*", "*page:v1:site:*", "*page:v1:variant:*")
        for key in redis_client.scan_iter(match=pattern, count=1000)
        if not key.endswith((b":lock", b":fence"))
    ]


def test_query_values_beyond_the_budget_are_served_but_not_stored(redis_client: Any) -> None:
    client = Client()
    outcomes = [client.get(f"/search/?q={i}") for i in range(30)]
    assert [r.content for r in outcomes] == [f"q={i}".encode() for i in range(30)]
    assert [r["X-Cachewise"] for r in outcomes[:5]] == ["miss"] * 5
    assert {r["X-Cachewise"] for r in outcomes[5:]} == {"bypass; reason=entry-cap"}
    assert len(page_keys(redis_client)) == 5  # max_entries // 2 per window of `timeout`
    assert client.get("/search/?q=1")["X-Cachewise"] == "hit"  # stored pages keep being served


def test_paths_and_404s_count_against_the_budget(redis_client: Any) -> None:
    client = Client()
    for i in range(30):
        assert client.get(f"/article/x{i}/").content == f"article x{i}".encode()
    assert len(page_keys(redis_client)) == 5


def test_undeclared_vary_header_values_count_against_the_budget(redis_client: Any) -> None:
    client = Client()
    for i in range(30):
        assert client.get("/custom/", HTTP_X_CUSTOM=str(i)).content == f"custom {i}".encode()
    assert len(page_keys(redis_client)) <= 5


def test_site_wide_middleware_has_a_budget_of_its_own(settings: Any, redis_client: Any) -> None:
    settings.MIDDLEWARE = [
        "cachewise.middleware.UpdateCacheMiddleware",
        "django.middleware.common.CommonMiddleware",
        "cachewise.middleware.FetchFromCacheMiddleware",
    ]
    settings.CACHEWISE_MIDDLEWARE_MAX_ENTRIES = 6
    client = Client()
    responses = [client.get(f"/plain/{i}") for i in range(20)]
    assert [r.content for r in responses] == [f"plain /plain/{i}".encode() for i in range(20)]
    assert responses[-1]["X-Cachewise"] == "bypass; reason=entry-cap"
    assert len(page_keys(redis_client)) == 3


def test_the_budget_refills_when_its_window_ends(redis_client: Any) -> None:
    client = Client()
    assert [client.get(f"/short/?n={i}")["X-Cachewise"] for i in range(3)] == [
        "miss",
        "miss",
        "bypass; reason=entry-cap",
    ]
    time.sleep(1.1)
    assert client.get("/short/?n=9")["X-Cachewise"] == "miss"
    assert len(page_keys(redis_client)) <= 4


def test_async_views_share_the_budget(redis_client: Any) -> None:
    async def flood() -> list[Any]:
        client = AsyncClient()
        return [await client.get(f"/async-search/?q={i}") for i in range(12)]

    outcomes = asyncio.run(flood())
    assert [r.content for r in outcomes] == [f"async q={i}".encode() for i in range(12)]
    assert outcomes[-1]["X-Cachewise"] == "bypass; reason=entry-cap"
    assert len(page_keys(redis_client)) == 5


def test_max_entries_is_validated() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        cache_page(60, max_entries=1)
    with pytest.raises(ValueError, match="query_params"):
        cache_page(60, query_params="page")


def test_the_budget_costs_one_round_trip_per_fill_and_its_window_expires(redis_client: Any) -> None:
    from django.core.cache import caches

    from cachewise.pagecache.budget import admit, budget_key

    key = budget_key("view", "tests.one_round_trip")
    redis_client.config_resetstat()
    assert [admit("default", key, 1, 30, 4) for _ in range(3)] == [True, True, False]
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3  # one script per admission, no add + incr
    assert "cmdstat_set" not in stats
    full = caches["default"].make_and_validate_key(key)
    assert 0 < redis_client.pttl(full) <= 30_000  # the window closes by itself
    assert caches["default"].get(key) == 3


def _all_keys(redis_client: Any) -> int:
    # Every key of the page cache: pages, variants, locks, fences, budgets, purge counters (not
    # the process-wide recovery keys, which a periodic check may set at any time).
    return sum(1 for _ in redis_client.scan_iter(match="*page:*", count=1000))


def test_an_over_budget_flood_leaves_no_key_behind(redis_client: Any) -> None:
    # Pages, fences, locks, budget and URL counters: the count stops growing once the budget is
    # spent, however many new query values follow.
    client = Client()
    for i in range(30):
        client.get(f"/search/?q={i}")
    spent, started = _all_keys(redis_client), time.monotonic()
    for i in range(30, 300):
        assert client.get(f"/search/?q={i}")["X-Cachewise"] == "bypass; reason=entry-cap"
    # A process tries one fill per 5 s once the budget is spent (the window may have ended): on a
    # loaded machine the loop may cross that, leaving one fence each time.
    assert _all_keys(redis_client) <= spent + int((time.monotonic() - started) / 5)


def test_new_paths_beyond_the_budget_leave_no_key_behind(redis_client: Any) -> None:
    # Every path has its own purge counters (docs/views.md, "Pages that stay fresh"): they are
    # established by fills, which the budget bounds, never by a request that stores nothing.
    client = Client()
    for i in range(30):
        client.get(f"/article/x{i}/")
    spent, started = _all_keys(redis_client), time.monotonic()
    for i in range(30, 300):
        assert client.get(f"/article/x{i}/")["X-Cachewise"] == "bypass; reason=entry-cap"
    # Each such retry may also establish its new path's three purge counters.
    assert _all_keys(redis_client) <= spent + 4 * int((time.monotonic() - started) / 5)


def test_a_spent_budget_under_one_key_prefix_does_not_hold_back_another(
    settings: Any, cachewise_caches: dict[str, Any]
) -> None:
    client = Client()
    for i in range(8):
        client.get(f"/search/?q={i}")
    assert client.get("/search/?q=new")["X-Cachewise"] == "bypass; reason=entry-cap"
    settings.CACHES = {
        alias: {**entry, "KEY_PREFIX": entry["KEY_PREFIX"] + "-other"}
        for alias, entry in cachewise_caches.items()
    }
    try:
        assert client.get("/search/?q=new")["X-Cachewise"] == "miss"
    finally:
        from cachewise.testing import delete_prefixed

        delete_prefixed(
            cachewise_caches["default"]["LOCATION"], cachewise_caches["default"]["KEY_PREFIX"] + "-other"
        )


def test_a_lock_the_read_took_is_released_when_the_budget_turns_out_spent(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The page read takes a missing page's lock; a budget another thread found spent in between
    # means no fill: the lock must go at once, not hold other processes back for its lease.
    from cachewise.pagecache.serve import PageCache

    monkeypatch.setattr(PageCache, "_lock_lease", lambda self: 5.0)  # the read takes the lock
    monkeypatch.setattr(PageCache, "_spending", lambda self: True)  # then the budget is spent
    assert Client().get("/search/?q=race")["X-Cachewise"] == "bypass; reason=entry-cap"
    assert list(redis_client.scan_iter(match="*page:*:lock", count=1000)) == []
