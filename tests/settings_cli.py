"""Settings for running ``manage.py cachewise`` in a subprocess: the test settings, CACHES from REDIS_URL."""

from __future__ import annotations

from cachewise.caches_url import caches_from_env
from tests.settings import *  # noqa: F403

CACHES = caches_from_env(key_prefix="clitest")
