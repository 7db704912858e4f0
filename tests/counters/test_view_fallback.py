"""docs/counters.md's view example: with Redis down the view still answers and the view is counted.

The test runs the code block of the docs page itself (with the page's ``Article`` and
``article_views`` bound to a test model and a counter), so the docs cannot drift into a view that
500s during an outage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory, override_settings

from cachewise import Counter
from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis
from tests.testapp.models import PageViews

ROOT = Path(__file__).resolve().parents[2]


def _docs_view(counter: Counter) -> Any:
    page = (ROOT / "docs" / "counters.md").read_text()
    section = page[page.index("## In a view") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {"Article": PageViews, "article_views": counter}
    exec(compile(code.group(1), "docs/counters.md", "exec"), namespace)
    return namespace["article_viewed"]


@pytest.mark.django_db
def test_the_documented_view_counts_in_the_database_while_redis_is_down(
    disposable_redis: EmbeddedRedis,
) -> None:
    row = PageViews.objects.create(page=1, views=10)
    counter = Counter("docs:views", ttl=3600, alias="default")
    with override_settings(CACHES=caches_from_url(disposable_redis.url, key_prefix="docsview")):
        view = _docs_view(counter)
        up = view(RequestFactory().post("/"), row.pk)
        assert (up.status_code, up.content) == (200, b'{"pending": 1}')
        disposable_redis.kill()
        for _ in range(3):  # refused connections, then the open circuit: both are handled
            down = view(RequestFactory().post("/"), row.pk)
            assert (down.status_code, down.content) == (200, b'{"pending": 0}')
    row.refresh_from_db()
    assert row.views == 13


@pytest.mark.django_db
def test_a_bare_incr_is_what_the_fallback_is_for(disposable_redis: EmbeddedRedis) -> None:
    from cachewise import CacheUnavailableError

    counter = Counter("docs:views", ttl=3600, alias="default")
    with override_settings(CACHES=caches_from_url(disposable_redis.url, key_prefix="docsview")):
        disposable_redis.kill()
        with pytest.raises(CacheUnavailableError):
            counter.incr(1)
