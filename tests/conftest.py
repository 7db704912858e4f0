"""Shared fixtures: every test gets real Redis caches under its own key prefix.

The ``redis_server``, ``cachewise_caches``, ``redis_client`` and ``disposable_redis`` fixtures come
from cachewise's own pytest plugin (``cachewise.testing``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cachewise.testing import RedisServerInfo

from ._backends import BACKENDS, configured


@pytest.fixture(autouse=True)
def _isolated_redis_caches(cachewise_caches: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run every test against the real Redis, never the LocMem placeholder in settings."""
    return cachewise_caches


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> Iterator[str]:
    """The ``default`` alias on each store path in turn: ours, Django's, django-redis, LocMem."""
    with configured(request.param, redis_server, cachewise_caches) as kind:
        yield kind
