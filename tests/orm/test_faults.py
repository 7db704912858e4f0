"""Cached ORM data after outages: invalidations the cache missed, a server back from a snapshot.

The writer's save commits while its Redis cannot be reached (a blackholing TCP proxy between
them: the server keeps its data, other processes keep reading it), then the writer exits. Or
Redis restarts from an older RDB snapshot. Either way, after the bound of docs/guarantees.md
(``CACHEWISE_RECOVERY_INTERVAL`` after the later of the write's return and the cache answering
again) no reader may see the old data through rows, lists, ``depends_on`` fragments or
``Namespace`` keys.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.core.cache import caches
from django.db import connection, transaction
from django.test import override_settings

from cachewise import Namespace, recovery
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import CacheUnavailableError
from cachewise.orm import cached_list, invalidation
from cachewise.testing import RedisServerInfo, isolated_caches
from tests import faults_child as child
from tests.tcp_proxy import TcpProxy
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)

INTERVAL = 1.0  # CACHEWISE_RECOVERY_INTERVAL's default: the bound under test
SLACK = 0.5  # one read of every cache, on a loaded machine


def _via(caches_: dict[str, Any], url: str) -> dict[str, Any]:
    """The same caches (prefix included) reached through ``url``'s host and port."""
    netloc = urlsplit(url).netloc
    return {
        alias: {**entry, "LOCATION": urlunsplit(urlsplit(entry["LOCATION"])._replace(netloc=netloc))}
        for alias, entry in caches_.items()
    }


def _warm() -> tuple[int, int]:
    """Rows titled "old", read once through every cache so each holds the old data."""
    author = Author.objects.create(name="old")
    article = Article.objects.create(title="old", author=author)
    caches["default"].set(Namespace("faults").key(article.pk, "title"), "old", 600)
    assert child.read_all(article.pk, author.pk) == ("old", "old", "old", "old", "old")
    return article.pk, author.pk


def _records() -> int:
    from cachewise.models import UndeliveredInvalidation

    return UndeliveredInvalidation.objects.count()


def _stale_after(seen: list[tuple[float, Any]], deadline: float) -> list[Any]:
    fresh = ("new", "new", "new", "new", None)
    return [(round(at - deadline, 3), values) for at, values in seen if at > deadline and values != fresh]


