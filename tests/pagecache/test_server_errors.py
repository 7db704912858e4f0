"""Page and fragment caching fail open on an outage only: a server error is the caller's to see.

A Redis that refuses writes because it is full under ``maxmemory-policy noeviction`` (what
``cachewise.W007`` warns about) answers every fill with OOM. That is not an outage: the server is
up and configured so that nothing can be cached. Served silently uncached, it would cost the
database every page until someone read the logs; raised, it shows up at once, as it does on
``cache.set`` (docs/backend.md, "Failure policy"). Outages keep failing open:
tests/pagecache/test_stampede.py and tests/pagecache/test_templatetag.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.template import Context, Template
from django.test import Client, override_settings

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import CacheServerError

pytestmark = pytest.mark.urls("tests.urls_views")


@pytest.fixture
def full_redis(disposable_redis: EmbeddedRedis) -> Iterator[dict[str, Any]]:
    """CACHES on a server that refuses every write with OOM (noeviction, maxmemory reached)."""
    client = redis.Redis.from_url(disposable_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")  # used memory is always above one byte
    with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
        client.set("probe", "x")
    client.close()
    config = caches_from_url(disposable_redis.url, key_prefix="full")
    with override_settings(CACHES=config):
        try:
            yield config
        finally:
            for alias in ("default", "sessions"):
                caches[alias].close()


def test_a_page_fill_refused_with_oom_raises(full_redis: dict[str, Any]) -> None:
    with pytest.raises(CacheServerError, match="maxmemory"):
        Client().get("/hello/")


def test_a_fragment_fill_refused_with_oom_raises(full_redis: dict[str, Any]) -> None:
    template = Template("{% load cachewise %}{% cache 60 oom %}body{% endcache %}")
    with pytest.raises(CacheServerError, match="maxmemory"):
        template.render(Context({}))
