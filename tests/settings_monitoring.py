"""Test settings for ``manage.py``-style subprocesses: CACHES from the ``CW_TEST_CACHES`` JSON."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

CACHES = json.loads(os.environ["CW_TEST_CACHES"])
