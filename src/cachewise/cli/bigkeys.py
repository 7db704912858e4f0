"""``manage.py cachewise bigkeys``: the largest keys under this cache's KEY_PREFIX.

A bounded ``SCAN MATCH <prefix>:*`` with ``MEMORY USAGE`` per key: it stops at ``--budget``
seconds or ``--max-keys`` keys and says whether the scan was complete. It never uses ``KEYS`` and
each step costs Redis ``--count`` keys of work, so it is safe on a production server.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError

from cachewise.cli.output import is_terminal
from cachewise.monitoring.health import big_keys, default_match
from cachewise.store.raw_client import redis_client_of

help = "List the largest keys of a cache (bounded SCAN + MEMORY USAGE, never KEYS)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--alias``, ``--top``, ``--budget``, ``--max-keys``, ``--count``, ``--match``, ``--json``."""
    parser.add_argument("--alias", default="default", help="cache alias (default: default)")
    parser.add_argument("--top", type=int, default=20, help="how many keys to list (default 20)")
    parser.add_argument("--budget", type=float, default=2.0, help="time budget in seconds (default 2)")
    parser.add_argument("--max-keys", type=int, default=100_000, help="stop after this many keys")
    parser.add_argument("--count", type=int, default=200, help="SCAN COUNT per step (default 200)")
    parser.add_argument("--match", help="SCAN MATCH pattern (default: the alias's KEY_PREFIX + ':*')")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Scan and print; raise ``CommandError`` (exit 1) when Redis is unreachable."""
    from cachewise.monitoring.console import render_bigkeys, to_text  # noqa: PLC0415 - rich: the cli extra

    alias = options.get("alias") or "default"
    if alias not in settings.CACHES:
        raise CommandError(f"unknown cache alias {alias!r}: CACHES has {', '.join(settings.CACHES)}")
    client = redis_client_of(caches[alias])
    if client is None:
        raise CommandError(f"cache {alias!r} is not a Redis cache: bigkeys needs Redis")
    match = options.get("match") or default_match(alias)
    try:
        report = big_keys(
            client,
            match,
            top=options.get("top") or 20,
            time_budget=options.get("budget") or 2.0,
            max_keys=options.get("max_keys") or 100_000,
            count=options.get("count") or 200,
        )
    except Exception as exc:  # redis-py connection errors, timeouts
        raise CommandError(f"Redis unreachable for cache {alias!r}: {type(exc).__name__}: {exc}") from exc
    if options.get("json"):
        command.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
    else:
        command.stdout.write(to_text(render_bigkeys(report), color=is_terminal(command)), ending="")
