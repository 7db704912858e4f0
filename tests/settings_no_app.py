"""The test settings without ``"cachewise"`` in INSTALLED_APPS, while tests.testapp's models use
CachedRows and CachewiseManager: the mistake cachewise.E005 reports."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "cachewise"]
