"""Settings of the Gunicorn site in tests/pagecache/test_deps_gunicorn.py (and its writer).

Configured by the environment the test sets: ``CW_PD_CACHES`` (the test's ``CACHES`` as JSON),
``CW_PD_DATABASE`` (a SQLite file path, or a ``postgres://`` URL of the test database).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from tests.settings import INSTALLED_APPS, MIDDLEWARE, SECRET_KEY, TEMPLATES, _database_from_url  # noqa: F401

DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.views_deps"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MIDDLEWARE = [
    "tests.pagedeps_site.WorkerMiddleware",
    "cachewise.middleware.UpdateCacheMiddleware",
    *MIDDLEWARE,
    "cachewise.middleware.FetchFromCacheMiddleware",
    "tests.pagedeps_site.ViewStateMiddleware",
]
CACHEWISE_MIDDLEWARE_INCLUDE = [r"^/site/"]
CACHEWISE_DEBUG_HEADERS = True
CACHEWISE_METRICS_FLUSH_INTERVAL = 0
CACHE_MIDDLEWARE_SECONDS = 300
CACHES = json.loads(os.environ.get("CW_PD_CACHES", "{}")) or {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
_database = os.environ.get("CW_PD_DATABASE", ":memory:")
if _database.startswith("postgres"):
    DATABASES = {"default": _database_from_url(_database)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _database}}


class WorkerMiddleware:
    """Outermost: says which worker process answered (never stored with a page)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        response["X-Worker"] = str(os.getpid())
        return response


class ViewStateMiddleware:
    """Inside the site cache: keeps a decorated view's X-Cachewise, which the middleware's
    ``excluded-path`` report replaces on the way out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        if "X-Cachewise" in response:
            response["X-View-Cache"] = response["X-Cachewise"]
        return response
