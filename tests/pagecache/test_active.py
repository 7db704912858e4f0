"""The page key's language and time zone (cachewise.pagecache.active) are always Django's.

The fast path answers the defaults without asking asgiref when nothing was set in the current
context; every other state must fall through to Django's own functions. Each test compares the
two in one state, in a thread of its own where it matters (a fresh thread's context is empty,
as a Gunicorn worker's is).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.test import Client, override_settings
from django.utils import timezone, translation
from django.utils.translation import trans_real

from cachewise.pagecache import active

T = TypeVar("T")


def _in_fresh_thread(function: Callable[[], T]) -> T:
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return results[0]


def _both() -> tuple[tuple[Any, str], tuple[Any, str]]:
    """(cachewise's answer, Django's answer), each as (language, time zone name)."""
    ours = (active.language(), active.timezone_name())
    django = (translation.get_language(), timezone.get_current_timezone_name())
    return ours, django


def test_the_fast_path_is_taken_when_nothing_was_activated() -> None:
    # With the pinned asgiref the probe finds the Local's ContextVar; if an upgrade changes its
    # layout this fails, and the fallback (Django's functions, every request) is what runs.
    def probe() -> tuple[bool, bool, tuple[Any, ...]]:
        return (
            active._nothing_set(trans_real._active, active._language_probe),  # type: ignore[attr-defined]
            active._nothing_set(timezone._active, active._timezone_probe),  # type: ignore[attr-defined]
            _both(),
        )

    language_fast, timezone_fast, (ours, django) = _in_fresh_thread(probe)
    assert (language_fast, timezone_fast) == (True, True)
    assert ours == django


@pytest.mark.parametrize(
    "state",
    ["activated", "overridden", "deactivated", "deactivated-all", "override-ended"],
)
def test_every_activation_state_answers_as_django(state: str) -> None:
    def run() -> tuple[Any, Any]:
        if state == "activated":
            translation.activate("fr")
            timezone.activate("Europe/Paris")
        elif state == "deactivated":
            translation.activate("fr")
            translation.deactivate()
            timezone.activate("Europe/Paris")
            timezone.deactivate()
        elif state == "deactivated-all":
            translation.deactivate_all()  # get_language() is then None
        elif state == "override-ended":
            with translation.override("de"), timezone.override("Asia/Tokyo"):
                pass
        if state == "overridden":
            with translation.override("de"), timezone.override("Asia/Tokyo"):
                return _both()
        return _both()

    ours, django = _in_fresh_thread(run)
    assert ours == django
    expected = {
        "activated": ("fr", "Europe/Paris"),
        "overridden": ("de", "Asia/Tokyo"),
        "deactivated-all": (None, django[1]),
    }
    if state in expected:
        assert ours == expected[state]


def test_an_activation_in_another_thread_is_not_seen_and_its_own_is() -> None:
    with translation.override("fr"), timezone.override("Europe/Paris"):
        assert _both()[0] == ("fr", "Europe/Paris")
        ours, django = _in_fresh_thread(_both)
        assert ours == django
        assert ours != ("fr", "Europe/Paris")


def test_tasks_see_their_own_activation() -> None:
    async def in_task(language: str | None) -> tuple[Any, Any]:
        if language is not None:
            translation.activate(language)
        await asyncio.sleep(0)
        return _both()

    async def main() -> list[tuple[Any, Any]]:
        return list(await asyncio.gather(in_task("fr"), in_task(None), in_task("de")))

    answers = _in_fresh_thread(lambda: asyncio.run(main()))
    assert [ours for ours, _ in answers] == [django for _, django in answers]
    assert [ours[0] for ours, _ in answers] == ["fr", answers[1][1][0], "de"]


def test_a_language_code_changed_by_override_settings_is_followed() -> None:
    # Django replaces translation's Local on this change: the probe must find the new one.
    def run() -> tuple[Any, ...]:
        first = _both()
        with override_settings(LANGUAGE_CODE="fr", TIME_ZONE="Asia/Tokyo"):
            changed = _both()
        return first, changed, _both()

    first, changed, after = _in_fresh_thread(run)
    for ours, django in (first, changed, after):
        assert ours == django
    assert changed[0] == ("fr", "Asia/Tokyo")
    assert after[0] == first[0]


def test_a_local_of_another_layout_falls_back_to_django(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Local that keeps its values some other way (here a plain threading.local holding a
    # translation): the probe cannot tell, so Django's function answers, never the default.
    local = threading.local()
    monkeypatch.setattr(trans_real, "_active", local)
    local.value = trans_real.translation("fr")
    assert active.language() == translation.get_language() == "fr"


@pytest.mark.urls("tests.urls_views")
def test_pages_are_kept_apart_by_an_activation_in_the_serving_thread(settings: Any) -> None:
    settings.CACHEWISE_DEBUG_HEADERS = True

    def get(language: str | None, zone: str | None) -> tuple[dict[str, Any], str]:
        def run() -> tuple[dict[str, Any], str]:
            if language is not None:
                translation.activate(language)
            if zone is not None:
                timezone.activate(zone)
            response = Client().get("/echo/")
            return json.loads(response.content), response["X-Cachewise"]

        return _in_fresh_thread(run)

    default, default_state = get(None, None)
    french, french_state = get("fr", None)
    tokyo, tokyo_state = get(None, "Asia/Tokyo")
    again, again_state = get(None, None)
    assert (default_state, french_state, tokyo_state, again_state) == ("miss", "miss", "miss", "hit")
    assert french["state"]["language"] == "fr"
    assert tokyo["state"]["timezone"] == "Asia/Tokyo"
    assert again == default
