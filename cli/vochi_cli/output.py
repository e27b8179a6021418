"""Rendering shared by all commands: JSON for scripts, Rich for people, errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from vochi_crm.errors import VochiError


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def notice(message: str) -> None:
    stderr().print(f"[dim]{message}[/dim]", highlight=False)


def print_error(error: VochiError) -> None:
    from rich.panel import Panel

    from vochi_crm.errors import InvalidInput

    if isinstance(error, InvalidInput) and error.fields:
        body = "\n".join(f"[bold]{f.field}[/bold]: {f.message}" for f in error.fields)
    else:
        body = error.message
    stderr().print(
        Panel(body, title=error.title, title_align="left", border_style="red", expand=False),
        highlight=False,
    )


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout().print(table)


def success(message: str) -> None:
    stdout().print(f"[green]✓[/green] {message}", highlight=False)
