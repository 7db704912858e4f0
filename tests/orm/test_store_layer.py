"""ORM version counters, reads and fenced fills through the store: the server's clock, fences
across processes, and the failure policy (server errors raise, outages fail open)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches

from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import CacheServerError, CacheUnavailableError
from cachewise.missing import MISSING
from cachewise.monitoring.metrics import metrics
from cachewise.orm import cached_list, generations
from cachewise.orm import lists as orm_lists
from cachewise.orm.rows import RowCache, settle
from cachewise.resilience import reset_breakers
from cachewise.store.stamped import StampedEntry, StampedFill
from cachewise.testing import RedisServerInfo, isolated_caches
from tests import store_child
from tests.orm import count_calls
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)

DAY_NS = 86_400 * 10**9


def _server_us(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def _full(key: str) -> str:
    return caches["default"].make_and_validate_key(key)


def _keys(name: str) -> list[str]:
    return [generations.counter_key("testapp.article", "gen", name), generations.GLOBAL_EPOCH]


def test_counters_are_created_and_bumped_on_the_server_clock(
    redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - DAY_NS)  # this process's clock is a day late
    keys = _keys("clock")
    before = _server_us(redis_client)
    _, counters = generations.read("default", [], keys, 600)
    after = _server_us(redis_client)
    assert counters is not None
    assert all(before <= value <= after for value in counters)

    redis_client.set(_full(keys[0]), 5)  # an old, low value: a bump moves it to the server's now
    before = _server_us(redis_client)
    generations.bump("default", keys[:1], 600)
    after = _server_us(redis_client)
    assert before <= int(redis_client.get(_full(keys[0]))) <= after
    ahead = after + 10**9
    redis_client.set(_full(keys[0]), ahead)  # above the clock: a bump adds one
    generations.bump("default", keys[:1], 600)
    assert int(redis_client.get(_full(keys[0]))) == ahead + 1
    assert 0 < redis_client.ttl(_full(keys[0])) <= 600


def _bump_in_another_process(cachewise_caches: dict[str, Any], keys: list[str]) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=store_child.bump, args=(cachewise_caches, keys, 600)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0


def test_fill_read_before_a_bump_by_another_process_is_not_stored(
    cachewise_caches: dict[str, Any], redis_client: Any
) -> None:
    keys = _keys("fence")
    entries, counters = generations.read("default", ["list:a"], keys, 600)
    assert entries == [MISSING]
    assert counters is not None
    _bump_in_another_process(cachewise_caches, keys)
    generations.store("default", [StampedEntry("list:a", ["stale"], 60, keys, counters)])
    assert redis_client.exists(_full("list:a")) == 0  # fenced: not even stored
    _, fresh = generations.read("default", [], keys, 600)
    assert fresh is not None
    assert fresh[0] > counters[0]
    generations.store("default", [StampedEntry("list:a", ["new"], 60, keys, fresh)])
    entries, _ = generations.read("default", ["list:a"], keys, 600)
    assert entries == [[fresh, ["new"]]]


def test_batch_fill_skips_rows_whose_version_another_process_bumped(
    cachewise_caches: dict[str, Any], redis_client: Any
) -> None:
    shared = [generations.GLOBAL_EPOCH]
    rows = [generations.counter_key("testapp.article", "rv", pk) for pk in (1, 2)]
    _, counters = generations.read("default", [], [*rows, *shared], 600)
    assert counters is not None
    _bump_in_another_process(cachewise_caches, rows[:1])  # row 1 written meanwhile
    fills = [StampedFill(f"row:{i}", ("title",), rows[i - 1], counters[i - 1]) for i in (1, 2)]
    generations.store_batch("default", fills, shared, counters[2:], 60)
    assert redis_client.exists(_full("row:1")) == 0
    assert redis_client.exists(_full("row:2")) == 1


@pytest.fixture
def article() -> Article:
    created: Article = Article.objects.create(title="First", author=Author.objects.create(name="Ann"))
    return created


@pytest.fixture
def own_redis(disposable_redis: EmbeddedRedis) -> Iterator[tuple[EmbeddedRedis, Any]]:
    """Caches on a private server (its memory limit and its life are this test's alone)."""
    info = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    reset_breakers()
    with isolated_caches(info, options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5}):
        client = redis.Redis.from_url(disposable_redis.url)
        try:
            yield disposable_redis, client
        finally:
            client.close()
    reset_breakers()