def _test_database_url() -> str | None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    return urlunsplit(urlsplit(url)._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.mark.slow
@pytest.mark.skipif(connection.vendor != "postgresql", reason="child processes need a database server")
def test_write_committed_while_redis_is_unreachable_reaches_every_process_after_the_writer_exits(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    article_pk, author_pk = _warm()
    ctx = multiprocessing.get_context("spawn")
    done, seen_q, committed_q = ctx.Event(), ctx.Queue(), ctx.Queue()
    with TcpProxy(redis_server.port) as proxy:
        reader = ctx.Process(
            target=child.run,
            args=("reader", _test_database_url(), cachewise_caches, article_pk, author_pk, done, seen_q),
        )
        reader.start()
        proxy.blackhole()  # the writer's Redis hangs; the reader's (direct) answers throughout
        writer = ctx.Process(
            target=child.run,
            args=(
                "writer",
                _test_database_url(),
                _via(cachewise_caches, proxy.url_for(0)),
                article_pk,
                author_pk,
                committed_q,
            ),
        )
        writer.start()
        try:
            returned_at = committed_q.get(timeout=60)
            writer.join(30)
            time.sleep(max(0.0, returned_at + INTERVAL + SLACK + 1.0 - time.time()))
        finally:
            done.set()
            seen = seen_q.get(timeout=30)
            reader.join(10)
            for process in (reader, writer):
                if process.is_alive():
                    process.kill()
    assert writer.exitcode == 0
    assert reader.exitcode == 0
    assert any(at > returned_at + INTERVAL + SLACK for at, _ in seen)  # it read after the bound
    assert _stale_after(seen, returned_at + INTERVAL + SLACK) == []
    assert _records() == 0  # applied, then deleted


def test_invalidation_recorded_by_a_writer_that_forgot_it_is_applied_by_another_reader(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    """The same fault in one process (runs on SQLite too): the writer's memory is then wiped."""
    article_pk, author_pk = _warm()
    with TcpProxy(redis_server.port) as proxy:
        proxy.blackhole()
        with override_settings(CACHES=_via(cachewise_caches, proxy.url_for(0))):
            with transaction.atomic():
                Article.objects.filter(pk=article_pk).update(title="new")
                Author.objects.filter(pk=author_pk).update(name="new")
            with pytest.raises(CacheUnavailableError):
                Namespace("faults").bump(article_pk)
    invalidation._escalate.clear()  # what a writer that exits takes with it
    assert child.read_all(article_pk, author_pk) == ("new", "new", "new", "new", None)
    assert _records() == 0  # applied, then deleted


def test_a_check_on_an_event_loop_leaves_the_records_to_a_sync_read(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    """An async view's cache read runs the check on the event loop, where Django refuses the
    database (SynchronousOnlyOperation): the read is served, and the records stay for the next
    read made where the database can be used."""
    article_pk, _ = _warm()
    with TcpProxy(redis_server.port) as proxy:
        proxy.blackhole()
        with (
            override_settings(CACHES=_via(cachewise_caches, proxy.url_for(0))),
            pytest.raises(CacheUnavailableError),
        ):
            Namespace("faults").bump(article_pk)
    pending = _records()
    assert pending > 0

    async def read_on_the_loop() -> bool:
        return recovery.tick(force=True)

    assert asyncio.run(read_on_the_loop()) is True  # nothing raised into the async view
    assert _records() == pending
    recovery.tick(force=True)
    assert _records() == 0


def test_write_inside_a_transaction_while_the_cache_is_known_down_is_recorded_with_the_write(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    article_pk, _ = _warm()
    invalidation._escalate["default"] = 0.0  # this process already failed to reach the cache
    try:
        with transaction.atomic():
            Article.objects.filter(pk=article_pk).update(title="new")
            assert _records() == 1  # before the commit, in its transaction
            transaction.set_rollback(True)
        assert _records() == 0  # rolled back with the write
    finally:
        invalidation._escalate.clear()


def test_restart_from_an_older_snapshot_does_not_serve_pre_write_rows_or_lists() -> None:
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(extra_args=["--dir", data]) as server:
        info = RedisServerInfo(server.host, server.port, 0, server.url)
        with isolated_caches(info):
            article_pk, _ = _warm()
            redis.Redis(port=server.port).save()  # the snapshot holds the old rows and counters
            article = Article.objects.get(pk=article_pk)
            article.title = "new"
            article.save()
            assert Article.cached.get(article_pk)["title"] == "new"  # type: ignore[index]
            server.kill()
            server.restart()  # loads the snapshot: counters and entries from before the save
            up_at = time.time()
            seen = []
            while time.time() < up_at + INTERVAL + SLACK + 1.0:
                row = Article.cached.get(article_pk) or {}
                listed = cached_list(Article.objects.filter(pk=article_pk).values("id", "title"), ttl=600)
                seen.append((time.time(), (row.get("title"), listed[0]["title"])))
                time.sleep(0.02)
    deadline = up_at + INTERVAL + SLACK
    assert [values for at, values in seen if at > deadline and values != ("new", "new")] == []


@pytest.mark.slow
@pytest.mark.skipif(connection.vendor != "postgresql", reason="child processes need a database server")
def test_restart_from_an_older_snapshot_is_seen_by_a_reader_process() -> None:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(extra_args=["--dir", data]) as server:
        info = RedisServerInfo(server.host, server.port, 0, server.url)
        with isolated_caches(info) as caches_:
            article_pk, author_pk = _warm()
            done, seen_q = ctx.Event(), ctx.Queue()
            reader = ctx.Process(
                target=child.run,
                args=("reader", _test_database_url(), caches_, article_pk, author_pk, done, seen_q),
            )
            reader.start()
            try:
                time.sleep(3.0)  # the reader is up and reading (it checked the server at least once)
                redis.Redis(port=server.port).save()
                Article.objects.filter(pk=article_pk).update(title="new")
                time.sleep(0.5)
                server.kill()
                server.restart()  # loads the snapshot: the old title and its counters
                up_at = time.time()
                time.sleep(INTERVAL + SLACK + 1.0)
            finally:
                done.set()
                seen = seen_q.get(timeout=30)
                reader.join(10)
                if reader.is_alive():
                    reader.kill()
    deadline = up_at + INTERVAL + SLACK
    assert any(at > deadline for at, _ in seen)
    assert [values[:2] for at, values in seen if at > deadline and values[:2] != ("new", "new")] == []
