"""Subcommands of ``manage.py cachewise``: one module each, listed in the command's ``SUBCOMMANDS``.

A subcommand module exposes three names (checked when the command loads it)::

    help: str                                             # one line, shown in --help
    def add_arguments(parser: CommandParser) -> None: ... # its own options
    def handle(command: BaseCommand, options: dict[str, Any]) -> None: ...

Its name on the command line is the module's last dotted part with ``_`` turned into ``-``
(``cli/flush_counters.py`` -> ``cachewise flush-counters``), unless it sets ``name: str``. Failures
raise ``CommandError`` with a message that says what to check; output goes through
``command.stdout`` (see :mod:`cachewise.cli.output` for tables).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from django.core.management.base import BaseCommand, CommandParser

from cachewise.exceptions import ConfigurationError

__all__ = ["Subcommand", "load_subcommands"]


class _Handler(Protocol):
    def __call__(self, command: BaseCommand, options: dict[str, Any]) -> None: ...


class _ArgumentAdder(Protocol):
    def __call__(self, parser: CommandParser) -> None: ...


@dataclass(frozen=True)
class Subcommand:
    """One loaded subcommand module."""

    name: str
    help: str
    add_arguments: _ArgumentAdder
    handle: _Handler
    module: ModuleType


def _load(path: str) -> Subcommand:
    module = importlib.import_module(path)
    missing = [attr for attr in ("help", "add_arguments", "handle") if not hasattr(module, attr)]
    if missing:
        raise ConfigurationError(f"cachewise subcommand module {path} does not define {', '.join(missing)}")
    name = getattr(module, "name", path.rsplit(".", 1)[-1].replace("_", "-"))
    return Subcommand(str(name), str(module.help), module.add_arguments, module.handle, module)


def load_subcommands(paths: Iterable[str]) -> dict[str, Subcommand]:
    """Import each module in ``paths`` and return the subcommands by name, in order."""
    loaded: dict[str, Subcommand] = {}
    for path in paths:
        subcommand = _load(path)
        if subcommand.name in loaded:
            raise ConfigurationError(f"two cachewise subcommands are named {subcommand.name!r}")
        loaded[subcommand.name] = subcommand
    return loaded
