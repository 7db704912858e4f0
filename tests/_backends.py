"""Cache configurations the low-level API behaviour suites run against (one per store path)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test import override_settings

from cachewise.testing import RedisServerInfo

BACKENDS = ("cachewise", "django-redis-builtin", "django-redis", "locmem")


@contextmanager
def configured(kind: str, server: RedisServerInfo, caches: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Point the ``default`` alias at ``kind``; yield it. ``cachewise`` is the fixture's own;
    ``django-redis-builtin`` is Django's RedisCache, ``django-redis`` the django-redis package."""
    if kind == "cachewise":
        yield kind
        return
    default = dict(caches["default"])
    if kind == "django-redis-builtin":
        default["BACKEND"] = "django.core.cache.backends.redis.RedisCache"
        default["OPTIONS"] = {}
    elif kind == "django-redis":
        default["BACKEND"] = "django_redis.cache.RedisCache"
        default["OPTIONS"] = {}
    else:
        default = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    with override_settings(CACHES={**caches, "default": default}):
        yield kind
