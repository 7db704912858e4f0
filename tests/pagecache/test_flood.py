"""An anonymous flood of page requests evicts no session and loses no pending counter increment.

The recommended configuration (docs/configuration.md): the page and data cache on one Redis server
with ``maxmemory`` and ``allkeys-lru``; sessions and counters on a server of their own with
``noeviction`` (``caches_from_url(url, sessions_url=...)``). The page server is made small enough
that the flood really fills it and it really evicts, so the test shows what survives pressure, not
a cache that never filled.
"""

from __future__ import annotations

import base64
import os
import random
import string
from collections.abc import Iterator

import pytest
import redis
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from cachewise import Counter
from cachewise.caches_url import caches_from_url
from cachewise.decorators import cache_page
from cachewise.embedded import EmbeddedRedis
from cachewise.testing import delete_prefixed

# slow: Redis eviction under memory pressure, not the Python or Django version (main CI pass only).
pytestmark = [pytest.mark.urls(__name__), pytest.mark.slow]

#: The documented default of CACHEWISE_PAGE_MAX_ENTRIES: pages one view may have cached at once.
DOCUMENTED_CAP = 1000


@cache_page(300, query_params=("q",))
def search(request: HttpRequest) -> HttpResponse:
    # ~8 KB that compresses badly: 1,000 of them do not fit in the page server's 4 MB.
    return HttpResponse(base64.b64encode(os.urandom(6000)))


urlpatterns = [path("search/", search)]


def _word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))


@pytest.fixture
def recommended() -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """Two servers as docs/configuration.md recommends, and the settings that use them."""
    with EmbeddedRedis() as pages, EmbeddedRedis() as durable:
        page_client, durable_client = redis.Redis.from_url(pages.url), redis.Redis.from_url(durable.url)
        page_client.config_set("maxmemory", "4mb")
        page_client.config_set("maxmemory-policy", "allkeys-lru")
        durable_client.config_set("maxmemory", "64mb")
        durable_client.config_set("maxmemory-policy", "noeviction")
        configured = caches_from_url(pages.url, key_prefix="flood", sessions_url=durable.url)
        settings = {
            "CACHES": configured,
            "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
            "SESSION_CACHE_ALIAS": "sessions",
            "CACHEWISE_COUNTERS_ALIAS": "sessions",
            "MIDDLEWARE": [],
            # 3,000 lookups would otherwise stay in this process's metrics for later tests' reports.
            "CACHEWISE_METRICS_ENABLED": False,
        }
        try:
            with override_settings(**settings):
                yield page_client, durable_client
                for alias in configured:
                    caches[alias].close()
        finally:
            for entry in configured.values():
                delete_prefixed(entry["LOCATION"], "flood")
            page_client.close()
            durable_client.close()


def _page_keys(client: redis.Redis) -> int:
    return sum(
        1
        for key in client.scan_iter(match="*page:v1:view:*", count=1000)
        if not key.endswith((b":lock", b":fence"))
    )


def test_anonymous_flood_evicts_no_session_and_loses_no_counter_increment(
    recommended: tuple[redis.Redis, redis.Redis],
) -> None:
    from django.contrib.sessions.backends.cache import SessionStore

    page_server, _durable = recommended
    sessions = []
    for i in range(200):
        store = SessionStore()
        store["user"] = i
        store.create()
        sessions.append(store.session_key)
    views = Counter("flood:views")  # on the sessions server: CACHEWISE_COUNTERS_ALIAS
    for i in range(500):
        views.incr(i % 50)

    rng = random.Random(12)
    client = Client()
    for i in range(3000):
        # Two in three ask for a declared parameter with a value nobody asked for before (stored
        # until the view's entry budget is spent); one in three adds an undeclared parameter
        # (served, never stored).
        query = f"q={_word(rng)}" if i % 3 else f"q=1&{_word(rng)}={_word(rng)}"
        assert client.get(f"/search/?{query}").status_code == 200

    evicted, stored = int(page_server.info("stats")["evicted_keys"]), _page_keys(page_server)
    print(f"page server: {evicted} keys evicted, {stored} page keys left")
    assert evicted > 0  # the page server was under pressure
    assert stored <= DOCUMENTED_CAP
    survivors = [key for key in sessions if SessionStore(session_key=key).load().get("user") is not None]
    assert len(survivors) == 200
    assert sum(views.get_many(range(50)).values()) == 500
