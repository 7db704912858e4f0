"""Child processes of tests/orm/test_concurrency.py (spawned: each configures Django itself).

Nothing here imports Django at module level: a spawned child imports this module before Django
is set up, then :func:`run` sets it up against the parent's test database and caches.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from typing import Any

WRITES_EACH = 40
DEADLINE = 20.0

_RAISE_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def _setup(database_url: str | None, caches: dict[str, Any]) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.test import override_settings

    django.setup()
    override_settings(CACHES=caches).enable()
    send_and_go = os.environ.get("CACHEWISE_TEST_SEND_AND_GO")
    if send_and_go:  # every fill of at least this many rows is answered on the answer thread
        from cachewise.orm import rows

        rows._SEND_AND_GO = int(send_and_go)


def run(role: str, database_url: str | None, caches: dict[str, Any], *args: Any) -> None:
    """Entry point: set up Django, play ``role``, exit with its result (never return)."""
    code = 99
    try:
        _setup(database_url, caches)
        code = writer(*args) if role == "writer" else reader(*args)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def titles_query() -> Any:
    from tests.testapp.models import Article

    return Article.objects.order_by("pk").values("id", "title")


def writer(pks: list[int], floor_url: str, prefix: str, seed: int) -> int:
    """Increment random rows in transactions; raise each row's floor once the commit returned."""
    import redis
    from django.db import transaction

    from tests.testapp.models import Article

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


def reader(pks: list[int], floor_url: str, prefix: str, done: Any, results: Any) -> int:
    """Read floors, then rows and the list through the cache, until the writers are done."""
    import redis

    from cachewise.monitoring.metrics import metrics
    from cachewise.orm import cached_list
    from tests.testapp.models import Article

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
        for row in cached_list(titles_query(), ttl=60):
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
