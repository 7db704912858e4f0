"""Shared fixtures: every test gets real Redis caches under its own key prefix.

The ``redis_server``, ``cachewise_caches``, ``redis_client`` and ``disposable_redis`` fixtures come
from cachewise's own pytest plugin (``cachewise.testing``).
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated_redis_caches(cachewise_caches: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run every test against the real Redis, never the LocMem placeholder in settings."""
    return cachewise_caches
