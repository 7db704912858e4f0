"""Harness for django-redis 7.0's own test suite, vendored from its sdist (see README.md).

Adapted from django-redis' ``tests/conftest.py`` (BSD licence, LICENSE beside this file). What
differs from upstream, identically for the django-redis and the cachewise run:

* one settings module per process, named by ``DJREDIS_SUITE_SETTINGS`` (Django is configured once
  per process; upstream's xdist scheduling is dropped);
* the Redis is a private ``redis-server`` (TCP on a free loopback port, and a unix socket)
  started here: ``127.0.0.1:6379`` and ``/tmp/redis.sock`` in the settings are rewritten to it;
* ``DJREDIS_SUITE_BACKEND=django_redis`` puts django-redis' own BACKEND back (the baseline run);
  otherwise the settings' BACKEND (cachewise) is used;
* ``mocker``: a small stand-in for pytest-mock's fixture (not a dependency of this project).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

HERE = Path(__file__).absolute().parent
sys.path.insert(0, str(HERE))

# Found through sys.path above, as upstream does (mypy does not run that line).
from settings_wrapper import SettingsWrapper  # type: ignore[import-not-found]  # noqa: E402

SETTINGS = os.environ.get("DJREDIS_SUITE_SETTINGS", "sqlite")
BASELINE = os.environ.get("DJREDIS_SUITE_BACKEND") == "django_redis"
_SERVERS: list[Any] = []


def _point_at(caches: dict[str, Any], port: int, socket_path: str) -> None:
    def fix(url: str) -> str:
        return url.replace("127.0.0.1:6379", f"127.0.0.1:{port}").replace("/tmp/redis.sock", socket_path)

    for entry in caches.values():
        if BASELINE:
            entry["BACKEND"] = "django_redis.cache.RedisCache"
        location = entry["LOCATION"]
        entry["LOCATION"] = [fix(url) for url in location] if isinstance(location, list) else fix(location)


def pytest_configure(config: pytest.Config) -> None:
    from cachewise.embedded import EmbeddedRedis

    socket_path = os.path.join(tempfile.mkdtemp(prefix="djredis-suite-"), "redis.sock")
    server = EmbeddedRedis(extra_args=["--unixsocket", socket_path, "--unixsocketperm", "700"]).start()
    _SERVERS.append(server)
    module = importlib.import_module(f"settings.{SETTINGS}")
    _point_at(module.CACHES, server.port, socket_path)
    os.environ["DJANGO_SETTINGS_MODULE"] = f"settings.{SETTINGS}"


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in _SERVERS:
        server.stop()


@pytest.fixture
def settings() -> Iterator[SettingsWrapper]:
    """A Django settings object which restores changes after the testrun"""
    wrapper = SettingsWrapper()
    yield wrapper
    wrapper.finalize()


@pytest.fixture
def cache(cache_settings: str) -> Iterator[Any]:
    from django import setup

    setup()

    from django.core.cache import cache as default_cache

    yield default_cache
    default_cache.clear()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cache" in metafunc.fixturenames or "session" in metafunc.fixturenames:
        metafunc.parametrize("cache_settings", [SETTINGS])


class _Patch:
    def __init__(self, patches: list[Any]) -> None:
        self._patches = patches

    def _start(self, patcher: Any) -> Any:
        self._patches.append(patcher)
        return patcher.start()

    def __call__(self, target: str, *args: Any, **kwargs: Any) -> Any:
        return self._start(mock.patch(target, *args, **kwargs))

    def object(self, target: Any, attribute: str, *args: Any, **kwargs: Any) -> Any:
        return self._start(mock.patch.object(target, attribute, *args, **kwargs))


class _Mocker:
    def __init__(self) -> None:
        self._patches: list[Any] = []
        self.patch = _Patch(self._patches)
        self.Mock, self.MagicMock = mock.Mock, mock.MagicMock

    def spy(self, obj: Any, name: str) -> Any:
        return self.patch.object(obj, name, wraps=getattr(obj, name))

    def stopall(self) -> None:
        for patcher in reversed(self._patches):
            patcher.stop()
        self._patches.clear()


@pytest.fixture
def mocker() -> Iterator[_Mocker]:
    helper = _Mocker()
    yield helper
    helper.stopall()
