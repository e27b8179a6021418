"""``vochi-crm settings``: the effective settings and where each came from."""

from __future__ import annotations

from typing import Annotated

import typer

from vochi_cli import core, output


def show_settings(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per setting.")] = False,
) -> None:
    """Show every setting, its environment variable, value (secrets masked) and source.

    Example: VOCHI_DAEMON__PORT=9000 vochi-crm settings
    """
    from vochi_crm.settings_sources import describe_sources

    sources = describe_sources(core.settings())
    if as_json:
        output.print_json([s.__dict__ for s in sources])
        return
    output.print_table(
        "Effective settings",
        ["setting", "environment variable", "value", "source"],
        [(s.name, s.env, "—" if s.value is None else s.value, s.source) for s in sources],
    )
