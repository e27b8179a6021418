"""``vochi-crm units``: the platform's units (enterprises). The platform creates them itself;
``add`` is for standalone installs and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.runtime import Runtime
    from vochi_crm.units import Unit

app = typer.Typer(
    help="Units (enterprises) of the platform.\n\nExample: vochi-crm units list",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_units(as_json: JsonOpt = False) -> None:
    """List units with their RetailCRM state.

    Example: vochi-crm units list --json
    """

    async def use(runtime: Runtime) -> list[Unit]:
        return await runtime.units.list()

    units = core.with_runtime(use)
    if as_json:
        output.print_json([u.public() for u in units])
        return
    output.print_table(
        f"{len(units)} unit(s)",
        ["number", "name", "token", "PBX", "RetailCRM", "mapped"],
        [
            (
                u.number,
                u.name,
                u.token,
                f"{u.host}:{u.ssh_port}" if u.host else "—",
                _state(u),
                len(u.retailcrm.user_mappings),
            )
            for u in units
        ],
    )


@app.command("show")
def show_unit(
    number: Annotated[str, typer.Argument(help="Unit number, e.g. 0367.")], as_json: JsonOpt = False
) -> None:
    """Show one unit.

    Example: vochi-crm units show 0367
    """

    async def use(runtime: Runtime) -> Unit:
        return await runtime.units.get(number)

    unit = core.with_runtime(use)
    if as_json:
        output.print_json(unit.public())
        return
    data = unit.public()
    data.pop("retailcrm")
    output.print_table(f"Unit {unit.number}", ["field", "value"], list(data.items()))
    typer.echo(f"RetailCRM: {_state(unit)}  (vochi-crm config show {unit.number})")


@app.command("add")
def add_unit(
    number: Annotated[str, typer.Argument(help="Unit number, e.g. 0367.")],
    name: Annotated[str, typer.Option(help="Display name of the unit.")],
    token: Annotated[
        str | None, typer.Option(help="The Asterisk Token the PBX sends (enterprises.name2).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address of the unit's PBX for SSH.")] = None,
    ssh_port: Annotated[int, typer.Option(help="SSH port of the PBX.")] = 5059,
    as_json: JsonOpt = False,
) -> None:
    """Create a unit (standalone installs and tests; the platform creates its own).

    Example: vochi-crm units add 0367 --name "Demo shop" --token 375290000000 --host 10.0.0.5
    """

    async def use(runtime: Runtime) -> Unit:
        return await runtime.units.add(number, name, token=token, host=host, ssh_port=ssh_port)

    unit = core.with_runtime(use)
    if as_json:
        output.print_json(unit.public())
    else:
        output.success(f"unit {unit.number} ({unit.name}) created")


def _state(unit: Unit) -> str:
    config = unit.retailcrm
    if not config.configured:
        return "not configured"
    return "enabled" if config.enabled else "disabled"
