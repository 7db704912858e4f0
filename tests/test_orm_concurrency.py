"""Real processes: writers commit in transactions while readers read through the cache.

After a writer's ``save()`` inside ``atomic()`` has returned, it raises a per-row *floor* (in
Redis, outside the cache under test). A reader reads the floor first, then the row through
``Model.cached.get`` and the list through ``cached_list``: the value it gets must never be older
than the floor. PostgreSQL only: SQLite serialises writers on a file lock, which tests nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.db import connection, connections, transaction

from cachewise.monitoring.metrics import metrics
from cachewise.orm import cached_list
from tests.testapp.models import Article, Author

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]

ROWS = 4
WRITERS = 3
READERS = 3
WRITES_EACH = 40
DEADLINE = 20.0

_RAISE_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def _titles_query() -> Any:
    return Article.objects.order_by("pk").values("id", "title")


def _run_child(target: Callable[..., int], *args: Any) -> None:
    """Run in a forked child; never return into pytest (exit code carries the result)."""
    code = 99
    try:
        code = target(*args)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _writer(pks: list[int], floor_url: str, prefix: str, seed: int) -> int:
    client = redis.Redis.from_url(floor_url)
    rng = random.Random(seed)
    for _ in range(WRITES_EACH):
        pk = rng.choice(pks)
        with transaction.atomic():
            row = Article.objects.select_for_update().get(pk=pk)
            row.title = str(int(row.title) + 1)
            row.save(update_fields=["title"])
        # The commit and its invalidation have returned: nobody may read older from now on.
        client.eval(_RAISE_FLOOR, 1, f"{prefix}:floor:{pk}", row.title)
    return 0


def _reader(pks: list[int], floor_url: str, prefix: str, done: Any, results: Any) -> int:
    client = redis.Redis.from_url(floor_url)
    violations: list[str] = []
    reads = 0
    stop_at = time.monotonic() + DEADLINE
    while not done.is_set() and time.monotonic() < stop_at:
        floors = {pk: int(client.get(f"{prefix}:floor:{pk}") or 0) for pk in pks}
        for pk in pks:
            value = int(Article.cached.get(pk)["title"])  # type: ignore[index]
            if value < floors[pk]:
                violations.append(f"row {pk}: read {value} after {floors[pk]} was committed")
        for row in cached_list(_titles_query(), ttl=60):
            if int(row["title"]) < floors[row["id"]]:
                violations.append(f"list {row['id']}: read {row['title']} after {floors[row['id']]}")
        reads += 1
    hits = sum(
        v for (event, _, ns), v in metrics.snapshot().items() if event == "hit" and ns.startswith("orm.")
    )
    results.put((violations[:10], reads, hits))
    results.close()
    results.join_thread()  # flush before os._exit, which skips the queue's feeder thread
    return 1 if violations else 0


def test_cache_never_serves_older_than_a_returned_commit(redis_server: Any) -> None:
    author = Author.objects.create(name="Writer")
    pks = [Article.objects.create(title="0", author=author).pk for _ in range(ROWS)]
    prefix = f"cwtest-{os.getpid()}-{time.time_ns()}"
    floor_url = redis_server.url
    ctx = multiprocessing.get_context("fork")
    done, results = ctx.Event(), ctx.Queue()
    connections.close_all()  # children must open their own database connections
    readers = [
        ctx.Process(target=_run_child, args=(_reader, pks, floor_url, prefix, done, results))
        for _ in range(READERS)
    ]
    writers = [
        ctx.Process(target=_run_child, args=(_writer, pks, floor_url, prefix, i)) for i in range(WRITERS)
    ]
    for process in (*readers, *writers):
        process.start()
    for process in writers:
        process.join(DEADLINE)
    done.set()
    outcomes = [results.get(timeout=DEADLINE) for _ in readers]
    for process in readers:
        process.join(DEADLINE)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    assert [violation for violations, _, _ in outcomes for violation in violations] == []
    assert [p.exitcode for p in readers] == [0] * READERS
    assert all(reads > 0 for _, reads, _ in outcomes)
    assert sum(hits for _, _, hits in outcomes) > 0  # the cache was really in the path
    # At the end the cache serves exactly what is committed.
    committed = dict(Article.objects.values_list("pk", "title"))
    assert sum(int(title) for title in committed.values()) == WRITERS * WRITES_EACH
    assert {pk: Article.cached.get(pk)["title"] for pk in pks} == committed  # type: ignore[index]
    assert {row["id"]: row["title"] for row in cached_list(_titles_query(), ttl=60)} == committed
    redis.Redis.from_url(floor_url).delete(*(f"{prefix}:floor:{pk}" for pk in pks))
