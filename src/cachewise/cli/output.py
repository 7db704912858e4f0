"""Terminal output for ``manage.py cachewise``: rich tables on a terminal, plain columns otherwise.

Plain output (a pipe, a file, ``call_command`` in tests, ``--no-color``) is aligned text with no
escape codes, so scripts and logs can read it; on a TTY the same rows become a ``rich`` table when
rich (the ``cli`` extra) is installed, and stay plain text when it is not.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence

from django.core.management.base import BaseCommand

__all__ = ["is_terminal", "print_table"]


def is_terminal(command: BaseCommand) -> bool:
    """True when ``command`` writes to a terminal (or ``--force-color``) and not ``--no-color``."""
    if getattr(command, "no_color", False):
        return False
    if getattr(command, "force_color", False):
        return True
    isatty = getattr(command.stdout, "isatty", None)
    return bool(isatty and isatty())


def _plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    table = [list(columns), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines) + "\n"


def _rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, color_system="standard", width=120).print(table)
    return buffer.getvalue()


def print_table(
    command: BaseCommand, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    """Write ``rows`` under ``columns``: a rich table on a terminal, aligned plain text otherwise."""
    if is_terminal(command) and importlib.util.find_spec("rich") is not None:  # rich: the cli extra
        command.stdout.write(_rich_table(title, columns, rows), ending="")
    else:
        command.stdout.write(f"{title}\n{_plain_table(columns, rows)}", ending="")
