"""``vochi-crm test-connection UNIT``: is the unit's RetailCRM reachable, the key right and
sufficient, the mapping valid, our module in place? Exit 0 only when every check passes (warnings
pass); 1 when one fails; 2 for an unknown unit or a unit with no RetailCRM config. Ends within
``VOCHI_RETAILCRM__CHECK_DEADLINE_SECONDS`` (10 s) even when RetailCRM hangs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.connection_check import ConnectionReport
    from vochi_crm.runtime import Runtime

MARKS = {
    "pass": "[green]✓[/green]",
    "warn": "[yellow]![/yellow]",
    "fail": "[red]✗[/red]",
    "skipped": "[dim]–[/dim]",
}


def check_connection(
    unit: Annotated[str, typer.Argument(help="Unit number, e.g. 0367.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Test the unit's RetailCRM connection: address, key, permissions, users, module.

    Changes nothing and ends within 10 s. Each failed check comes with a hint.

    "–" marks a check not run (an earlier one failed, or time ran out). Exit 0: all passed.

    Example: vochi-crm test-connection 0367 --json
    """

    async def use(runtime: Runtime) -> ConnectionReport:
        return await runtime.test_connection(unit)

    report = core.with_runtime(use)
    if as_json:
        output.print_json(report.as_dict())
    else:
        _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report: ConnectionReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    state = "enabled" if report.enabled else "disabled"
    table = Table(
        title=escape(f"Unit {report.unit} → {report.api_url} (integration {state})"),
        title_justify="left",
        expand=False,
    )
    for column in ("", "check", "result", "hint"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(
            MARKS[check.status], escape(check.title), escape(check.detail), escape(check.hint or "")
        )
    console = output.stdout()
    console.print(table)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        console.print(
            f"[red]✗[/red] {len(failed)} of {len(report.checks)} checks failed "
            f"({report.elapsed_ms / 1000:.1f} s)",
            highlight=False,
        )
    else:
        console.print(
            f"[green]✓[/green] all checks passed ({report.elapsed_ms / 1000:.1f} s)",
            highlight=False,
        )