def test_a_remembered_pack_evicted_by_redis_is_a_miss_and_the_row_is_read_again(
    own_redis: tuple[EmbeddedRedis, Any], article: Article, django_assert_num_queries: Any
) -> None:
    """Real eviction (``volatile-ttl``: the shortest TTL goes first, here the rows' pack and
    pointer): the process still remembers the pack, finds it gone, and reads the row again."""
    from cachewise.orm.rows import RowCache, _pack_head

    _, client = own_redis
    rows = RowCache(Article, ["id", "title"], ttl=30)  # shorter than every other key's TTL
    rows.get(article.pk)
    with django_assert_num_queries(0):
        assert rows.get(article.pk) == {"id": article.pk, "title": "First"}
    ref = rows._refs[article.pk]
    pack = caches["default"].make_key(_pack_head(rows.plan()) + ref)
    client.config_set("maxmemory-policy", "volatile-ttl")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 64 * 1024)
    try:
        for index in range(2000):  # fill memory until Redis evicts the pack
            if not client.exists(pack):
                break
            try:
                client.set(f"junk:{index}", b"x" * 4096, ex=86_400 * 30)
            except redis.exceptions.OutOfMemoryError:
                break
        assert not client.exists(pack), "Redis evicted something else first"
    finally:
        client.config_set("maxmemory", 0)
    assert rows._refs[article.pk] == ref  # still remembered, and within its TTL
    with django_assert_num_queries(1):
        assert rows.get(article.pk) == {"id": article.pk, "title": "First"}
    assert rows._refs[article.pk] != ref  # the refill's pack
    with django_assert_num_queries(0):
        assert rows.get(article.pk) == {"id": article.pk, "title": "First"}


def test_out_of_memory_on_a_row_or_list_read_raises(
    own_redis: tuple[EmbeddedRedis, Any], article: Article
) -> None:
    _, client = own_redis
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)  # every write is refused: the read creates missing counters
    try:
        with pytest.raises(CacheServerError, match="OOM"):
            Article.cached.get(article.pk)
        with pytest.raises(CacheServerError, match="OOM"):
            cached_list(Article.objects.filter(pk=article.pk).values("id", "title"))
    finally:
        client.config_set("maxmemory", 0)
    assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]


def test_wrong_type_under_a_counter_raises_from_the_fill(
    article: Article, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    queryset = Article.objects.filter(pk=article.pk).values("id", "title")
    gen = _full(generations.counter_key("testapp.article", "gen"))
    real = orm_lists._evaluate

    def evaluate_then_clobber(qs: Any) -> Any:
        rows = real(qs)
        redis_client.delete(gen)
        redis_client.hset(gen, "field", "value")  # another program wrote a hash at the counter's key
        return rows

    monkeypatch.setattr(orm_lists, "_evaluate", evaluate_then_clobber)
    with pytest.raises(CacheServerError, match="WRONGTYPE"):
        cached_list(queryset)


def test_dead_server_fails_open_on_reads_unless_the_policy_raises(
    own_redis: tuple[EmbeddedRedis, Any], article: Article
) -> None:
    server, _ = own_redis
    Article.cached.get(article.pk)
    server.kill()
    metrics.reset()
    try:
        assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
        listed = cached_list(Article.objects.filter(pk=article.pk).values("id", "title"))
    finally:
        server.restart()
    assert listed == [{"id": article.pk, "title": "First"}]
    errors = {key: value for key, value in metrics.snapshot().items() if key[0] == "error"}
    assert errors.get(("error", "default", "orm.testapp.article"), 0) >= 2


def test_dead_server_raises_on_reads_when_the_policy_says_raise(
    disposable_redis: EmbeddedRedis, article: Article
) -> None:
    info = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    reset_breakers()
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "on_read_error": "raise"}
    with isolated_caches(info, options=options):
        disposable_redis.kill()
        try:
            with pytest.raises(CacheUnavailableError):
                Article.cached.get(article.pk)
        finally:
            disposable_redis.restart()
    reset_breakers()


# Large fills are sent without waiting for their answers (read on the answer thread) ------------
def _many_articles(article: Article, count: int) -> list[int]:
    made = Article.objects.bulk_create([Article(title=f"M{i}", author=article.author) for i in range(count)])
    return [article.pk, *(a.pk for a in made)]


def _after_the_query(monkeypatch: pytest.MonkeyPatch, action: Any) -> Any:
    """Make ``action()`` happen right after CachedRows' query, before its fill; returns the undo."""
    real_query = RowCache._query

    def query_then_act(self: RowCache, plan: Any, wanted: list[Any]) -> Any:
        rows = real_query(self, plan, wanted)
        action()
        return rows

    monkeypatch.setattr(RowCache, "_query", query_then_act)
    return lambda: monkeypatch.setattr(RowCache, "_query", real_query)


