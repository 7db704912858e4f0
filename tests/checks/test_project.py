"""Project setup checks (cachewise.checks.project): each id fires with the mistake, stays silent without.

Checks run through ``run_checks`` or ``manage.py check`` in a subprocess (what a user runs), so
each test also proves registration. The build-step tests run Django commands with ``REDIS_URL``
unset, as a Docker build or CI job would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.checks import Error, Tags, Warning, run_checks
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.counters.app_check import check_counters_need_the_app
from cachewise.embedded import EmbeddedRedis
from cachewise.monitoring.report import build_report
from cachewise.orm.app_check import check_orm_needs_the_app

ROOT = Path(__file__).resolve().parents[2]
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
CACHED_DB_SESSIONS = "django.contrib.sessions.backends.cached_db"


def ids(*, deploy: bool = False, **kwargs: Any) -> list[str]:
    return sorted(str(message.id) for message in run_checks(include_deployment_checks=deploy, **kwargs))


def only(check_id: str, *, deploy: bool = False, **kwargs: Any) -> list[Any]:
    found = run_checks(include_deployment_checks=deploy, **kwargs)
    return [message for message in found if message.id == check_id]


def django_command(tmp_path: Path, settings: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin <args>`` in a fresh process with ``REDIS_URL`` unset, run in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        CACHEWISE_TEST_STATIC_ROOT=str(tmp_path / "static"),
    )
    command = [sys.executable, "-m", "django", *args]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )


# --------------------------------------------------------------------------- settings without REDIS_URL


def test_build_steps_run_without_redis_url(tmp_path: Path) -> None:
    collect = django_command(tmp_path, "tests.settings_env", "collectstatic", "--noinput")
    assert collect.returncode == 0, collect.stderr
    assert "static files copied" in collect.stdout
    migrations = django_command(
        tmp_path, "tests.settings_env", "makemigrations", "cachewise", "--check", "--dry-run"
    )
    assert migrations.returncode == 0, migrations.stderr
    check = django_command(tmp_path, "tests.settings_env", "check")
    assert check.returncode == 0, check.stderr


def test_check_deploy_reports_a_missing_redis_url_as_an_error(tmp_path: Path) -> None:
    result = django_command(tmp_path, "tests.settings_env", "check", "--deploy")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(cachewise.E003) CACHES['default'] has no Redis URL: environment variable REDIS_URL" in (
        result.stderr
    )
    assert "(cachewise.E003) CACHES['sessions']" in result.stderr


def test_the_pytest_plugin_starts_its_private_redis_when_settings_have_no_url(tmp_path: Path) -> None:
    (tmp_path / "test_plugin.py").write_text(
        "from django.core.cache import caches\n\n"
        "def test_round_trip(cachewise_caches):\n"
        "    caches['default'].set('k', 1)\n"
        "    caches['sessions'].set('s', 2)\n"
        "    assert (caches['default'].get('k'), caches['sessions'].get('s')) == (1, 2)\n"
    )
    result = django_command(tmp_path, "tests.settings_env", "help")  # settings import at all
    assert result.returncode == 0, result.stderr
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings_env", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'src'}")
    command = [sys.executable, "-m", "pytest", "test_plugin.py", "-q", "-p", "no:cacheprovider"]
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout


def test_e003_silent_when_every_cache_has_a_url() -> None:
    assert "cachewise.E003" not in ids(deploy=True, tags=[Tags.caches])


def test_e003_is_deploy_only() -> None:
    placeholder = {"BACKEND": "cachewise.backends.unconfigured.UnconfiguredCache", "LOCATION": "REDIS_URL"}
    with override_settings(CACHES={"default": placeholder}):
        assert "cachewise.E003" not in ids(tags=[Tags.caches])
        [error] = only("cachewise.E003", deploy=True, tags=[Tags.caches])
    assert isinstance(error, Error)


# --------------------------------------------------------------------------- E002 / E004: no traceback


def _ours(**options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6399/0",
        "KEY_PREFIX": "p",
        "OPTIONS": options,
    }


def test_e002_unknown_option_is_a_check_message_not_a_traceback() -> None:
    with override_settings(CACHES={"default": _ours(socket_timout=0.5)}):
        with pytest.raises(SystemCheckError) as excinfo:
            call_command("check")
        found = only("cachewise.E002", tags=[Tags.caches])
    assert "(cachewise.E002) CACHES['default']['OPTIONS'] has the unknown key 'socket_timout'" in str(
        excinfo.value
    )
    assert "Did you mean 'socket_timeout'?" in str(excinfo.value)
    assert len(found) == 1
    assert "cachewise.E004" not in ids(tags=[Tags.caches])


def test_e004_bad_option_value_is_a_check_message_and_the_first_call_raises_it() -> None:
    from django.core.cache import caches

    with override_settings(CACHES={"default": _ours(serializer="yaml")}):
        [error] = only("cachewise.E004", tags=[Tags.caches])
        with pytest.raises(Exception, match="serializer") as excinfo:
            caches["default"].get("key")
    assert "serializer" in error.msg
    assert type(excinfo.value).__name__ == "ConfigurationError"


def test_e004_silent_for_valid_options() -> None:
    with override_settings(CACHES={"default": _ours(serializer="json", socket_timeout=1.0)}):
        assert not {"cachewise.E002", "cachewise.E004"} & set(ids(tags=[Tags.caches]))


# --------------------------------------------------------------------------- E005


def test_e005_orm_caching_without_the_app_installed(tmp_path: Path) -> None:
    result = django_command(tmp_path, "tests.settings_no_app", "check")
    assert result.returncode == 1
    assert "(cachewise.E005)" in result.stderr
    assert "testapp.Article (CachedRows)" in result.stderr
    assert "'cachewise' is not in INSTALLED_APPS" in result.stderr
    assert "(cachewise.W011)" not in result.stderr  # nothing imported cachewise.counters.counter


def test_w011_counters_without_the_app_installed(tmp_path: Path) -> None:
    (tmp_path / "counters_no_app.py").write_text(
        "from tests.settings_no_app import *  # noqa: F403\nimport cachewise.counters.counter  # noqa: F401\n"
    )
    env_settings = "counters_no_app"
    result = django_command(tmp_path, env_settings, "check", "--pythonpath", str(tmp_path))
    assert "(cachewise.W011) cachewise.Counter is used but 'cachewise' is not in INSTALLED_APPS" in (
        result.stderr
    )


def test_e005_w011_silent_with_the_app_installed() -> None:
    import tests.counters_app  # noqa: F401  (imports cachewise.counters.counter)

    registered: list[object] = list(registry.get_checks())
    assert check_orm_needs_the_app in registered  # tests.testapp imports cachewise.orm
    assert check_counters_need_the_app in registered
    assert not {"cachewise.E005", "cachewise.W011"} & set(ids())


# --------------------------------------------------------------------------- E006


@pytest.mark.parametrize(
    ("engine", "backend"),
    [(CACHE_SESSIONS, LOCMEM), (CACHED_DB_SESSIONS, LOCMEM), (CACHE_SESSIONS, DUMMY)],
)
def test_e006_sessions_on_a_per_process_cache(engine: str, backend: str, redis_server: Any) -> None:
    caches = caches_from_url(redis_server.url, key_prefix="p")
    caches["sessions"] = {"BACKEND": backend}
    with override_settings(CACHES=caches, SESSION_ENGINE=engine, SESSION_CACHE_ALIAS="sessions"):
        assert "cachewise.E006" not in ids(tags=[Tags.caches])
        [error] = only("cachewise.E006", deploy=True, tags=[Tags.caches])
    assert error.obj == "sessions"


@pytest.mark.parametrize(
    ("engine", "backend"),
    [(CACHE_SESSIONS, "redis"), (CACHED_DB_SESSIONS, DUMMY), ("django.contrib.sessions.backends.db", LOCMEM)],
)
def test_e006_silent_for_shared_session_storage(engine: str, backend: str, redis_server: Any) -> None:
    caches = caches_from_url(redis_server.url, key_prefix="p")
    if backend != "redis":
        caches["sessions"] = {"BACKEND": backend}
    with override_settings(CACHES=caches, SESSION_ENGINE=engine, SESSION_CACHE_ALIAS="sessions"):
        assert not only("cachewise.E006", deploy=True, tags=[Tags.caches])


# --------------------------------------------------------------------------- E007 (live)


def test_e007_sessions_on_a_database_the_server_does_not_have(disposable_redis: EmbeddedRedis) -> None:
    caches = caches_from_url(disposable_redis.url, key_prefix="p", sessions_db=16)
    with override_settings(CACHES=caches, SESSION_ENGINE=CACHE_SESSIONS, SESSION_CACHE_ALIAS="sessions"):
        [error] = only("cachewise.E007", deploy=True, tags=[Tags.caches])
        assert not only("cachewise.E007", tags=[Tags.caches])  # live: deploy only
    assert error.obj == "sessions"
    assert "database 16" in error.msg
    assert "nobody can log in" in error.msg


def test_e007_silent_for_existing_databases(disposable_redis: EmbeddedRedis) -> None:
    caches = caches_from_url(disposable_redis.url.rsplit("/", 1)[0] + "/14", key_prefix="p")
    with override_settings(CACHES=caches):
        assert not only("cachewise.E007", deploy=True, tags=[Tags.caches])


# --------------------------------------------------------------------------- W009


@pytest.mark.django_db(transaction=True)
def test_w009_counter_table_not_migrated() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE cachewise_counterbatch RENAME TO cachewise_counterbatch_away")
    try:
        assert "cachewise.W009" not in ids()  # without --database no connection is opened
        [warning] = only("cachewise.W009", databases=["default"])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE cachewise_counterbatch_away RENAME TO cachewise_counterbatch")
    assert isinstance(warning, Warning)
    assert "migrate cachewise" in (warning.hint or "")


@pytest.mark.django_db
def test_w009_silent_when_migrated() -> None:
    assert "cachewise.W009" not in ids(databases=["default"])


# --------------------------------------------------------------------------- W010


def test_w010_misspelt_setting_with_a_suggestion() -> None:
    with override_settings(CACHEWISE_METRICS_ENABLE=False):
        [warning] = only("cachewise.W010")
    assert "CACHEWISE_METRICS_ENABLE is not a cachewise setting" in warning.msg
    assert "Did you mean CACHEWISE_METRICS_ENABLED?" in warning.hint


def test_w010_silent_for_known_settings() -> None:
    with override_settings(CACHEWISE_METRICS_ENABLED=False, CACHEWISE_STORE="generic"):
        assert "cachewise.W010" not in ids()


# --------------------------------------------------------------------------- same severity as stats


def test_no_maxmemory_with_noeviction_is_a_warning_in_check_and_in_stats(
    disposable_redis: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(disposable_redis.url)
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")  # Redis's own defaults
    client.close()
    with override_settings(CACHES=caches_from_url(disposable_redis.url, key_prefix="p")):
        live = [m for m in run_checks(tags=[Tags.caches], include_deployment_checks=True) if m.obj]
        report = build_report("default", pings=2)
    memory = [m for m in live if m.id in {"cachewise.W006", "cachewise.W007"}]
    assert [m.id for m in memory] == ["cachewise.W006"]
    assert all(type(m) is Warning for m in memory)
    levels = {alert.code: alert.level for alert in report.alerts}
    # The memory alerts only: "latency" (a PING p99 above CACHEWISE_ALERT_LATENCY_MS) depends on how
    # busy the host is, and appeared once on a slow CI machine.
    memory_codes = {"maxmemory_unset", "eviction_policy", "memory", "evictions", "redis_down"}
    assert {code: level for code, level in levels.items() if code in memory_codes} == {
        "maxmemory_unset": "warning"
    }


def test_every_setting_in_conf_is_documented_in_configuration_md() -> None:
    from cachewise.checks.project import known_settings

    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page[page.index("## `CACHEWISE_*` settings") :]
    documented = set(re.findall(r"^\| `(CACHEWISE_[A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == known_settings()
    assert len(documented) >= 23
