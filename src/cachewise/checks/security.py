"""System checks of the security defaults (cachewise.W020-W024), reported by ``check --deploy``.

Each one names an explicit opt-out from a safe default: it is allowed (a test rig, a migration
window, a debugging session) but should never reach production unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from .redis_probe import is_cachewise_backend

__all__ = ["check_legacy_reads", "check_readable_keys", "check_unsigned_values"]

Messages = list[CheckMessage]


def _cachewise_options() -> list[tuple[str, dict[str, Any]]]:
    caches: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {}) or {}
    return [
        (alias, dict(entry.get("OPTIONS") or {}))
        for alias, entry in caches.items()
        if is_cachewise_backend(entry.get("BACKEND"))
    ]


@register(Tags.caches, Tags.security, deploy=True)
def check_unsigned_values(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W020: ``OPTIONS['sign']=False``: values are read without authentication."""
    messages: Messages = []
    for alias, options in _cachewise_options():
        if options.get("sign", True) is not False:
            continue
        pickle = options.get("serializer", "pickle") == "pickle"
        risk = (
            "anyone who can write to this Redis can run code in every worker that reads it (pickle)"
            if pickle
            else "anyone who can write to this Redis can make it return any value they choose"
        )
        messages.append(
            CheckWarning(
                f"CACHES[{alias!r}]['OPTIONS']['sign'] is False: cached values are not authenticated, "
                f"so {risk}.",
                hint="Remove 'sign': False (values are then signed with a key derived from SECRET_KEY), "
                "unless only trusted clients can reach this Redis; see docs/backend.md, 'Threat model'.",
                obj=alias,
                id="cachewise.W020",
            )
        )
    return messages


@register(Tags.caches, Tags.security, deploy=True)
def check_legacy_reads(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W021: ``OPTIONS['legacy_reads']`` is set: unauthenticated values of another writer are read."""
    return [
        CheckWarning(
            f"CACHES[{alias!r}]['OPTIONS']['legacy_reads'] is {options['legacy_reads']!r}: values without "
            "a MAC are read, so anyone who can write to this Redis can choose what it returns"
            + (" and run code through pickle." if _unpickles(options) else "."),
            hint="Keep the migration window short: remove legacy_reads once the old entries have been "
            "rewritten or have expired (at most their longest TIMEOUT); see docs/backend.md.",
            obj=alias,
            id="cachewise.W021",
        )
        for alias, options in _cachewise_options()
        if options.get("legacy_reads") not in (None, False)
    ]


@register(Tags.security, deploy=True)
def check_readable_keys(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> Messages:
    """W022: ``CACHEWISE_READABLE_KEYS`` is on: argument values appear in key names."""
    if not getattr(settings, "CACHEWISE_READABLE_KEYS", False):
        return []
    return [
        CheckWarning(
            "CACHEWISE_READABLE_KEYS is True: the arguments of @cached calls and the vary-on values of "
            "{% cache %} (e-mail addresses, search queries) appear in clear in Redis key names, SCAN and "
            "MONITOR output and `cachewise bigkeys`.",
            hint="Remove the setting outside debugging; see docs/low-level-api.md, 'Key names'.",
            id="cachewise.W022",
        )
    ]


def _unpickles(options: dict[str, Any]) -> bool:
    legacy = options.get("legacy_reads")
    if isinstance(legacy, dict):
        return "pickle" in str(legacy.get("serializer", "pickle")).lower()
    return bool(options.get("serializer", "pickle") == "pickle")
