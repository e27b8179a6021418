"""``vochi-crm config``: a unit's RetailCRM settings. Every change is validated before anything is
written, writes only the ``retailcrm`` key, never drops the mapping, and reaches running daemons
through NOTIFY within a second."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.retailcrm_config import ConfigChange
    from vochi_crm.runtime import Runtime
    from vochi_crm.units import Unit

app = typer.Typer(
    help="A unit's RetailCRM configuration.\n\nExample: vochi-crm config show 0367",
    no_args_is_help=True,
)

UnitArg = Annotated[str, typer.Argument(help="Unit number, e.g. 0367.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("show")
def show(unit: UnitArg, as_json: JsonOpt = False) -> None:
    """Show the RetailCRM config of a unit (the API key masked to its last 4 characters).

    Example: vochi-crm config show 0367 --json
    """

    async def use(runtime: Runtime) -> Unit:
        return await runtime.configs.get(unit)

    _render(core.with_runtime(use), as_json)


@app.command("set")
def set_values(
    unit: UnitArg,
    assignments: Annotated[
        list[str],
        typer.Argument(
            help="KEY=VALUE pairs: api_url, api_key (api_key=- reads it from stdin), enabled, "
            "client_id; PBX: redirect_enabled, redirect_context (default inoffice), "
            "fallback_extension, lookup_deadline_ms, originate_context (default web-originate), "
            "outbound_context (default inoffice); an empty value resets a PBX key.",
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Change settings; keys not named stay as they are, the mapping is never touched.

    Example: vochi-crm config set 0367 api_url=https://shop.retailcrm.ru api_key=- enabled=true
    """
    from vochi_crm.errors import FieldError, InvalidInput
    from vochi_crm.retailcrm_config import change_from_values

    def parse() -> ConfigChange:
        values: dict[str, str] = {}
        bad = []
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                bad.append(FieldError(item, "expected KEY=VALUE, e.g. enabled=true"))
                continue
            if key.strip() == "api_key" and value == "-":
                value = _read_secret("RetailCRM API key")
            values[key.strip()] = value
        if bad:
            raise InvalidInput(bad)
        return change_from_values(values)

    _change(unit, core.guard(parse), as_json)


@app.command("map")
def map_extensions(
    unit: UnitArg,
    pairs: Annotated[
        list[str], typer.Argument(help="EXTENSION=RETAILCRM_USER_ID pairs.", show_default=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Map extensions to RetailCRM users (added to the existing mapping).

    Example: vochi-crm config map 0367 151=16 152=18
    """
    from vochi_crm.config_service import mapping_pairs
    from vochi_crm.retailcrm_config import ConfigChange, validate_pairs

    change = core.guard(lambda: ConfigChange(map=validate_pairs(mapping_pairs(pairs), "mapping")))
    _change(unit, change, as_json)


@app.command("unmap")
def unmap_extensions(
    unit: UnitArg,
    extensions: Annotated[
        list[str], typer.Argument(help="Extensions to unmap.", show_default=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Remove extensions from the mapping.

    Example: vochi-crm config unmap 0367 152
    """
    from vochi_crm.retailcrm_config import ConfigChange

    _change(unit, ConfigChange(unmap=tuple(e.strip() for e in extensions)), as_json)


@app.command("enable")
def enable(unit: UnitArg, as_json: JsonOpt = False) -> None:
    """Enable the integration (needs api_url and api_key).

    Example: vochi-crm config enable 0367
    """
    from vochi_crm.retailcrm_config import ConfigChange

    _change(unit, ConfigChange(enabled=True), as_json)


@app.command("disable")
def disable(unit: UnitArg, as_json: JsonOpt = False) -> None:
    """Disable the integration; credentials and mapping are kept.

    Example: vochi-crm config disable 0367
    """
    from vochi_crm.retailcrm_config import ConfigChange

    _change(unit, ConfigChange(enabled=False), as_json)


@app.command("delete")
def delete(
    unit: UnitArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm without asking.")] = False,
) -> None:
    """Remove the unit's RetailCRM config entirely (other integrations are untouched).

    Example: vochi-crm config delete 0367 --yes
    """
    if not yes and not typer.confirm(f"Delete the RetailCRM config of unit {unit}?"):
        raise typer.Exit(1)

    async def use(runtime: Runtime) -> None:
        await runtime.configs.delete(unit)

    core.with_runtime(use)
    output.success(f"RetailCRM config of unit {unit} deleted")


@app.command("export")
def export(
    units: Annotated[
        list[str] | None, typer.Argument(help="Units to export (default: all).", show_default=False)
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Include API keys (only with --output; the file is created mode 600).",
        ),
    ] = False,
) -> None:
    """Export configs as JSON, for backups and bulk moves. Keys are left out unless asked for.

    Example: vochi-crm config export -o backup.json --include-secrets
    """
    if include_secrets and output_file is None:
        output.print_error(_usage("--include-secrets", "needs --output: keys are never printed"))
        raise typer.Exit(2)

    async def use(runtime: Runtime) -> dict[str, Any]:
        return await runtime.configs.export(units or (), include_secrets=include_secrets)

    document = core.with_runtime(use)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output_file is None:
        sys.stdout.write(text)
        return
    fd = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    output.success(f"{len(document['units'])} unit(s) written to {output_file}")


@app.command("import")
def import_configs(
    source: Annotated[str, typer.Argument(help="JSON file from `config export`, or - for stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate only; write nothing.")
    ] = False,
) -> None:
    """Import configs: every record is validated before anything is written, then all are written
    in one transaction. Records without a key keep the unit's current key.

    Example: vochi-crm config import backup.json --dry-run
    """
    from vochi_crm.config_service import parse_import

    document = core.guard(lambda: _load_json(source))
    if dry_run:
        records = core.guard(lambda: parse_import(document))
        output.success(f"{len(records)} record(s) valid; nothing written (--dry-run)")
        return

    async def use(runtime: Runtime) -> list[str]:
        return await runtime.configs.import_(document)

    written = core.with_runtime(use)
    output.success(f"{len(written)} unit(s) imported: {', '.join(written) or '—'}")


# -- helpers ---------------------------------------------------------------------------------


def _change(unit: str, change: ConfigChange, as_json: bool) -> None:
    async def use(runtime: Runtime) -> Unit:
        return await runtime.configs.update(unit, change)

    _render(core.with_runtime(use), as_json)


def _render(unit: Unit, as_json: bool) -> None:
    public = unit.retailcrm.public()
    if as_json:
        output.print_json({"enterprise_number": unit.number, "retailcrm": public})
        return
    mappings = public.pop("user_mappings")
    output.print_table(
        f"RetailCRM config of unit {unit.number} ({unit.name})",
        ["setting", "value"],
        [(k, "—" if v is None else v) for k, v in public.items()],
    )
    if mappings:
        output.print_table(
            "Extension mapping", ["extension", "RetailCRM user id"], mappings.items()
        )
    else:
        typer.echo("No extensions mapped (vochi-crm config map UNIT EXT=USER_ID).")


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True))
    return sys.stdin.readline().strip()


def _load_json(source: str) -> object:
    from vochi_crm.errors import InvalidInput

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise InvalidInput.one("file", f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput.one(
            "file", f"{source} is not JSON: {exc.msg} at line {exc.lineno}"
        ) from None


def _usage(option: str, message: str) -> Any:
    from vochi_crm.errors import InvalidInput

    return InvalidInput.one(option, message)
