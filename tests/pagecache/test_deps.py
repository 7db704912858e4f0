"""Cached pages depend on the data their render read: a committed write makes the next request fresh."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import AsyncClient, Client

from cachewise import invalidate_model, invalidate_page, recovery
from cachewise.caches_url import caches_from_url
from cachewise.pagecache import stamp, tracking
from tests import views_deps
from tests.testapp.models import Article, Author, Category, PageViews, Tag

pytestmark = [pytest.mark.urls("tests.views_deps"), pytest.mark.django_db(transaction=True)]

UPDATE = "cachewise.middleware.UpdateCacheMiddleware"
FETCH = "cachewise.middleware.FetchFromCacheMiddleware"


@pytest.fixture(autouse=True)
def _setup(settings: Any) -> Iterator[None]:
    settings.CACHEWISE_DEBUG_HEADERS = True
    settings.CACHE_MIDDLEWARE_SECONDS = 300
    views_deps.renders.clear()
    views_deps.external["motd"] = "hello"
    yield
    views_deps.during_render = None


def _site_wide(settings: Any, path: str) -> None:
    # The decorated views are under their own cache; /site/ is cached by the middleware alone.
    if path.startswith("/site/"):
        settings.MIDDLEWARE = [UPDATE, *settings.MIDDLEWARE, FETCH]


@pytest.fixture
def articles() -> list[Article]:
    alice, bob = Author.objects.create(name="Alice"), Author.objects.create(name="Bob")
    news = Tag.objects.create(name="news")
    first = Article.objects.create(title="First", author=alice)
    first.tags.add(news)
    return [first, Article.objects.create(title="Second", author=bob)]


def _get(path: str) -> tuple[str, str]:
    response = Client().get(path)
    assert response.status_code == 200, response
    return response["X-Cachewise"], response.content.decode()


def _cached(path: str) -> str:
    """Request ``path`` until it is a hit; return the body."""
    _get(path)
    state, body = _get(path)
    assert state == "hit"
    return body


def _save(article: Article, title: str) -> None:
    article.title = title
    article.save()


def _insert(articles: list[Article]) -> None:
    Article.objects.create(title="Third", author=articles[0].author)


def _delete(articles: list[Article]) -> None:
    articles[1].delete()


def _m2m(articles: list[Article]) -> None:
    articles[1].tags.add(Tag.objects.create(name="sport"))


def _update(articles: list[Article]) -> None:
    Article.objects.filter(pk=articles[0].pk).update(title="Updated")


def _bulk(articles: list[Article]) -> None:
    Article.objects.bulk_create([Article(title="Bulk", author=articles[0].author)])


def _join(articles: list[Article]) -> None:
    Author.objects.filter(name="Bob").update(name="Robert")


def _raw(articles: list[Article]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_article SET title = 'Raw' WHERE id = %s", [articles[0].pk])
    invalidate_model(Article)


CHANGES: dict[str, tuple[Callable[[list[Article]], None], str, bool]] = {
    # write, text the page shows afterwards, whether that text is present (False: gone)
    "save": (lambda a: _save(a[0], "Edited"), "Edited by Alice", True),
    "insert": (_insert, "Third by Alice", True),
    "delete": (_delete, "Second by Bob", False),
    "m2m": (_m2m, "Second by Bob [sport]", True),
    "update()": (_update, "Updated by Alice", True),
    "bulk_create": (_bulk, "Bulk by Alice", True),
    "joined table": (_join, "Second by Robert", True),
    "raw SQL + invalidate_model": (_raw, "Raw by Alice", True),
}


@pytest.mark.parametrize("path", ["/list/", "/site/list/"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_committed_write_to_a_table_the_page_read_shows_on_the_next_request(
    articles: list[Article], path: str, change: str, settings: Any
) -> None:
    _site_wide(settings, path)
    write, text, present = CHANGES[change]
    assert ("Edited by Alice" in _cached(path)) is False
    write(articles)
    state, body = _get(path)
    assert state == "miss"
    assert (text in body) is present, body
    assert _get(path) == ("hit", body)


@pytest.mark.parametrize("path", ["/detail/{pk}/", "/site/detail/{pk}/"])
def test_detail_page_shows_an_edit_of_its_row(articles: list[Article], path: str, settings: Any) -> None:
    _site_wide(settings, path)
    url = path.format(pk=articles[0].pk)
    assert _cached(url) == "First by Alice [news]"
    _save(articles[0], "Edited")
    assert _get(url) == ("miss", "Edited by Alice [news]")


def test_a_rolled_back_write_keeps_the_page_cached(articles: list[Article]) -> None:
    body = _cached("/list/")

    def write_then_fail() -> None:
        with transaction.atomic():
            _save(articles[0], "Never")
            Article.objects.filter(pk=articles[1].pk).update(title="Never either")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert _get("/list/") == ("hit", body)


def test_a_write_inside_a_transaction_counts_only_after_commit(articles: list[Article]) -> None:
    _cached("/list/")
    with transaction.atomic():
        _save(articles[0], "Committed")
        # Not committed yet: another request would still be served the cached page.
        assert _get("/list/")[0] == "hit"
    state, body = _get("/list/")
    assert state == "miss"
    assert "Committed by Alice" in body


def test_a_write_to_an_unrelated_table_keeps_the_page_cached(articles: list[Article]) -> None:
    body = _cached("/list/")
    PageViews.objects.create(page=1, views=5)
    Category.objects.create(name="unrelated")
    assert _get("/list/") == ("hit", body)


def test_a_write_committed_during_the_render_is_never_stored_under_the_new_version(
    articles: list[Article],
) -> None:
    # The render has read the old title when the write commits: its page may be served to this
    # request, but must not be the answer to the next one.
    views_deps.during_render = lambda: Article.objects.filter(pk=articles[0].pk).update(title="Racing")
    state, body = _get("/list/")
    assert "First by Alice" in body
    views_deps.during_render = None
    state, body = _get("/list/")
    assert state == "miss"
    assert "Racing by Alice" in body


def test_raw_sql_reads_are_tracked(articles: list[Article]) -> None:
    assert _cached("/raw/") == "First,Second"
    _save(articles[1], "Changed")
    assert _get("/raw/") == ("miss", "First,Changed")


def test_tracking_off_keeps_the_page_until_its_timeout_unless_declared(articles: list[Article]) -> None:
    body = _cached("/untracked/")
    _cached("/authors-declared/")
    Author.objects.filter(name="Alice").update(name="Alicia")
    assert _get("/untracked/") == ("hit", body)  # documented: nothing tells it
    assert _get("/authors-declared/") == ("miss", "Alicia,Bob")


def test_tracking_off_by_setting(articles: list[Article], settings: Any) -> None:
    settings.CACHEWISE_PAGE_TRACK_QUERIES = False
    body = _cached("/authors/")
    Author.objects.filter(name="Alice").update(name="Alicia")
    assert _get("/authors/") == ("hit", body)


def test_namespace_dependency_for_data_outside_the_database() -> None:
    assert _cached("/motd/") == "hello"
    views_deps.external["motd"] = "bonjour"
    assert _get("/motd/") == ("hit", "hello")  # the page cannot see an external change...
    views_deps.motd.bump(None)  # ...until the code that changes it says so
    assert _get("/motd/") == ("miss", "bonjour")


def test_a_fragment_dependency_is_not_hidden_by_the_page_around_it() -> None:
    first = _cached("/fragment/")
    assert first.endswith("hello")
    views_deps.external["motd"] = "bonjour"
    views_deps.motd.bump(None)
    state, body = _get("/fragment/")
    assert state == "miss"
    assert body.endswith("bonjour")


def _round_trips(redis_client: Any, path: str) -> dict[str, int]:
    """Commands the server ran for one hit on ``path``."""
    # The recovery check (cachewise.recovery) runs at most once per interval on the hit path:
    # run it now, so it is not due during the measured hit (a second from now).
    recovery.tick(force=True)
    redis_client.config_resetstat()
    assert _get(path)[0] == "hit"
    stats = redis_client.info("commandstats")
    return {name[8:]: int(value["calls"]) for name, value in stats.items() if name != "cmdstat_config"}


def test_a_hit_is_one_round_trip(articles: list[Article], redis_client: Any) -> None:
    _cached("/list/")
    # The page and every counter it depends on in one MGET, inside the one script call that
    # would also have taken the page's lock had it been missing.
    assert _round_trips(redis_client, "/list/") == {"evalsha": 1, "mget": 1}


def test_a_page_first_seen_by_a_process_costs_one_more_round_trip_only_once(
    articles: list[Article], redis_client: Any
) -> None:
    _cached("/list/")
    stamp._hints.clear()  # a new process: no memory of the page's dependencies
    stamp._view_hints.clear()
    assert _round_trips(redis_client, "/list/") == {"evalsha": 1, "mget": 2}
    assert _round_trips(redis_client, "/list/") == {"evalsha": 1, "mget": 1}


def test_many_instances_degrade_to_the_table(articles: list[Article]) -> None:
    rows = tracking.resolve([articles[0]])
    assert len(rows) == 2  # the row's counter and the model's writes-without-rows counter
    many = tracking.resolve([Article(pk=pk) for pk in range(1, tracking.ROW_LIMIT + 2)])
    assert len(many) == 1
    assert many[0][1].endswith(":gen")


def test_depends_on_rejects_values_it_cannot_watch() -> None:
    from cachewise.decorators import cache_page

    with pytest.raises(TypeError, match="depends_on"):
        cache_page(60, depends_on=["articles"])


def test_every_backend_serves_hits_and_sees_writes(articles: list[Article], backend: str) -> None:
    body = _cached("/list/")
    assert _get("/list/") == ("hit", body)
    _save(articles[0], "Backend")
    state, body = _get("/list/")
    assert state == "miss"
    assert "Backend by Alice" in body
    invalidate_page("/list/")
    assert _get("/list/")[0] == "miss"


def test_async_views_track_their_queries(articles: list[Article]) -> None:
    async def get() -> tuple[str, str]:
        response = await AsyncClient().get("/async/")
        return response["X-Cachewise"], response.content.decode()

    assert asyncio.run(get()) == ("miss", "First,Second")
    assert asyncio.run(get()) == ("hit", "First,Second")
    _save(articles[1], "Async")
    assert asyncio.run(get()) == ("miss", "First,Async")


def test_a_write_whose_invalidation_was_lost_still_shows(articles: list[Article], settings: Any) -> None:
    body = _cached("/list/")
    working = settings.CACHES
    settings.CACHES = caches_from_url("redis://127.0.0.1:1/0")  # the cache is down for the write
    _save(articles[0], "Lost")
    settings.CACHES = working
    # The process remembers the undelivered bump: the page is not served from the cache until
    # the global version bump got through, and then it is stale.
    state, body = _get("/list/")
    assert state == "miss"
    assert "Lost by Alice" in body
    assert _get("/list/") == ("hit", body)


def test_an_evicted_counter_costs_a_render_never_a_stale_page(
    articles: list[Article], redis_client: Any
) -> None:
    from django.core.cache import caches

    from cachewise.orm import generations

    body = _cached("/list/")
    # Lost to eviction or a restart: it comes back above every value it had.
    redis_client.delete(caches["default"].make_key(generations.counter_key("testapp.article", "gen")))
    assert _get("/list/") == ("miss", body)
    assert _get("/list/") == ("hit", body)


@pytest.mark.parametrize("write", ["row", "list", "author"])
def test_a_page_built_from_cached_rows_and_lists_sees_their_writes(
    articles: list[Article], write: str, django_assert_num_queries: Any
) -> None:
    path = f"/orm-caches/{articles[0].pk}/"
    Client().get(path)  # fills the row and list caches
    views_deps.renders.clear()
    invalidate_page(path)
    with django_assert_num_queries(0):  # this render reads both from their caches: no query to see
        assert _get(path) == ("miss", "First,Second | First by Alice")
    assert _get(path)[0] == "hit"
    if write == "row":
        _save(articles[0], "Row")
        expected = "Row,Second | Row by Alice"
    elif write == "list":
        _save(articles[1], "List")
        expected = "First,List | First by Alice"
    else:
        Author.objects.filter(name="Alice").update(name="Alicia")
        expected = "First,Second | First by Alicia"
    assert _get(path) == ("miss", expected)
