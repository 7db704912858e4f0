"""The near cache across processes: a write anywhere reaches every other process's near copy.

Process A is this test process (its caches have no near cache: it writes the way any other
worker does); process B is a spawned child (tests/near_child.py) that reads through its own
near cache and answers over a pipe. Real processes, real embedded redis-server.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from cachewise import Namespace
from cachewise.embedded import EmbeddedRedis
from cachewise.testing import RedisServerInfo, isolated_caches
from tests import near_child

READY = 10.0
TRIALS = 500


def _near(entry: dict[str, Any], **near: Any) -> dict[str, Any]:
    options = {**(entry.get("OPTIONS") or {}), "near_cache": near or True, "client_name": "near-b"}
    return {**entry, "OPTIONS": options}


class ProcessB:
    """A spawned reader with the near cache on; ``ask`` runs one command there."""

    def __init__(self, caches_: dict[str, Any], **near: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        configured = {**caches_, "default": _near(caches_["default"], **near)}
        self.process = ctx.Process(target=near_child.serve, args=(None, configured, child_end))
        self.process.start()
        assert self._answer(60) is not None  # set up
        assert self.ask("ready", READY) is True

    def _answer(self, timeout: float) -> Any:
        assert self.conn.poll(timeout), "process B did not answer"
        status, value = self.conn.recv()
        assert status == "ok", value
        return value

    def ask(self, *command: Any, timeout: float = 30) -> Any:
        self.conn.send(command)
        return self._answer(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("exit",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


@pytest.fixture
def reader(cachewise_caches: dict[str, Any]) -> Iterator[ProcessB]:
    b = ProcessB(cachewise_caches)
    try:
        yield b
    finally:
        b.close()


def _kill_b_connections(location: str) -> int:
    """CLIENT KILL every connection of process B (named near-b), the tracking one included."""
    client = redis.Redis.from_url(location)
    try:
        victims = [c for c in client.client_list() if c.get("name") == "near-b"]
        for victim in victims:
            client.client_kill_filter(_id=victim["id"])
        return len(victims)
    finally:
        client.close()


def _stale_trials(b: ProcessB, trials: int, key: str) -> list[tuple[int, Any]]:
    """A sets ``key`` to ``i``, tells B once set() returned, B reads 5 ms later: the stale reads."""
    cache = caches["default"]
    stale = []
    for i in range(trials):
        b.ask("get", key)  # B holds the previous value...
        b.ask("get", key)  # ... in its near cache (a near hit)
        cache.set(key, i)
        got = b.ask("get_after", key, 0.005)
        if got != i:
            stale.append((i, got))
    return stale


@pytest.mark.slow
def test_no_stale_read_in_500_trials_across_processes(reader: ProcessB) -> None:
    caches["default"].set("hot", -1)
    assert _stale_trials(reader, TRIALS, "hot") == []
    assert reader.ask("held", "hot")  # B did serve from its near cache meanwhile


@pytest.mark.slow
def test_no_stale_read_after_client_kill_of_bs_connections(
    reader: ProcessB, cachewise_caches: dict[str, Any]
) -> None:
    cache = caches["default"]
    location = cachewise_caches["default"]["LOCATION"]
    stale = []
    for i in range(20):
        cache.set("hot", f"old{i}")
        reader.ask("get", "hot")
        reader.ask("get", "hot")
        assert reader.ask("held", "hot")
        assert _kill_b_connections(location) >= 1
        cache.set("hot", f"new{i}")
        got = reader.ask("get_after", "hot", 0.005)
        if got not in (f"new{i}", None):  # a killed pooled socket fails once: a miss, not stale
            stale.append((i, got))
        assert reader.ask("ready", READY)
    assert stale == []
    assert _stale_trials(reader, 50, "hot") == []  # and near caching works again afterwards
    assert reader.ask("stats")["connects"] >= 21


@pytest.mark.slow
def test_no_stale_read_after_a_redis_restart(disposable_redis: EmbeddedRedis) -> None:
    server = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    with isolated_caches(server) as configured:
        b = ProcessB(configured)
        try:
            cache = caches["default"]
            stale = []
            for i in range(3):
                cache.set("hot", f"old{i}")
                b.ask("get", "hot")
                assert b.ask("get", "hot") == f"old{i}"
                assert b.ask("held", "hot")
                disposable_redis.restart()
                cache.set("hot", f"new{i}")
                if cache.get("hot") != f"new{i}":  # A's own pooled socket died with the server
                    cache.set("hot", f"new{i}")
                got = b.ask("get_after", "hot", 0.005)
                if got not in (f"new{i}", None):
                    stale.append((i, got))
                assert b.ask("ready", READY)
            assert stale == []
            assert _stale_trials(b, 50, "hot") == []
        finally:
            b.close()


# -- one test per write kind --------------------------------------------------------------------


def test_set_invalidates_another_processs_copy(reader: ProcessB) -> None:
    caches["default"].set("k", "old")
    reader.ask("get", "k")
    assert reader.ask("held", "k")
    caches["default"].set("k", "new")
    assert reader.ask("get", "k") == "new"


def test_delete_invalidates_another_processs_copy(reader: ProcessB) -> None:
    caches["default"].set("k", "old")
    reader.ask("get", "k")
    assert reader.ask("held", "k")
    caches["default"].delete("k")
    assert reader.ask("get", "k") is None


def test_expiry_invalidates_another_processs_copy(reader: ProcessB) -> None:
    cache = caches["default"]
    cache.set("k", "old", None)
    reader.ask("get", "k")
    assert reader.ask("held", "k")
    cache.touch("k", 0.3)  # a TTL given after B read the key
    time.sleep(0.05)
    assert reader.ask("get", "k") == "old"
    time.sleep(0.35)
    assert reader.ask("get", "k") is None


def test_eviction_invalidates_another_processs_copy(disposable_redis: EmbeddedRedis) -> None:
    server = RedisServerInfo(
        disposable_redis.host, disposable_redis.port, 0, disposable_redis.url, disposable_redis
    )
    raw = redis.Redis.from_url(disposable_redis.url)
    raw.config_set("maxmemory", 4 * 1024 * 1024)
    raw.config_set("maxmemory-policy", "allkeys-lru")
    with isolated_caches(server) as configured:
        b = ProcessB(configured)
        try:
            cache = caches["default"]
            cache.set("k", "old")
            b.ask("get", "k")
            assert b.ask("held", "k")
            time.sleep(1.1)  # the LRU clock counts seconds: make "k" the oldest key
            full = cache.make_and_validate_key("k")
            filler = "x" * 10_000
            for i in range(2_000):  # 20 MB through a 4 MB server
                raw.set(f"filler:{i}", filler)
                if raw.object("idletime", full) is None:  # OBJECT does not touch the LRU clock
                    break
            assert raw.object("idletime", full) is None, "the key was not evicted"
            assert b.ask("get", "k") is None
        finally:
            b.close()
            raw.close()


def test_version_bump_invalidates_another_processs_copy(reader: ProcessB) -> None:
    scope = Namespace("near-bump")
    before = scope.version(3)
    assert reader.ask("version", "near-bump", 3) == before
    assert reader.ask("version", "near-bump", 3) == before  # held by B now
    scope.bump(3)
    assert reader.ask("version", "near-bump", 3) == scope.version(3) > before


@pytest.mark.django_db(transaction=True)
def test_orm_save_invalidates_another_processs_copy(reader: ProcessB) -> None:
    """B reads the row from Redis (entry and counters held); A saves; B must not serve the old row.

    On SQLite B has no database of its own: a read that goes to the database shows as
    "<database>", which is what an invalidated entry must do.
    """
    from tests.testapp.models import Article, Author

    article = Article.objects.create(title="old", author=Author.objects.create(name="a"))
    assert Article.cached.get(article.pk)["title"] == "old"  # type: ignore[index]  # A fills Redis
    assert reader.ask("row", article.pk) == "old"
    assert reader.ask("row", article.pk) == "old"  # from B's near cache
    assert reader.ask("row", article.pk) == "old"  # counters and remembered pack, no pointer
    article.title = "new"
    article.save()
    assert reader.ask("row", article.pk) in ("new", "<database>")


def test_a_writer_with_its_own_near_cache_and_a_reader_both_see_fresh_values(
    cachewise_caches: dict[str, Any],
) -> None:
    """A near-cached in both processes: each sees the writes of the other and of a third."""
    configured = {**cachewise_caches, "default": _near(cachewise_caches["default"])}
    b = ProcessB(cachewise_caches)
    try:
        with override_settings(CACHES=configured):
            cache: Any = caches["default"]
            assert cache.near.tracker.wait_ready(READY)
            try:
                cache.set("k", "a")
                assert cache.get("k") == "a"
                assert b.ask("get", "k") == "a"
                b_cache = redis.Redis.from_url(cachewise_caches["default"]["LOCATION"])
                b_cache.set(cache.make_and_validate_key("k"), cache.encode("b"))
                b_cache.close()
                assert cache.get("k") == "b"
            finally:
                cache.near.close()
    finally:
        b.close()
