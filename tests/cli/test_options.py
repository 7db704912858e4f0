"""``manage.py cachewise`` behaves like Django's commands: its options anywhere, full output in a
pipe, and no false success on a cache that lives only inside the command's own process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from cachewise.embedded import free_port
from cachewise.monitoring.metrics import record
from cachewise.testing import RedisServerInfo

ROOT = Path(__file__).resolve().parents[2]
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cli-local"}


def manage(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """``python -m django <args>`` with no DJANGO_SETTINGS_MODULE: settings come from ``--settings``."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env["REDIS_URL"] = redis_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------- Django's options


def test_django_options_after_the_subcommand_work(redis_server: RedisServerInfo) -> None:
    result = manage(
        "cachewise",
        "ping",
        "--settings=tests.settings_cli",
        "-v",
        "2",
        "--traceback",
        redis_url=redis_server.url,
    )
    assert result.returncode == 0, result.stderr
    assert "cachewise ping default: OK" in result.stdout


def test_traceback_after_the_subcommand_is_honoured() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    plain = manage("cachewise", "ping", "--settings=tests.settings_cli", "--timeout", "1", redis_url=url)
    traced = manage(
        "cachewise", "ping", "--settings=tests.settings_cli", "--timeout", "1", "--traceback", redis_url=url
    )
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert "did not answer PING" in plain.stderr
    assert traced.returncode == 1
    assert "Traceback (most recent call last)" in traced.stderr


def test_options_before_the_subcommand_still_work() -> None:
    out = io.StringIO()
    call_command("cachewise", "ping", verbosity=2, stdout=out)
    assert "OK" in out.getvalue()


# --------------------------------------------------------------------------- stats in a pipe


def test_stats_in_a_pipe_prints_full_namespace_names() -> None:
    long_name = "orm.shop.product_variant_inventory_snapshot"
    record("hit", "default", long_name, 3)
    record("miss", "default", long_name, 1)
    out = io.StringIO()
    call_command("cachewise", "stats", "--alias", "default", "--pings", "2", stdout=out)
    text = out.getvalue()
    assert long_name in text
    assert "…" not in text
    assert "\x1b[" not in text


# --------------------------------------------------------------------------- per-process caches


def test_invalidate_on_a_per_process_cache_says_so_and_fails() -> None:
    with override_settings(CACHES={"default": LOCMEM}):
        for args in (("--model", "testapp.Article"), ("--key", "home"), ("--namespace", "n", "--scope", "1")):
            with pytest.raises(CommandError, match="act only on this command's own process"):
                call_command("cachewise", "invalidate", *args, stdout=io.StringIO())


def test_invalidate_on_a_per_process_cache_exits_non_zero_from_the_command_line(
    redis_server: RedisServerInfo, tmp_path: Path
) -> None:
    settings = tmp_path / "locmem_settings.py"
    settings.write_text(
        "from tests.settings import *  # noqa: F403\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}\n"
    )
    result = manage(
        "cachewise",
        "invalidate",
        "--key",
        "home",
        "--settings=locmem_settings",
        f"--pythonpath={tmp_path}",
        redis_url=redis_server.url,
    )
    assert result.returncode == 1
    assert "LocMemCache, a cache inside each process" in result.stderr
    assert "Invalidated" not in result.stdout


@pytest.mark.django_db
def test_flush_counters_on_a_per_process_cache_says_so_and_fails() -> None:
    with (
        override_settings(CACHES={"default": LOCMEM}, CACHEWISE_COUNTERS=["tests.counters_app.page_views"]),
        pytest.raises(CommandError, match=r"flushing tests\.counters_app\.page_views would act only"),
    ):
        call_command("cachewise", "flush-counters", stdout=io.StringIO())


def test_commands_on_a_shared_cache_still_succeed() -> None:
    out = io.StringIO()
    call_command("cachewise", "invalidate", "--key", "home", stdout=out)
    assert "Invalidated" in out.getvalue()
