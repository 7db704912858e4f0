"""The page fill is single-flight (one render per expiry, threads and coroutines) and fails open."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import AsyncClient, Client, override_settings

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis
from cachewise.signals import cache_bypassed
from tests import views_views

pytestmark = pytest.mark.urls("tests.urls_views")


@pytest.fixture(autouse=True)
def _debug_headers(settings: Any) -> None:
    settings.CACHEWISE_DEBUG_HEADERS = True


def _renders(view: str) -> int:
    return views_views.renders.get(view, 0)


def _hammer(path: str, count: int, start_at: float | None = None) -> list[bytes]:
    """``count`` threads ask for ``path`` together (at ``start_at``, a ``time.time()``, if given)."""
    bodies: list[bytes] = []
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def worker() -> None:
        try:
            client = Client()
            if start_at is None:
                start.wait(timeout=10)
            else:
                time.sleep(max(0.0, start_at - time.time()))
            bodies.append(client.get(path).content)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors
    assert len(bodies) == count
    return bodies


def test_twenty_threads_on_a_cold_page_render_it_once() -> None:
    before = _renders("slow")
    bodies = _hammer("/slow/", 20)
    assert _renders("slow") - before == 1
    assert len(set(bodies)) == 1


def _herd_process(path: str, threads: int, start_at: float, out: Any) -> None:
    """Child process: ``threads`` threads ask for ``path`` at ``start_at``; report renders, bodies."""
    before = _renders("slow")
    try:
        bodies = _hammer(path, threads, start_at)
    except BaseException as exc:  # reported to the parent, which would otherwise wait it out
        out.put((-1, [repr(exc).encode()]))
        raise
    out.put((_renders("slow") - before, bodies))


def test_three_processes_of_ten_threads_on_a_cold_page_render_it_once() -> None:
    # The miss' lock is taken by the page read itself: exactly one of the 30 reads gets it and
    # renders; the others (its own process' threads included) wait for that fill.
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    start_at = time.time() + 1.0
    children = [fork.Process(target=_herd_process, args=("/slow/", 10, start_at, out)) for _ in range(3)]
    for child in children:
        child.start()
    results = [out.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)
    assert sum(renders for renders, _ in results) == 1
    bodies = [body for _, found in results for body in found]
    assert len(bodies) == 30
    assert len(set(bodies)) == 1


def test_a_lock_the_page_read_took_is_released_when_counters_of_another_alias_fail(
    settings: Any, redis_client: Any
) -> None:
    # The page's alias is read first and takes the missing page's lock; a dead Redis behind
    # another alias (where the view's ORM counters live) then fails the check: no fill will
    # follow, so the lock must not hold other requests back for its lease.
    from cachewise.embedded import free_port
    from cachewise.exceptions import OUTAGE_ERRORS
    from cachewise.pagecache import stamp

    dead = {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
    }
    settings.CACHES = {**settings.CACHES, "dead": dead}
    with pytest.raises(OUTAGE_ERRORS):
        stamp.check("default", "page:v1:view:lonely", (), (("dead", "orm:v1:gen"),), lease=5.0)
    assert list(redis_client.scan_iter(match="*lonely*:lock", count=1000)) == []


def test_one_render_per_expiry() -> None:
    before = _renders("short_slow")
    first = _hammer("/short-slow/", 10)
    time.sleep(1.1)  # the page (timeout 1 s) expires
    second = _hammer("/short-slow/", 10)
    assert _renders("short_slow") - before == 2
    assert len(set(first)) == len(set(second)) == 1
    assert first[0] != second[0]


def test_twenty_coroutines_on_a_cold_async_page_render_it_once() -> None:
    before = _renders("async_slow")
    client = AsyncClient()

    async def main() -> list[Any]:
        requests = asyncio.gather(*(client.get("/async-slow/") for _ in range(20)))
        return await asyncio.wait_for(requests, timeout=20)

    responses = asyncio.run(main())
    assert {r.status_code for r in responses} == {200}
    assert _renders("async_slow") - before == 1
    assert len({r.content for r in responses}) == 1


def test_async_view_hits_and_varies() -> None:
    client = AsyncClient()

    async def main() -> list[Any]:
        return [
            await client.get("/async-echo/", headers={"Accept-Language": lang}) for lang in ("en", "fr", "en")
        ]

    en, fr, en2 = asyncio.run(main())
    assert (en["X-Cachewise"], fr["X-Cachewise"], en2["X-Cachewise"]) == ("miss", "miss", "hit")
    assert en2.content == en.content
    assert b'"fr"' in fr.content


def test_async_view_through_the_sync_client() -> None:
    client = Client()
    first, second = client.get("/async-echo/"), client.get("/async-echo/")
    assert (first["X-Cachewise"], second["X-Cachewise"]) == ("miss", "hit")


def _dead_cache(server: EmbeddedRedis) -> dict[str, Any]:
    config = caches_from_url(server.url, key_prefix="dead")
    server.kill()
    return config


def test_cache_down_renders_the_view_normally_and_fast(disposable_redis: EmbeddedRedis) -> None:
    reasons: list[str] = []

    def receiver(sender: Any, reason: str, **kwargs: Any) -> None:
        reasons.append(reason)

    cache_bypassed.connect(receiver)
    with override_settings(CACHES=_dead_cache(disposable_redis)):
        try:
            client = Client()
            before = _renders("hello")
            started = time.monotonic()
            responses = [client.get("/hello/") for _ in range(5)]
            elapsed = time.monotonic() - started
        finally:
            cache_bypassed.disconnect(receiver)
            for alias in ("default", "sessions"):
                caches[alias].close()
    assert [r.status_code for r in responses] == [200] * 5
    assert _renders("hello") - before == 5
    assert all(r.content.startswith(b"hello anon ") for r in responses)
    assert {r["X-Cachewise"] for r in responses} == {"bypass; reason=cache-unavailable"}
    assert elapsed < 3.0
    assert reasons == ["cache-unavailable"] * 5


def test_cache_down_async_view_renders(disposable_redis: EmbeddedRedis) -> None:
    with override_settings(CACHES=_dead_cache(disposable_redis)):
        try:
            response = asyncio.run(AsyncClient().get("/async-echo/"))
        finally:
            for alias in ("default", "sessions"):
                caches[alias].close()
    assert response.status_code == 200
    assert b'"n"' in response.content
    assert response["X-Cachewise"] == "bypass; reason=cache-unavailable"