def test_a_server_that_stops_answering_a_large_fill_costs_the_caller_nothing(
    own_redis: tuple[EmbeddedRedis, Any], article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis paused (SIGSTOP) between the query and the fill: the call returns its rows from the
    database at once; the answer thread gives up after the socket timeout and counts an error;
    once Redis answers again, every row read is current."""
    server, _ = own_redis
    pks = _many_articles(article, 299)
    assert server.process is not None
    pid = server.process.pid
    undo = _after_the_query(monkeypatch, lambda: os.kill(pid, signal.SIGSTOP))
    metrics.reset()
    try:
        started = time.monotonic()
        rows = Article.cached.get_many(pks)
        returned = time.monotonic() - started
        settle()  # the answer thread reads until the socket timeout (0.5 s), then gives up
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    undo()
    assert len(rows) == 300
    assert rows[article.pk]["title"] == "First"
    assert returned < 0.5 <= waited  # the call did not wait for the paused server; the answer did
    errors = {key: value for key, value in metrics.snapshot().items() if key[0] == "error"}
    assert errors.get(("error", "default", "orm.testapp.article"), 0) >= 1
    article.title = "After"
    article.save()
    assert Article.cached.get_many(pks)[article.pk]["title"] == "After"
    assert Article.cached.get_many(pks)[pks[-1]]["title"] == "M298"


def test_out_of_memory_on_a_large_fill_is_logged_and_counted_not_raised(
    own_redis: tuple[EmbeddedRedis, Any],
    article: Article,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_assert_num_queries: Any,
) -> None:
    """A server error on a fill nobody waits for (the call has returned) cannot raise to the
    caller: it is logged on ``cachewise.orm`` and counted; the rows are filled by a later call."""
    _, client = own_redis
    pks = _many_articles(article, 299)
    client.config_set("maxmemory-policy", "noeviction")
    undo = _after_the_query(monkeypatch, lambda: client.config_set("maxmemory", 1))  # writes refused
    metrics.reset()
    try:
        with caplog.at_level(logging.ERROR, logger="cachewise.orm"):
            rows = Article.cached.get_many(pks)
            settle()
    finally:
        client.config_set("maxmemory", 0)
    undo()
    assert len(rows) == 300
    assert "fill sent without waiting failed" in caplog.text
    assert "OOM" in caplog.text
    errors = {key: value for key, value in metrics.snapshot().items() if key[0] == "error"}
    assert errors.get(("error", "default", "orm.testapp.article"), 0) >= 1
    with django_assert_num_queries(1):  # nothing was stored: filled now
        assert len(Article.cached.get_many(pks)) == 300
    with django_assert_num_queries(0):
        assert len(Article.cached.get_many(pks)) == 300


def test_a_large_fill_answered_noscript_runs_again_on_the_answer_thread(
    article: Article, redis_client: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """Scripts flushed (a restart, a failover) between the query and a fill sent without waiting:
    Redis answers NOSCRIPT, and the answer thread loads the script and runs the fill again."""
    pks = _many_articles(article, 299)
    undo = _after_the_query(monkeypatch, redis_client.script_flush)
    assert len(Article.cached.get_many(pks)) == 300
    undo()
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks)[pks[-1]]["title"] == "M298"


def test_a_large_fill_that_cannot_be_sent_to_a_dead_server_is_not_tried_again(
    own_redis: tuple[EmbeddedRedis, Any], article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis killed between the query and the fill: the send fails open (one error counted), the
    call returns its rows, and no fill is tried again (a waited fill would only fail again)."""
    server, _ = own_redis
    pks = _many_articles(article, 299)
    undo = _after_the_query(monkeypatch, server.kill)
    waited = count_calls(monkeypatch, generations, "store_packs")
    metrics.reset()
    try:
        rows = Article.cached.get_many(pks)
        settle()
    finally:
        server.restart()
    assert len(rows) == 300
    assert waited == []
    errors = {key: value for key, value in metrics.snapshot().items() if key[0] == "error"}
    assert errors.get(("error", "default", "orm.testapp.article"), 0) >= 1
    undo()
    reset_breakers()
    assert Article.cached.get_many(pks)[pks[-1]]["title"] == "M298"


def test_out_of_memory_on_a_waited_fill_raises(
    own_redis: tuple[EmbeddedRedis, Any], article: Article, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below 256 rows the fill is waited for, and its server error reaches the caller as any
    server error does (the large-fill test above shows the other side)."""
    _, client = own_redis
    client.config_set("maxmemory-policy", "noeviction")
    undo = _after_the_query(monkeypatch, lambda: client.config_set("maxmemory", 1))
    try:
        with pytest.raises(CacheServerError, match="OOM"):
            Article.cached.get_many([article.pk])
    finally:
        client.config_set("maxmemory", 0)
    undo()
    assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
