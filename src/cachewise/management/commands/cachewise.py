"""``manage.py cachewise <subcommand>``: the cachewise operations tools.

Each subcommand is a module in :mod:`cachewise.cli` (see its docstring for the three names a
module defines). To add one, write the module and add its dotted path to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cachewise.cli import Subcommand, load_subcommands
from cachewise.exceptions import MissingExtraError

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: list[str] = [
    "cachewise.cli.ping",
    "cachewise.cli.stats",
    "cachewise.cli.bigkeys",
    "cachewise.cli.flush_counters",
    "cachewise.cli.invalidate",
    "cachewise.cli.advise",
]


def _add_django_options(parser: argparse.ArgumentParser) -> None:
    """Accept Django's own options after the subcommand too (``cachewise ping --settings=X -v 2``).

    argparse hands everything after a subcommand to its subparser, which would refuse them.
    ``SUPPRESS`` keeps a value given before the subcommand (or the default) unless one is given
    after it. ``--settings``/``--pythonpath`` take effect anyway: ``manage.py`` reads them from
    the whole command line before loading settings; here they are only accepted.
    """
    suppress = argparse.SUPPRESS
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=suppress,
        help="verbosity level: 0, 1, 2 or 3 (as before the subcommand)",
    )
    parser.add_argument("--settings", default=suppress, help="settings module (as before the subcommand)")
    parser.add_argument("--pythonpath", default=suppress, help="a directory to add to sys.path")
    parser.add_argument(
        "--traceback", action="store_true", default=suppress, help="raise on CommandError exceptions"
    )
    parser.add_argument("--no-color", action="store_true", default=suppress, help="don't colorize output")
    parser.add_argument("--force-color", action="store_true", default=suppress, help="force colorized output")


class Command(BaseCommand):
    help = "cachewise tools for the caches in settings.CACHES (run `cachewise <subcommand> --help`)."
    # A diagnostic must run even when the configuration it diagnoses fails the system checks;
    # `manage.py check` is the place for those.
    requires_system_checks: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands: dict[str, Subcommand] = load_subcommands(SUBCOMMANDS)
        self.no_color = False
        self.force_color = False

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", title="subcommands")
        subparsers.required = True
        for name, subcommand in self.subcommands.items():
            subparser = subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
            _add_django_options(subparser)
            subcommand.add_arguments(subparser)

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.no_color = bool(options.get("no_color"))
        self.force_color = bool(options.get("force_color"))
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = self.subcommands.get(options.get("subcommand") or "")
        if subcommand is None:
            raise CommandError(f"choose a subcommand: {', '.join(self.subcommands)}")
        try:
            subcommand.handle(self, options)
        except MissingExtraError as exc:  # e.g. stats without rich: say which extra, no traceback
            raise CommandError(str(exc)) from exc
