"""``cachewise.conf``: a setting read is remembered, and every way of changing one is seen."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from cachewise.conf import conf, django_setting, hot_setting


def test_override_settings_and_the_settings_fixture_are_seen(settings: Any) -> None:
    before = conf.ORM_COUNTER_TTL
    with override_settings(CACHEWISE_ORM_COUNTER_TTL=11):
        assert conf.ORM_COUNTER_TTL == 11
        with override_settings(CACHEWISE_ORM_COUNTER_TTL=12):
            assert conf.ORM_COUNTER_TTL == 12
        assert conf.ORM_COUNTER_TTL == 11
    assert before == conf.ORM_COUNTER_TTL
    settings.CACHEWISE_ORM_COUNTER_TTL = 13
    assert conf.ORM_COUNTER_TTL == 13


def test_a_setting_deleted_inside_an_override_is_seen(settings: Any) -> None:
    settings.CACHEWISE_ORM_COUNTER_TTL = 14
    assert conf.ORM_COUNTER_TTL == 14
    del settings.CACHEWISE_ORM_COUNTER_TTL  # sends no setting_changed; swaps the settings object
    assert conf.ORM_COUNTER_TTL == 86400  # the documented default


def test_hot_settings_follow_every_change_as_the_properties_do(settings: Any) -> None:
    settings.DEBUG = False
    assert hot_setting("DEBUG_HEADERS") is False
    settings.DEBUG = True  # DEBUG_HEADERS defaults to DEBUG
    assert hot_setting("DEBUG_HEADERS") is True
    settings.CACHEWISE_DEBUG_HEADERS = False
    assert hot_setting("DEBUG_HEADERS") is False
    del settings.CACHEWISE_DEBUG_HEADERS  # no setting_changed; the settings object is swapped
    assert hot_setting("DEBUG_HEADERS") is True


def test_django_settings_read_per_request_follow_every_change(settings: Any) -> None:
    """``django_setting`` (a page hit reads USE_I18N, USE_TZ, SESSION_COOKIE_NAME) is remembered,
    and forgotten as soon as the setting changes."""
    settings.SESSION_COOKIE_NAME = "first"
    assert django_setting("SESSION_COOKIE_NAME") == "first"
    settings.SESSION_COOKIE_NAME = "second"
    assert django_setting("SESSION_COOKIE_NAME") == "second"
    use_tz = settings.USE_TZ
    assert django_setting("USE_TZ") is use_tz
    with override_settings(USE_TZ=not use_tz):
        assert django_setting("USE_TZ") is (not use_tz)
    assert django_setting("USE_TZ") is use_tz
