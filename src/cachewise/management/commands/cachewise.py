"""``manage.py cachewise <subcommand>``: the cachewise operations tools.

Each subcommand is a module in :mod:`cachewise.cli` (see its docstring for the three names a
module defines). To add one, write the module and add its dotted path to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cachewise.cli import Subcommand, load_subcommands

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: list[str] = [
    "cachewise.cli.ping",
    "cachewise.cli.stats",
    "cachewise.cli.bigkeys",
    "cachewise.cli.flush_counters",
    "cachewise.cli.invalidate",
]


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
            subcommand.add_arguments(subparser)

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.no_color = bool(options.get("no_color"))
        self.force_color = bool(options.get("force_color"))
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = self.subcommands.get(options.get("subcommand") or "")
        if subcommand is None:
            raise CommandError(f"choose a subcommand: {', '.join(self.subcommands)}")
        subcommand.handle(self, options)
