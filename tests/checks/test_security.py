"""The security opt-outs are reported by ``check --deploy`` (cachewise.W020-W024)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Tags, run_checks
from django.test import override_settings

from cachewise.checks import security as checks_security  # noqa: F401 - registers the checks (apps.ready does too)

OURS = "cachewise.backends.redis.RedisCache"


def messages(check_id: str, *, deploy: bool = True) -> list[Any]:
    found = run_checks(tags=[Tags.caches, Tags.security], include_deployment_checks=deploy)
    return [message for message in found if message.id == check_id]


def entry(**options: Any) -> dict[str, Any]:
    return {"BACKEND": OURS, "LOCATION": "redis://127.0.0.1:6399/0", "KEY_PREFIX": "p", "OPTIONS": options}


def test_w020_signing_turned_off() -> None:
    with override_settings(CACHES={"default": entry(sign=False)}):
        (found,) = messages("cachewise.W020")
        assert "run code" in found.msg
        assert found.obj == "default"
    with override_settings(CACHES={"default": entry(sign=False, serializer="json")}):
        (found,) = messages("cachewise.W020")
        assert "run code" not in found.msg
        assert messages("cachewise.W020", deploy=False) == []


@pytest.mark.parametrize("options", [{}, {"sign": True}, {"signing_key": ["new", "old"]}])
def test_w020_silent_while_values_are_signed(options: dict[str, Any]) -> None:
    with override_settings(CACHES={"default": entry(**options)}):
        assert messages("cachewise.W020") == []


def test_w021_a_migration_window_is_open() -> None:
    with override_settings(CACHES={"default": entry(legacy_reads="django-redis")}):
        (found,) = messages("cachewise.W021")
        assert "pickle" in found.msg
    with override_settings(CACHES={"default": entry(serializer="json", legacy_reads={"serializer": "json"})}):
        (found,) = messages("cachewise.W021")
        assert "pickle" not in found.msg
    with override_settings(CACHES={"default": entry()}):
        assert messages("cachewise.W021") == []


def test_w022_readable_keys_in_production() -> None:
    with override_settings(CACHEWISE_READABLE_KEYS=True):
        (found,) = messages("cachewise.W022")
        assert "key names" in found.msg
        assert messages("cachewise.W022", deploy=False) == []
    assert messages("cachewise.W022") == []


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"legacy_reads": "bogus"}, "legacy_reads"),
        ({"serializer": "json", "legacy_reads": "django"}, "never unpickles"),
        ({"sign": "yes"}, "expected True"),
        ({"signing_key": "k", "sign": False}, "remove one of them"),
    ],
)
def test_unworkable_signing_options_are_reported_at_start_up_by_e004(
    options: dict[str, Any], says: str
) -> None:
    with override_settings(CACHES={"default": entry(**options)}):
        found = [m for m in run_checks() if m.id == "cachewise.E004"]
    assert len(found) == 1
    assert says in found[0].msg
