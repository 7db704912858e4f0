"""The advisor, through real requests (Django's test client) and a real Redis.

What it must get right: a page that repeats identical answers ranks above a personalised one; a
response that sets a cookie (or carries a visitor's CSRF token) is never advised for page
caching; the TTL follows the committed write rate of the tables a route reads; once advice is
applied, ``advise`` shows what the cache measured next to what it predicted.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from cachewise.monitoring import aggregate
from cachewise.monitoring.advisor import advice, estimate, store
from cachewise.monitoring.advisor.recorder import OTHER, recorder
from cachewise.monitoring.advisor.settings import MIDDLEWARE_PATH
from tests import views_advisor
from tests.testapp.models import Article, Author, Category

pytestmark = [pytest.mark.urls("tests.views_advisor"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _recording(settings: Any, cachewise_caches: Any) -> Iterator[None]:
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *settings.MIDDLEWARE]
    settings.CACHEWISE_ADVISOR_DIGEST_RATE = 1.0
    settings.CACHEWISE_ADVISOR_SAMPLE_RATE = 1.0
    store.reset()
    views_advisor.applied["cached"] = False
    yield
    store.reset()
    aggregate.aggregator.reset()  # the page cache's hits and misses: no counts for later stats tests


@pytest.fixture
def articles() -> list[Article]:
    author = Author.objects.create(name="Ann")
    Article.objects.bulk_create(Article(title=f"Article {i}", author=author) for i in range(300))
    return list(Article.objects.all())


def _load(client: Client, path: str, count: int) -> None:
    for _ in range(count):
        assert client.get(path).status_code == 200


def _by_route(ranking: advice.Ranking) -> dict[str, estimate.Advice]:
    return {item.route: item for item in ranking.advice}


def _users(count: int) -> list[Client]:
    clients = []
    for i in range(count):
        client = Client()
        client.force_login(User.objects.create_user(f"user{i}"))
        clients.append(client)
    return clients


def test_identical_answers_rank_above_a_personalised_page(articles: list[Article]) -> None:
    anonymous, visitors = Client(), _users(4)
    for i in range(60):  # interleaved: a busy moment of the machine slows both views alike
        assert anonymous.get("/shared/").status_code == 200
        assert visitors[i % 4].get("/personalised/").status_code == 200
    ranking = advice.build()
    routes = [item.route for item in ranking.advice]
    assert routes.index("shared") < routes.index("personalised"), json.dumps(ranking.as_dict(), indent=1)
    shared, personal = _by_route(ranking)["shared"], _by_route(ranking)["personalised"]
    assert shared.strategy == "cache_page"
    assert shared.page_safe
    assert shared.identical_bodies == 1.0
    assert shared.url_reuse > 0.9
    assert personal.strategy != "cache_page"
    assert not personal.page_safe
    assert personal.anonymous_share == 0.0
    assert any("credentials" in warning for warning in personal.warnings)
    assert shared.db_seconds_saved_per_hour > personal.db_seconds_saved_per_hour


def test_a_personal_page_around_shared_data_is_advised_a_fragment(
    articles: list[Article], settings: Any
) -> None:
    settings.CACHEWISE_ADVISOR_LOOKUP_SECONDS = 0  # any saving counts, however fast the database
    visitors = _users(4)
    for i in range(40):
        assert visitors[i % 4].get("/greeting/").status_code == 200
    item = _by_route(advice.build())["greeting"]
    assert item.strategy == "fragment"
    assert not item.page_safe
    assert item.db_seconds_saved_per_hour > 0


def test_a_page_that_differs_per_request_is_called_personalised(
    articles: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = iter(range(10**6))
    monkeypatch.setattr(views_advisor, "_titles", lambda: f"visitor {next(counter)}")
    _load(Client(), "/shared/", 30)
    item = _by_route(advice.build())["shared"]
    assert item.identical_bodies == 0.0
    assert item.strategy != "cache_page"
    assert not item.page_safe
    assert any("personalised output" in warning for warning in item.warnings)


@pytest.mark.parametrize("path", ["/sets-cookie/", "/csrf/"])
def test_a_response_for_one_visitor_is_never_advised_for_page_caching(
    articles: list[Article], path: str
) -> None:
    _load(Client(), path, 60)  # identical bodies (the cookie is a header), one URL: ideal reuse
    item = next(item for item in advice.build().advice if item.route != "shared")
    assert item.strategy != "cache_page", item
    assert not item.page_safe
    expected = "sets cookies" if path == "/sets-cookie/" else "personal responses"
    assert any(expected in warning for warning in item.warnings), item.warnings


def test_a_view_that_sets_a_cookie_only_sometimes_is_never_page_cached(
    articles: list[Article], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = iter(range(10**6))
    original = views_advisor.shared

    def sometimes(request: Any) -> Any:
        response = original(request)
        if next(calls) == 25:
            response.set_cookie("once", "1")
        return response

    monkeypatch.setattr(views_advisor, "shared", sometimes)
    from django.urls import clear_url_caches

    from tests.views_advisor import urlpatterns

    urlpatterns[0].callback = sometimes
    try:
        clear_url_caches()
        _load(Client(), "/shared/", 50)
    finally:
        urlpatterns[0].callback = original
    item = _by_route(advice.build())["shared"]
    assert item.strategy != "cache_page"
    assert not item.page_safe


def _write(model: type[Any], count: int) -> None:
    for i in range(count):
        model.objects.create(name=f"{model.__name__} {i}")


def test_suggested_ttl_follows_the_write_rate_of_the_tables_read() -> None:
    _write(Author, 1)
    _write(Category, 1)
    client = Client()
    _load(client, "/authors/", 25)
    _load(client, "/categories/", 25)
    _write(Author, 60)  # ~1 write every 10 s over the 600 s the ranking is asked about below
    _write(Category, 3)  # ~1 every 200 s
    ranking = advice.build(now=time.time() + 600)
    items = _by_route(ranking)
    busy, quiet = items["authors"], items["categories"]
    assert busy.tables == ["testapp.author"]
    assert quiet.tables == ["testapp.category"]
    assert busy.writes_per_minute > quiet.writes_per_minute > 0
    assert busy.ttl < quiet.ttl
    for item in (busy, quiet):  # the TTL is the mean time between writes, rounded down
        assert item.ttl == estimate.suggest_ttl(item.writes_per_minute / 60)
        assert item.ttl <= 60 / item.writes_per_minute
    assert ranking.writes_per_minute["testapp.author"] > ranking.writes_per_minute["testapp.category"]


def test_writes_are_counted_once_committed_never_when_rolled_back() -> None:
    with transaction.atomic():
        _write(Author, 5)  # one transaction: one change of the author table

    def rolled_back() -> None:
        with transaction.atomic():
            _write(Category, 5)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        rolled_back()
    _write(Category, 2)
    minute = store.read().writes_per_second
    assert minute["testapp.author"] * 60 == pytest.approx(1)
    assert minute["testapp.category"] * 60 == pytest.approx(2)


def test_advice_once_applied_shows_measured_next_to_predicted(articles: list[Article]) -> None:
    client = Client()
    _load(client, "/applied/", 40)
    first = _by_route(advice.build())["applied"]
    assert first.strategy == "cache_page"
    assert first.verification is None
    views_advisor.applied["cached"] = True
    _load(client, "/applied/", 40)
    check = _by_route(advice.build())["applied"].verification
    assert check is not None
    assert check.requests_since == 40
    assert check.strategy == "cache_page"
    assert check.predicted_hit_rate == pytest.approx(first.expected_hit_rate)
    assert check.measured_hit_rate is not None
    assert check.measured_hit_rate >= 0.9
    assert check.measured_db_seconds_saved_per_hour is not None
    assert check.measured_db_seconds_saved_per_hour > 0
    out = StringIO()
    call_command("cachewise", "advise", stdout=out)
    assert "Advice applied: measured since the prediction" in out.getvalue()
    assert "applied" in out.getvalue()


def test_advise_command_prints_the_ranking_and_json(articles: list[Article]) -> None:
    _load(Client(), "/shared/", 30)
    _load(Client(), "/trivial/", 30)
    out = StringIO()
    call_command("cachewise", "advise", stdout=out)
    text = out.getvalue()
    assert "Routes worth caching" in text
    assert "shared" in text
    assert "cache_page" in text
    out = StringIO()
    call_command("cachewise", "advise", "--json", "--all", stdout=out)
    document = json.loads(out.getvalue())
    routes = {route["route"]: route for route in document["routes"]}
    assert routes["shared"]["strategy"] == "cache_page"
    assert routes["tests.views_advisor.trivial"]["strategy"] == "none"  # no database time to save
    assert document["source"] == "redis"
    call_command("cachewise", "advise", "--reset", stdout=StringIO())
    out = StringIO()
    call_command("cachewise", "advise", "--json", "--all", stdout=out)
    assert json.loads(out.getvalue())["routes"] == []


def test_too_few_requests_are_not_advised(articles: list[Article]) -> None:
    _load(Client(), "/shared/", 5)
    item = _by_route(advice.build())["shared"]
    assert item.strategy == "none"
    assert "only 5 requests" in item.warnings[0]


def test_routes_are_capped_in_process(settings: Any, articles: list[Article]) -> None:
    settings.CACHEWISE_ADVISOR_MAX_ROUTES = 2
    for path in ("/shared/", "/authors/", "/categories/", "/trivial/"):
        _load(Client(), path, 2)
    assert set(recorder.snapshot()) == {"shared", "authors", OTHER}
    assert recorder.snapshot()[OTHER]["requests"] == 4


def test_url_memory_is_bounded(settings: Any) -> None:
    settings.CACHEWISE_ADVISOR_MAX_URLS = 10
    client = Client()
    for i in range(50):
        assert client.get(f"/trivial/?page={i}").status_code == 200
    assert len(recorder.urls.entries) == 10


def test_recording_off_records_nothing(settings: Any, articles: list[Article]) -> None:
    settings.CACHEWISE_ADVISOR_RECORD = False
    _load(Client(), "/shared/", 3)
    assert recorder.snapshot() == {}


def test_excluded_paths_are_not_recorded(settings: Any, articles: list[Article]) -> None:
    settings.CACHEWISE_ADVISOR_EXCLUDE = [r"^/shared/"]
    _load(Client(), "/shared/", 3)
    _load(Client(), "/trivial/", 3)
    assert set(recorder.snapshot()) == {"tests.views_advisor.trivial"}


def test_queries_tables_and_sizes_are_recorded(articles: list[Article]) -> None:
    _load(Client(), "/shared/", 3)
    row = recorder.snapshot()["shared"]
    assert row["requests"] == 3
    assert row["queries"] == 6
    assert row["db_seconds"] > 0
    assert row["db_list_seconds"] > 0
    assert row["db_aggregate_seconds"] > 0
    assert row["t:testapp.article"] == 3
    assert row["bytes"] == 3 * len(Client().get("/shared/").content)
    assert row["anonymous"] == 3
    assert row["storable"] == 3
    assert row["html"] == 3


def _child_traffic(route: str, count: int) -> None:
    # A real second process: count as a worker would, flush, exit without touching the database.
    for _ in range(count):
        recorder.add(route, {"requests": 1, "seconds": 0.01, "gets": 1}, set(), {})
    assert store.flush()


def test_every_process_counts_add_up_in_redis(articles: list[Article]) -> None:
    _load(Client(), "/shared/", 10)
    assert store.flush()
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_child_traffic, args=("shared", 7)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert store.read().routes["shared"]["requests"] == 10 + 2 * 7


def _ids() -> set[str]:
    from django.core.checks import run_checks

    return {message.id for message in run_checks(tags=["caches"]) if message.id}


def test_checks_pass_with_the_middleware_first() -> None:
    assert not {"cachewise.E070", "cachewise.W070", "cachewise.W071", "cachewise.W010"} & _ids()


def test_w070_middleware_not_first(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE[1:], MIDDLEWARE_PATH]
    assert "cachewise.W070" in _ids()


def test_e070_alias_not_in_caches(settings: Any) -> None:
    settings.CACHEWISE_ADVISOR_ALIAS = "nowhere"
    assert "cachewise.E070" in _ids()


def test_w071_no_write_is_counted_without_orm_invalidation(settings: Any) -> None:
    settings.CACHEWISE_ORM_INVALIDATION = False
    assert "cachewise.W071" in _ids()


def test_no_advisor_check_without_recording(settings: Any) -> None:
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != MIDDLEWARE_PATH]
    settings.CACHEWISE_ADVISOR_ALIAS = "nowhere"
    assert "cachewise.E070" not in _ids()


def test_dashboard_shows_the_ranking(articles: list[Article], admin_client: Any) -> None:
    _load(Client(), "/shared/", 30)
    response = admin_client.get("/cache/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-section="advisor"' in html
    assert 'data-route="shared"' in html
    assert store.read_predictions() == {}  # viewing the dashboard predicts nothing


def test_sampled_requests_stand_for_all_of_them(settings: Any) -> None:
    settings.CACHEWISE_ADVISOR_SAMPLE_RATE = 0.25
    _load(Client(), "/trivial/", 800)
    row = recorder.snapshot()["tests.views_advisor.trivial"]
    assert 800 * 0.7 < row["requests"] < 800 * 1.3  # 200 expected recorded, weight 4


def test_a_cookie_is_seen_even_on_requests_not_sampled(settings: Any, articles: list[Article]) -> None:
    settings.CACHEWISE_ADVISOR_SAMPLE_RATE = 0.001
    _load(Client(), "/sets-cookie/", 30)
    assert recorder.snapshot()["sets-cookie"]["set_cookie"] >= 29
