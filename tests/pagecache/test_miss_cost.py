"""What a page-cache miss costs in Redis round trips: waste removed from the miss path.

Django's ``cache_page`` miss is 3 commands (GET headers key, SET headers key, SET page). Ours
also tracks the data the page was rendered from, single-flights the render and bounds the
entries per view; it took 8 round trips for that, then 6, then 3, now 2 for a page of a path
already seen: the page with its counters (and the tables the view's last render read) in one
script that also takes the missing page's lock and settles its fence, then the fenced fill with
the entry budget in one script. A path never seen before costs one more: its URL counters are
created before the render.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from cachewise.decorators import cache_page
from tests.testapp.models import Author

# Not inside a test transaction: SQLite refuses fills there (a render could read uncommitted
# rows), and the fill is what is counted.
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]


@cache_page(60, query_params=("page",))
def authors(request: HttpRequest, letter: str) -> HttpResponse:
    return HttpResponse(
        ", ".join(Author.objects.filter(name__startswith=letter).values_list("name", flat=True))
    )


@cache_page(60, query_params=("x",))
async def greeting(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"hello {name}")


urlpatterns = [path("authors/<str:letter>/", authors), path("greeting/<str:name>/", greeting)]


def _round_trips(url: str, run: Any) -> list[str]:
    """The commands clients sent (not those scripts ran) while ``run()`` ran, via MONITOR."""
    client = redis.Redis.from_url(url)
    seen: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            for command in monitor.listen():
                if "MONITOR-STOP" in command["command"]:
                    return
                if command["client_type"] != "lua":
                    seen.append(command["command"].split()[0].upper())

    thread = threading.Thread(target=listen)
    thread.start()
    ready.wait(5)
    client.ping()  # MONITOR is on once a command round-trips after it
    run()
    client.get("MONITOR-STOP")
    thread.join(5)
    client.close()
    return [name for name in seen if name not in ("PING", "HELLO", "CLIENT")]


def _misses(url: str, path: str) -> list[str]:
    http = Client()
    sent = _round_trips(url, lambda: http.get(path))
    assert http.get(path)["X-Cachewise"] == "hit"  # the miss stored the page
    return sent


@pytest.fixture
def url(cachewise_caches: dict[str, Any], settings: Any) -> str:
    settings.CACHEWISE_DEBUG_HEADERS = True
    Author.objects.create(name="Ann")
    Client().get("/authors/A/")  # scripts loaded, connections open, the view's tables learnt
    return str(cachewise_caches["default"]["LOCATION"])


def test_a_page_miss_takes_two_round_trips_one_fewer_than_djangos(url: str) -> None:
    sent = _misses(url, "/authors/A/?page=2")
    # The page with its counters, and its lock and fence as it is missing; the fill with the
    # entry budget (which releases the lock).
    assert sent == ["EVALSHA", "EVALSHA"], sent


def test_a_path_never_seen_costs_one_more_for_its_url_counters(url: str) -> None:
    sent = _misses(url, "/authors/B/")
    assert sent == ["EVALSHA", "EVALSHA", "EVALSHA"], sent


def test_an_async_page_miss_takes_two_round_trips_too(url: str) -> None:
    Client().get("/greeting/ann/")  # this path's URL counters exist
    sent = _misses(url, "/greeting/ann/?x=1")
    assert sent == ["EVALSHA", "EVALSHA"], sent
