"""Counter: atomic increments, one-round-trip reads, lossless flushes under concurrency."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections import Counter as Tally
from typing import Any

import pytest
import redis
from django.db import connection
from django.db.models import F

from cachewise import Counter
from cachewise.counters.batches import RedisBatches
from cachewise.counters.ids import decode_id
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import CacheUnavailableError
from cachewise.keys import encode_part
from cachewise.store.choice import get_store
from tests.testapp.models import PageViews

FORK = multiprocessing.get_context("fork")


def test_incr_get_and_get_many(backend: str) -> None:
    views = Counter("article:views", ttl=3600)
    assert views.incr(1) == 1
    assert views.incr(1, 4) == 5
    assert views.incr("slug-a") == 1
    assert views.get(1) == 5
    assert views.get_many([1, "slug-a", 99]) == {1: 5, "slug-a": 1, 99: 0}


@pytest.mark.django_db  # the flush records each batch it applies
def test_incr_many_batches_increments(backend: str) -> None:
    views = Counter("batch:views", ttl=3600)
    views.incr(1)
    assert views.incr_many({1: 2, "a": 5, 3: 1}) == {1: 3, "a": 5, 3: 1}
    assert views.flush(lambda page, delta: None) == {1: 3, "a": 5, 3: 1}


@pytest.mark.django_db  # the flush records each batch it applies
def test_flush_applies_each_count_once(backend: str) -> None:
    views = Counter("page:views")
    for page in (1, 2, 2, 3, 3, 3, "about"):
        views.incr(page)
    applied: Tally[Any] = Tally()
    assert views.flush(lambda page, delta: applied.update({page: delta})) == {1: 1, 2: 2, 3: 3, "about": 1}
    assert applied == Tally({1: 1, 2: 2, 3: 3, "about": 1})
    assert views.flush(lambda page, delta: applied.update({page: delta})) == {}
    assert views.get_many([1, 2, 3]) == {1: 0, 2: 0, 3: 0}


@pytest.mark.django_db  # the flush records each batch it applies
def test_failed_apply_puts_the_counts_back(backend: str) -> None:
    views = Counter("page:views")
    for page in (1, 2, 3):
        views.incr(page, 10)

    def broken(page: int, delta: int) -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        views.flush(broken)
    assert views.get_many([1, 2, 3]) == {1: 10, 2: 10, 3: 10}
    assert views.flush(lambda page, delta: None) == {1: 10, 2: 10, 3: 10}


def test_a_counter_with_a_ttl_sets_it_once_on_its_hash(redis_client: redis.Redis) -> None:
    views = Counter("ttl:views", ttl=100)
    views.incr(7)
    batches = RedisBatches(get_store(), views)  # type: ignore[arg-type]
    full = batches.live + batches.run()
    first = redis_client.pttl(full)
    assert 90_000 < first <= 100_000
    time.sleep(0.05)
    views.incr(8)
    assert redis_client.pttl(full) < first, "later increments do not push the expiry back"


def test_counts_are_stored_without_ttl_by_default(redis_client: redis.Redis) -> None:
    views = Counter("nottl:views")
    views.incr_many({1: 2, "a": 1})
    keys = redis_client.keys("*nottl:views*")
    assert keys, "the counter wrote its keys"
    assert all(redis_client.pttl(key) == -1 for key in keys), "evictable under volatile-* otherwise"


def test_redis_incr_and_get_many_are_one_round_trip(cachewise_caches: dict[str, Any]) -> None:
    views = Counter("rt:views")
    views.incr(1)  # load the script
    client = get_store().client  # type: ignore[attr-defined]
    calls: list[Any] = []
    real = client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    client.execute_command = spy
    try:
        views.incr(2)
        views.get_many([1, 2, 3, 4])
    finally:
        del client.execute_command
    assert calls == ["EVALSHA", "EVALSHA"]


def test_incr_reloads_its_script_after_a_script_flush(redis_client: redis.Redis) -> None:
    views = Counter("noscript:views", ttl=60)
    assert views.incr(1) == 1
    redis_client.script_flush()  # what a restarted server looks like to a warm client
    assert views.incr(1) == 2
    assert views.get(1) == 2


def test_ids_round_trip_through_the_index() -> None:
    for counter_id in (0, 42, -7, "42", "slug", "None", "with space", "é"):
        assert decode_id(encode_part(counter_id)) == counter_id
    with pytest.raises(TypeError, match="int or str"):
        Counter("x").incr(1.5)  # type: ignore[arg-type]


def test_incr_raises_when_the_cache_is_down(disposable_redis: EmbeddedRedis) -> None:
    from django.test import override_settings

    from cachewise import caches_from_url

    caches = caches_from_url(disposable_redis.url, key_prefix="down", sessions=False)
    disposable_redis.kill()
    with override_settings(CACHES=caches), pytest.raises(CacheUnavailableError):
        Counter("down").incr(1)


@pytest.mark.django_db(transaction=True)  # flushers in threads commit their batch records
def test_concurrent_flushers_never_double_count(cachewise_caches: dict[str, Any]) -> None:
    views = Counter("race:views", batch_size=7)
    applied: Tally[Any] = Tally()
    lock = threading.Lock()
    stop = threading.Event()

    def apply(page: int, delta: int) -> None:
        with lock:
            applied[page] += delta

    # In-memory SQLite raises "table is locked" on concurrent write transactions (no busy
    # wait): serialize the flushers' transactions there. PostgreSQL runs them concurrently.
    guard: Any = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()

    def flusher() -> None:
        try:
            while not stop.is_set():
                with guard:
                    views.flush(apply)
        finally:
            connection.close()  # this thread's own connection

    def incrementer(offset: int) -> None:
        for i in range(1000):
            views.incr((i + offset) % 25)

    flushers = [threading.Thread(target=flusher) for _ in range(3)]
    workers = [threading.Thread(target=incrementer, args=(n,)) for n in range(4)]
    for thread in flushers + workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    stop.set()
    for thread in flushers:
        thread.join(timeout=30)
    views.flush(apply)
    assert sum(applied.values()) == 4000
    assert applied == Tally(dict.fromkeys(range(25), 160))


def _increment(pages: int, count: int) -> None:
    views = Counter("db:views")
    for i in range(count):
        views.incr(i % pages)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_8_processes_x_10000_increments_with_concurrent_flushes_reach_the_database_exactly(
    cachewise_caches: dict[str, Any],
) -> None:
    pages, per_process, processes = 10, 10_000, 8
    PageViews.objects.bulk_create([PageViews(page=page) for page in range(pages)])
    views = Counter("db:views", batch_size=4)

    def apply(page: int, delta: int) -> None:
        PageViews.objects.filter(page=page).update(views=F("views") + delta)

    children = [FORK.Process(target=_increment, args=(pages, per_process)) for _ in range(processes)]
    for child in children:
        child.start()
    flushes = 0
    while any(child.is_alive() for child in children):
        views.flush(apply)  # the database applier runs in this process, concurrently
        flushes += 1
        time.sleep(0.01)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    views.flush(apply)

    totals = dict(PageViews.objects.values_list("page", "views"))
    assert sum(totals.values()) == processes * per_process
    assert totals == dict.fromkeys(range(pages), processes * per_process // pages)
    assert flushes > 3, "the flushes really ran while increments arrived"


@pytest.mark.django_db
def test_flush_counters_command_drains_the_configured_counters(cachewise_caches: dict[str, Any]) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    from tests.counters_app import page_views

    PageViews.objects.bulk_create([PageViews(page=1), PageViews(page=2)])
    for page in (1, 1, 2):
        page_views.incr(page)
    out = StringIO()
    with override_settings(CACHEWISE_COUNTERS=["tests.counters_app.page_views"]):
        call_command("cachewise", "flush-counters", stdout=out)
    assert dict(PageViews.objects.values_list("page", "views")) == {1: 2, 2: 1}
    assert "tests.counters_app.page_views" in out.getvalue()
    assert page_views.get_many([1, 2]) == {1: 0, 2: 0}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.counters_app.not_a_counter", "not a cachewise Counter"),
        ("tests.counters_app.no_apply", "no apply function"),
        ("tests.counters_app.missing", "cannot import"),
    ],
)
def test_flush_counters_command_explains_bad_paths(path: str, message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("cachewise", "flush-counters", "--counter", path)


def test_a_pending_id_costs_at_most_100_bytes_of_redis_memory(redis_client: redis.Redis) -> None:
    views = Counter("mem:views")
    views.incr(0)
    ids = 20_000
    for start in range(0, ids, 1000):
        views.incr_many(dict.fromkeys(range(start, start + 1000), 1))
    keys = redis_client.keys("*{mem:views}*")
    used = sum(int(redis_client.memory_usage(key, samples=0) or 0) for key in keys)
    assert used / ids <= 100, f"{used / ids:.1f} bytes per pending id"


@pytest.mark.django_db
def test_each_drain_step_moves_at_most_batch_size_ids(redis_client: redis.Redis) -> None:
    views = Counter("steps:views", batch_size=50)
    views.incr_many(dict.fromkeys(range(1000), 1))
    batches = RedisBatches(get_store(), views)  # type: ignore[arg-type]
    step = batches.drain_step(batches.run(), 50, 60_000, 0, current=True)
    assert step is not None
    assert len(step.items) == 50
    assert batches.size(batches.run()) == 950
    applied = views.flush(lambda page, delta: None)
    assert len(applied) == 950, "the flush drains the rest in bounded steps (the step above waits)"
