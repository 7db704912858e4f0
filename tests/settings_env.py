"""Settings as a project writes them: ``CACHES = caches_from_env()``, sessions on the cache.

Used in subprocesses with ``REDIS_URL`` unset, to show that build steps (collectstatic,
makemigrations), ``check --deploy`` and the pytest plugin behave as docs/configuration.md says.
"""

from __future__ import annotations

import os

from cachewise import caches_from_env
from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles"]
CACHES = caches_from_env()
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
STATIC_ROOT = os.environ.get("CACHEWISE_TEST_STATIC_ROOT", "static-collected")
