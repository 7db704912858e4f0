"""The active language and time zone, as a page key needs them, cheaply when none was activated.

Django keeps both in ``asgiref`` Locals. Reading one that holds nothing in the current thread or
task (every request of a project without ``LocaleMiddleware`` or a time-zone middleware) makes
asgiref raise and format an ``AttributeError`` that Django then catches: 3-5 us and ~30k
instructions each, for a value that is then the default (``LANGUAGE_CODE``, the default time
zone). On a near-cached page hit those two reads were a third of the page cache's own work.

A non-thread-critical asgiref ``Local`` keeps everything set on it in one ``ContextVar``. While
that variable holds nothing in the current context, nothing was activated there, and Django's
functions would return the defaults: :func:`language` and :func:`timezone_name` return them
without asking the Local. In every other case (something activated, overridden or deactivated
in this context, data inherited from another thread, a Local of another layout) they call
Django's functions, so they always give what Django gives (``tests/pagecache/test_active.py``
checks the two agree in each of those states).
"""

from __future__ import annotations

import contextvars
from typing import Any

from django.utils import timezone, translation
from django.utils.translation import trans_real

from cachewise.conf import django_setting

__all__ = ["language", "timezone_name"]

#: (a Local, its ContextVar or None when its layout is not the one known), per Local read.
_Probe = tuple[object, "contextvars.ContextVar[Any] | None"]
_language_probe: list[_Probe] = [(None, None)]
_timezone_probe: list[_Probe] = [(None, None)]


def _variable_of(local: object) -> contextvars.ContextVar[Any] | None:
    """The ContextVar holding everything set on ``local``, or None if it is kept another way."""
    storage = getattr(local, "__dict__", {}).get("_storage")
    variable = getattr(storage, "__dict__", {}).get("_data")
    return variable if isinstance(variable, contextvars.ContextVar) else None


def _nothing_set(local: object, probe: list[_Probe]) -> bool:
    """Whether nothing was ever set on ``local`` in the current context (False when unsure)."""
    known, variable = probe[0]
    if known is not local:
        # Found again when Django replaces the Local (override_settings(LANGUAGE_CODE=...) does).
        variable = _variable_of(local)
        probe[0] = (local, variable)
    return variable is not None and variable.get(None) is None


def language() -> str | None:
    """``translation.get_language()``."""
    if django_setting("USE_I18N") and _nothing_set(trans_real._active, _language_probe):  # type: ignore[attr-defined]
        return django_setting("LANGUAGE_CODE")  # type: ignore[no-any-return]
    return translation.get_language()


def timezone_name() -> str:
    """``timezone.get_current_timezone_name()``."""
    if _nothing_set(timezone._active, _timezone_probe):  # type: ignore[attr-defined]
        return timezone.get_default_timezone_name()
    return timezone.get_current_timezone_name()
