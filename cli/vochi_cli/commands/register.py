"""``vochi-crm register UNIT``: push the unit's telephony module to RetailCRM now.

Config saves already queue this for the daemon; the command is for forcing it (after fixing a key,
after RetailCRM lost the module) and prints what RetailCRM said. Exit 0 registered, 1 RetailCRM
refused or failed (with a hint), 2 unknown unit or no RetailCRM config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.registration.service import RegistrationOutcome
    from vochi_crm.runtime import Runtime


def register(
    unit: Annotated[str, typer.Argument(help="Unit number, e.g. 0367.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Register (or update) the unit's telephony module in RetailCRM now.

    Sends the whole module (callback URLs, clientId, every mapped extension) from the config.

    A disabled integration is deactivated instead. Journaled as register_module / delete_module.

    Example: vochi-crm register 0367 --json
    """

    async def use(runtime: Runtime) -> RegistrationOutcome:
        return await runtime.register_module(unit)

    outcome = core.with_runtime(use)
    if as_json:
        output.print_json(outcome.as_dict())
    else:
        _render(outcome)
    if not outcome.ok:
        raise typer.Exit(1)


def _render(outcome: RegistrationOutcome) -> None:
    from rich.markup import escape

    module = outcome.module
    code = module.get("code")
    telephony = module.get("integrations", {}).get("telephony", {})
    if outcome.ok:
        done = "registered" if outcome.action == "register_module" else "deactivated"
        output.success(
            escape(
                f"module '{code}' {done} in RetailCRM for unit {outcome.unit} "
                f"({len(telephony.get('additionalCodes', []))} codes, clientId "
                f"{module.get('clientId', '—')}, {outcome.elapsed_ms:.0f} ms)"
            )
        )
    else:
        err = output.stderr()
        err.print(f"[red]✗[/red] {escape(outcome.error or 'RetailCRM refused')}", highlight=False)
        if outcome.hint:
            err.print(f"  [bold]hint:[/bold] {escape(outcome.hint)}", highlight=False)
    for warning in outcome.warnings:
        output.stderr().print(f"[yellow]![/yellow] {escape(warning)}", highlight=False)
