"""Real processes: writers commit in transactions while readers read through the cache.

After a writer's ``save()`` inside ``atomic()`` has returned, it raises a per-row *floor* (in
Redis, outside the cache under test). A reader reads the floor first, then the row through
``Model.cached.get`` and the list through ``cached_list``: the value it gets must never be older
than the floor. Children are spawned (not forked: a fork could copy a lock held by a background
thread) and set Django up against the same test database and cache prefix. PostgreSQL only:
SQLite serialises writers on a file lock, which tests nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.db import connection

from cachewise.orm import cached_list
from tests import orm_concurrency_child as child
from tests.testapp.models import Article, Author

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]

ROWS = 4
WRITERS = 3
READERS = 3


def _test_database_url() -> str | None:
    """DATABASE_URL pointing at the test database the parent is using now."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.mark.parametrize("send_and_go", [None, "1"], ids=["fills-waited", "fills-answered-later"])
def test_cache_never_serves_older_than_a_returned_commit(
    redis_server: Any,
    cachewise_caches: dict[str, Any],
    send_and_go: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``fills-answered-later`` every row fill is sent without waiting for its answer (the
    path of fills of 256 rows or more), so the readers' next reads race their own fills."""
    if send_and_go:
        monkeypatch.setenv("CACHEWISE_TEST_SEND_AND_GO", send_and_go)  # the spawned children's
    author = Author.objects.create(name="Writer")
    pks = [Article.objects.create(title="0", author=author).pk for _ in range(ROWS)]
    prefix = f"cwtest-{os.getpid()}-{time.time_ns()}"
    common = (_test_database_url(), cachewise_caches)
    ctx = multiprocessing.get_context("spawn")
    done, results = ctx.Event(), ctx.Queue()
    readers = [
        ctx.Process(target=child.run, args=("reader", *common, pks, redis_server.url, prefix, done, results))
        for _ in range(READERS)
    ]
    writers = [
        ctx.Process(target=child.run, args=("writer", *common, pks, redis_server.url, prefix, seed))
        for seed in range(WRITERS)
    ]
    for process in (*readers, *writers):
        process.start()
    try:
        for process in writers:
            process.join(child.DEADLINE * 2)
        done.set()
        outcomes = [results.get(timeout=child.DEADLINE * 2) for _ in readers]
        for process in readers:
            process.join(child.DEADLINE)
    finally:
        for process in (*readers, *writers):
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in writers] == [0] * WRITERS
    assert [violation for violations, _, _ in outcomes for violation in violations] == []
    assert [p.exitcode for p in readers] == [0] * READERS
    assert all(reads > 0 for _, reads, _ in outcomes)
    assert sum(hits for _, _, hits in outcomes) > 0  # the cache was really in the path
    # At the end the cache serves exactly what is committed.
    committed = dict(Article.objects.values_list("pk", "title"))
    assert sum(int(title) for title in committed.values()) == WRITERS * child.WRITES_EACH
    assert {pk: Article.cached.get(pk)["title"] for pk in pks} == committed  # type: ignore[index]
    assert {row["id"]: row["title"] for row in cached_list(child.titles_query(), ttl=60)} == committed
    redis.Redis.from_url(redis_server.url).delete(*(f"{prefix}:floor:{pk}" for pk in pks))
