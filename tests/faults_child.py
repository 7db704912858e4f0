"""Child processes of tests/orm/test_faults.py (spawned: each sets Django up itself).

Nothing here imports Django at module level: a spawned child imports this module first, then
:func:`run` configures Django against the parent's test database and the caches it was given.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from typing import Any

BYLINE = "{% load cachewise %}{% cache 600 byline depends_on=author %}{{ author.name }}{% endcache %}"


def _setup(database_url: str | None, caches: dict[str, Any]) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.test import override_settings

    django.setup()
    override_settings(CACHES=caches).enable()


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


def read_all(article_pk: int, author_pk: int) -> tuple[str, str, str, str, Any]:
    """What a user sees through each cache: row, list, fragment, and a Namespace-keyed value."""
    from django.template import Context, Template

    from cachewise import Namespace
    from cachewise.exceptions import CacheUnavailableError
    from cachewise.orm import cached_list
    from tests.testapp.models import Article, Author

    row = Article.cached.get(article_pk) or {}
    listed = cached_list(Article.objects.filter(pk=article_pk).values("id", "title"), ttl=600)
    author = Author.objects.get(pk=author_pk)
    fragment = Template(BYLINE).render(Context({"author": author}))
    try:
        value = Namespace("faults").get(article_pk, "title")
    except CacheUnavailableError:  # Namespace.get raises while Redis is down (no fallback value)
        value = "cache down"
    return row.get("title", "?"), listed[0]["title"], str(row.get("author__name")), fragment.strip(), value


def writer(article_pk: int, author_pk: int, out: Any) -> int:
    """Commit the edits (the cache behind a blackholed proxy), bump the Namespace, exit."""
    from django.db import transaction

    from cachewise import Namespace
    from cachewise.exceptions import CacheUnavailableError
    from tests.testapp.models import Article, Author

    with transaction.atomic():
        article = Article.objects.get(pk=article_pk)
        article.title = "new"
        article.save()
        author = Author.objects.get(pk=author_pk)
        author.name = "new"
        author.save()
    # What user code does after the write; recorded for other processes, then raised.
    with contextlib.suppress(CacheUnavailableError):
        Namespace("faults").bump(article_pk)
    out.put(time.time())
    out.close()
    out.join_thread()
    return 0


def reader(article_pk: int, author_pk: int, done: Any, out: Any) -> int:
    """Read through every cache every 20 ms until told to stop; report (time, what was seen)."""
    seen: list[tuple[float, Any]] = []
    while not done.is_set():
        seen.append((time.time(), read_all(article_pk, author_pk)))
        time.sleep(0.02)
    out.put(seen)
    out.close()
    out.join_thread()  # flush the feeder thread before os._exit() ends the process
    return 0
