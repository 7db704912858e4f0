"""``manage.py cachewise flush-counters [--counter PATH ...]``: drain counters into the database.

Flushes every Counter listed in ``CACHEWISE_COUNTERS`` (dotted paths to Counter instances that
were created with ``apply=``), or the ones named with ``--counter``. Safe to run from cron, a
Celery beat task or several hosts at once: each increment is applied exactly once (see
:mod:`cachewise.counters`). Exits non-zero when a path does not name a Counter with ``apply=``,
or when applying fails (the counts not applied are put back for the next run).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from .output import print_table

help = "Drain cachewise Counters (CACHEWISE_COUNTERS, or --counter) into the database."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--counter PATH`` (repeatable; default: every path in CACHEWISE_COUNTERS)."""
    parser.add_argument(
        "--counter",
        action="append",
        dest="counters",
        metavar="PATH",
        help="dotted path of a Counter instance (repeatable; default: CACHEWISE_COUNTERS)",
    )


def _load(path: str) -> Any:
    from cachewise.counters import Counter

    try:
        counter = import_string(path)
    except ImportError as exc:
        raise CommandError(f"cannot import counter {path!r}: {exc}") from exc
    if not isinstance(counter, Counter):
        raise CommandError(f"{path!r} is a {type(counter).__name__}, not a cachewise Counter")
    if counter.apply is None:
        raise CommandError(f"{path!r} has no apply function: create it as Counter(..., apply=...)")
    return counter


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Flush each counter in turn and print how many ids and increments reached the database."""
    from cachewise.conf import conf

    paths: list[str] = options.get("counters") or list(conf.COUNTERS)
    if not paths:
        raise CommandError("no counters to flush: set CACHEWISE_COUNTERS or pass --counter PATH")
    rows = []
    for path in paths:
        applied = _load(path).flush()
        rows.append([path, str(len(applied)), str(sum(applied.values()))])
    print_table(command, "Flushed counters", ["counter", "ids", "increments"], rows)
