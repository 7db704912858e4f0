"""cachewise.W011: counters used while "cachewise" is not in ``INSTALLED_APPS``.

Counters work without the app (by design, for ``apply`` functions that write outside Django's
database), but ``Counter.flush`` then has no batch table, so a flusher killed mid-batch loses that
batch. The app's ``ready()`` never runs when it is missing, so importing
:mod:`cachewise.counters.counter` registers this check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

__all__ = ["check_counters_need_the_app"]


@register(Tags.models)
def check_counters_need_the_app(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W011: ``Counter`` is imported, the app that records its batches is not installed."""
    if apps.is_installed("cachewise"):
        return []
    return [
        CheckWarning(
            "cachewise.Counter is used but 'cachewise' is not in INSTALLED_APPS: Counter.flush "
            "cannot record applied batches, so it is not crash-safe (a flusher killed between "
            "draining a batch and applying it loses that batch).",
            hint="Add 'cachewise' to INSTALLED_APPS and run `manage.py migrate cachewise`; if "
            "your apply functions write outside Django's database, silence cachewise.W011.",
            obj="INSTALLED_APPS",
            id="cachewise.W011",
        )
    ]
