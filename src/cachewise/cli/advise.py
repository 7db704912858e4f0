"""``manage.py cachewise advise``: which routes are worth caching, from the traffic recorded.

Reads what ``AdvisorMiddleware`` recorded in every process (see docs/advisor.md) and prints the
routes ranked by the database time a cache would save per hour, each with a strategy, a TTL, the
expected hit rate and warnings. The first time a route is advised its prediction is kept; once
the advice is applied, later runs print what was measured next to it (``--reset`` starts over).
``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand

from cachewise.cli.output import print_table
from cachewise.monitoring.advisor import advice, store

help = "Rank the recorded routes by the database time a cache would save, with strategy and TTL."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--limit N``, ``--all``, ``--reset``."""
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--limit", type=int, default=20, help="routes to show (default 20)")
    parser.add_argument("--all", action="store_true", help="also list routes with nothing to advise")
    parser.add_argument(
        "--reset", action="store_true", help="forget everything recorded and predicted, everywhere"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _row(rank: int, item: Any) -> list[str]:
    return [
        str(rank),
        item.route,
        item.strategy,
        f"{item.ttl}s" if item.strategy != "none" else "-",
        _pct(item.expected_hit_rate),
        f"{item.db_seconds_saved_per_hour:.1f}",
        f"{item.requests}",
        f"{item.mean_ms:.1f}/{item.db_ms:.1f}",
        ", ".join(item.tables) or "-",
    ]


def _verification_rows(items: list[Any]) -> list[list[str]]:
    rows = []
    for item in items:
        check = item.verification
        if check is None or not check.requests_since:
            continue
        saved = check.measured_db_seconds_saved_per_hour
        rows.append([
            item.route,
            f"{check.strategy} {check.ttl}s",
            _pct(check.predicted_hit_rate),
            _pct(check.measured_hit_rate),
            f"{check.predicted_db_seconds_saved_per_hour:.1f}",
            "-" if saved is None else f"{saved:.1f}",
            str(check.requests_since),
        ])  # fmt: skip
    return rows


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Print the ranking (or reset the recording)."""
    if options.get("reset"):
        store.reset()
        command.stdout.write("advisor: every recorded route, table write and prediction forgotten")
        return
    ranking = advice.build()
    shown = ranking.advice if options.get("all") else ranking.recommended()
    shown = shown[: options.get("limit") or None]
    if options.get("json"):
        document = ranking.as_dict()
        document["routes"] = [item.as_dict() for item in shown]
        command.stdout.write(json.dumps(document, sort_keys=True))
        return
    where = "every process (Redis)" if ranking.source == "redis" else "this process only"
    command.stdout.write(f"Recorded over {ranking.seconds:.0f} s, from {where}.")
    if ranking.error:
        command.stdout.write(f"warning: {ranking.error}")
    if not shown:
        command.stdout.write("Nothing to advise yet: no route has enough traffic that a cache would save.")
    columns = ["#", "route", "strategy", "TTL", "hit rate", "DB s saved/h", "requests", "ms all/DB", "tables"]
    print_table(command, "Routes worth caching", columns, [_row(i, item) for i, item in enumerate(shown, 1)])
    for item in shown:
        for warning in item.warnings:
            command.stdout.write(f"  {item.route}: {warning}")
    checks = _verification_rows(ranking.advice)
    if checks:
        columns = [
            "route",
            "advised",
            "predicted hit",
            "measured hit",
            "pred. DB s/h",
            "meas. DB s/h",
            "since",
        ]
        print_table(command, "Advice applied: measured since the prediction", columns, checks)
