"""``manage.py cachewise flush-counters [--counter PATH ...]``: drain counters into the database.

Flushes every Counter listed in ``CACHEWISE_COUNTERS`` (dotted paths to Counter instances that
were created with ``apply=``), or the ones named with ``--counter``. Safe to run from cron, a
Celery beat task or several hosts at once: each increment is applied exactly once (see
:mod:`cachewise.counters.counter`). Exits non-zero when a path does not name a Counter with ``apply=``,
when applying fails (the counts not applied are put back for the next run), or when a counter's
cache is a per-process one (LocMem), where this process would flush only its own counts.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from cachewise.conf import conf
from cachewise.counters.counter import Counter

from .local import refuse_per_process_cache
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

    paths: list[str] = options.get("counters") or list(conf.COUNTERS)
    if not paths:
        raise CommandError("no counters to flush: set CACHEWISE_COUNTERS or pass --counter PATH")
    counters = [(path, _load(path)) for path in paths]
    for path, counter in counters:
        refuse_per_process_cache(counter.alias, f"flushing {path}")
    rows = []
    for path, counter in counters:
        applied = counter.flush()
        rows.append([path, str(len(applied)), str(sum(applied.values()))])
    print_table(command, "Flushed counters", ["counter", "ids", "increments"], rows)
