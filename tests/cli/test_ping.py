"""``manage.py cachewise ping``: a real round trip, and a useful failure for each way it goes wrong."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.cli import load_subcommands
from cachewise.embedded import EmbeddedRedis, free_port
from cachewise.exceptions import ConfigurationError


def ping(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command("cachewise", "ping", *args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def password_redis() -> Iterator[EmbeddedRedis]:
    """A server that wants the password "s3cret"."""
    with EmbeddedRedis(extra_args=["--requirepass", "s3cret"]) as server:
        yield server


def test_ping_reports_each_step_with_its_latency() -> None:
    output = ping()
    assert "cachewise ping default: OK" in output
    assert "PING" in output
    assert output.count(" ms") == 3
    assert "\x1b[" not in output  # plain text when not writing to a terminal


def test_ping_other_alias() -> None:
    assert "cachewise ping sessions: OK" in ping("--alias", "sessions")


def test_ping_draws_a_table_on_a_terminal() -> None:
    output = ping(force_color=True)
    assert "\x1b[" in output
    assert "┃" in output or "│" in output


def test_unknown_alias_lists_the_configured_ones() -> None:
    with pytest.raises(CommandError, match=r"no cache alias 'nope'.*default, sessions"):
        ping("--alias", "nope")


def test_unreachable_server_fails_fast_and_says_what_to_check() -> None:
    port = free_port()  # free a moment ago: nothing listens there
    with override_settings(CACHES=caches_from_url(f"redis://127.0.0.1:{port}/0", key_prefix="p")):
        started = time.monotonic()
        with pytest.raises(CommandError) as excinfo:
            ping("--timeout", "1")
    assert time.monotonic() - started < 5
    message = str(excinfo.value)
    assert f"could not connect to 127.0.0.1:{port}" in message
    assert "check that Redis is running" in message


@pytest.mark.parametrize("password", [None, "wrong"], ids=["no-password", "wrong-password"])
def test_wrong_password_says_to_check_the_password(
    password_redis: EmbeddedRedis, password: str | None
) -> None:
    auth = f":{password}@" if password else ""
    url = f"redis://{auth}127.0.0.1:{password_redis.port}/0"
    with (
        override_settings(CACHES=caches_from_url(url, key_prefix="p")),
        pytest.raises(CommandError) as excinfo,
    ):
        ping()
    message = str(excinfo.value)
    assert "refused the credentials: check the password" in message
    assert "wrong" not in message


def test_right_password_pings_and_never_shows_it(password_redis: EmbeddedRedis) -> None:
    url = f"redis://:s3cret@127.0.0.1:{password_redis.port}/0"
    with override_settings(CACHES=caches_from_url(url, key_prefix="p")):
        output = ping()
    assert "OK" in output
    assert "s3cret" not in output
    assert f"redis://:***@127.0.0.1:{password_redis.port}/0" in output


def test_database_beyond_the_server_says_which_database(disposable_redis: EmbeddedRedis) -> None:
    url = disposable_redis.url_for(disposable_redis.databases)  # one past the last database
    with (
        override_settings(CACHES=caches_from_url(url, key_prefix="p")),
        pytest.raises(CommandError) as excinfo,
    ):
        ping()
    assert f"database {disposable_redis.databases} does not exist on this server" in str(excinfo.value)


def test_cache_that_keeps_nothing_is_reported() -> None:
    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy), pytest.raises(CommandError, match="does not keep values"):
        ping()


def test_non_redis_cache_gets_the_round_trip_only() -> None:
    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ping"}}
    with override_settings(CACHES=locmem):
        output = ping()
    assert "OK" in output
    assert "LocMemCache" in output


def test_failure_exits_non_zero_from_the_command_line() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_cli",
        "REDIS_URL": f"redis://:s3cret@127.0.0.1:{free_port()}/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "cachewise", "ping", "--timeout", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert "CommandError: cache 'default' did not answer PING" in result.stderr
    assert "check that Redis is running" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def test_subcommands_are_named_after_their_module(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _module("tests.fake_cli.flush_counters", help="h", add_arguments=print, handle=print)
    monkeypatch.setitem(sys.modules, "tests.fake_cli.flush_counters", module)
    assert list(load_subcommands(["tests.fake_cli.flush_counters", "cachewise.cli.ping"])) == [
        "flush-counters",
        "ping",
    ]


def test_a_subcommand_module_missing_a_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tests.fake_cli.broken", _module("tests.fake_cli.broken", help="h"))
    with pytest.raises(ConfigurationError, match="does not define add_arguments, handle"):
        load_subcommands(["tests.fake_cli.broken"])
