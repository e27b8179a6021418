"""``vochi-crm db``: schema migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.db.migrations import Migration
    from vochi_crm.runtime import Runtime

app = typer.Typer(help="Database schema.\n\nExample: vochi-crm db migrate", no_args_is_help=True)


@app.command()
def migrate(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply pending migrations (idempotent; safe on the platform's existing database).

    Creates the platform tables only where missing, adds missing columns, creates our own tables.
    Example: VOCHI_DATABASE_URL=postgresql://… vochi-crm db migrate
    """

    async def use(runtime: Runtime) -> list[Migration]:
        return await runtime.migrate()

    applied = core.with_runtime(use, auto_migrate=False)
    if as_json:
        output.print_json({"applied": [f"{m.version:04d}_{m.name}" for m in applied]})
    elif applied:
        for m in applied:
            output.success(f"applied {m.version:04d}_{m.name}")
    else:
        output.success("schema is up to date")
