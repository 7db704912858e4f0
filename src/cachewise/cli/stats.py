"""``manage.py cachewise stats``: hit rate per namespace, Redis health and alerts, every worker.

Exit status 1 (``CommandError``) when the Redis of any reported alias is unreachable, so scripts and
health checks can rely on it; alerts such as a low hit rate are shown but do not fail the command.
``--watch N`` redraws every N seconds (``--iterations`` bounds it, for scripts and tests);
``--json`` prints one JSON document per refresh.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cachewise.cli.output import is_terminal
from cachewise.monitoring.report import build_report

help = "Show cache hit rates per namespace, Redis memory, evictions, latency and alerts."

_CLEAR = "\x1b[2J\x1b[H"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--alias`` (repeatable; default every cache), ``--json``, ``--watch N``, ``--iterations``."""
    parser.add_argument(
        "--alias", action="append", dest="aliases", help="cache alias (repeatable; default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--watch", type=float, metavar="N", help="refresh every N seconds")
    parser.add_argument("--iterations", type=int, metavar="K", help="with --watch: stop after K refreshes")
    parser.add_argument("--pings", type=int, default=20, help="PINGs of the latency probe (default 20)")


def _aliases(options: dict[str, Any]) -> list[str]:
    aliases: list[str] = options.get("aliases") or list(settings.CACHES)
    unknown = [alias for alias in aliases if alias not in settings.CACHES]
    if unknown:
        raise CommandError(f"unknown cache alias {unknown[0]!r}: CACHES has {', '.join(settings.CACHES)}")
    return aliases


def _show(command: BaseCommand, options: dict[str, Any], aliases: list[str], clear: bool) -> bool:
    reports = [build_report(alias, pings=options.get("pings") or 20) for alias in aliases]
    ok = all(report.ok for report in reports)
    if options.get("json"):
        document = {"ok": ok, "aliases": [report.as_dict() for report in reports]}
        command.stdout.write(json.dumps(document, sort_keys=True))
    else:
        from cachewise.monitoring.console import render_reports, to_text  # noqa: PLC0415 - rich: the cli extra

        text = to_text(render_reports(reports), color=is_terminal(command))
        command.stdout.write((_CLEAR if clear else "") + text, ending="")
    return ok


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Print the report(s); raise ``CommandError`` (exit 1) if a Redis was unreachable."""
    aliases = _aliases(options)
    watch = options.get("watch")
    iterations = options.get("iterations")
    clear = bool(watch) and not options.get("json") and is_terminal(command)
    done = 0
    while True:
        ok = _show(command, options, aliases, clear)
        done += 1
        if not watch or (iterations is not None and done >= iterations):
            break
        time.sleep(watch)
    if not ok:
        raise CommandError("Redis unreachable for at least one cache alias (see 'Redis' above)")
