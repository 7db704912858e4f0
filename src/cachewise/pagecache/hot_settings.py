"""Page-cache settings read on every hit, cached until Django says a setting changed.

Reading a ``CACHEWISE_*`` setting the project did not set costs an ``AttributeError`` raised
inside ``LazySettings`` (5-7 us each, measured on the shared CI machines), and a hit reads three
(credential cookies and headers, query parameters): together more than building the page key.
Values are therefore kept here and dropped on ``setting_changed``, which ``override_settings``
and pytest-django's ``settings`` fixture send, so tests that change them keep working. Projects do
not change settings at run time.
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed

from cachewise.conf import conf

__all__ = ["hot_setting"]

_values: dict[str, Any] = {}


def hot_setting(name: str) -> Any:
    """``conf.<name>``, read once until a setting changes."""
    try:
        return _values[name]
    except KeyError:
        value = _values[name] = getattr(conf, name)
        return value


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CACHEWISE_") or setting == "DEBUG":  # DEBUG_HEADERS follows DEBUG
        _values.clear()


setting_changed.connect(_forget, dispatch_uid="cachewise.pagecache.hot_settings")
