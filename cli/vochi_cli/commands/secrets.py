"""``vochi-crm secrets``: the key that encrypts RetailCRM API keys at rest.

``new-key`` prints a fresh key. ``rotate`` re-encrypts every unit's stored key under the current
``VOCHI_SECRET_KEY``; the old key(s) are read from ``VOCHI_SECRET_KEY_PREVIOUS`` or from the
environment variables named by ``--old-key-env`` (keys never go on the command line, where ``ps``
and shell history would show them). Rotation procedure: docs/configuration.md. Exit 0 every key
is under the current one, 1 some could not be decrypted or kept changing (run again), 2 bad input
(no current key, an unset variable).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.runtime import Runtime
    from vochi_crm.secret_rotation import RotationReport

app = typer.Typer(
    help="Encryption of the stored RetailCRM API keys (VOCHI_SECRET_KEY).\n\n"
    "Example: vochi-crm secrets rotate --dry-run",
    no_args_is_help=True,
)


@app.command("new-key")
def new_key() -> None:
    """Print a new random key for VOCHI_SECRET_KEY (256 bits).

    Example: vochi-crm secrets new-key
    """
    from vochi_crm.secretbox import new_secret_key

    sys.stdout.write(new_secret_key() + "\n")


@app.command("rotate")
def rotate(
    old_key_env: Annotated[
        list[str] | None,
        typer.Option(
            "--old-key-env",
            help="Name of an environment variable holding an old key (repeatable); "
            "VOCHI_SECRET_KEY_PREVIOUS is always read too.",
        ),
    ] = None,
    new_key_env: Annotated[
        str | None,
        typer.Option(
            "--new-key-env", help="Name of the environment variable with the new key "
            "(default VOCHI_SECRET_KEY)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be re-encrypted; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Re-encrypt every unit's API key under the current key (plaintext ones too).

    Each unit is rewritten in its own transaction with compare-and-swap; a key no given key
    decrypts is reported and left as it is.

    Example: VOCHI_SECRET_KEY=<new> VOCHI_SECRET_KEY_PREVIOUS=<old> vochi-crm secrets rotate
    """
    from vochi_crm.errors import InvalidInput
    from vochi_crm.secret_rotation import rotate_secrets
    from vochi_crm.secretbox import MIN_SECRET, SecretBox, split_keys

    settings = core.settings()

    def box() -> SecretBox:
        def variable(name: str) -> str:
            value = os.environ.get(name, "").strip()
            if not value:
                raise InvalidInput.one(name, "is not set (or empty) in the environment")
            if len(value) < MIN_SECRET:
                raise InvalidInput.one(name, f"is shorter than {MIN_SECRET} characters")
            return value

        current = (
            variable(new_key_env)
            if new_key_env
            else settings.secret_key.get_secret_value() if settings.secret_key else None
        )
        previous = split_keys(
            settings.secret_key_previous.get_secret_value()
            if settings.secret_key_previous
            else None
        )
        previous += [variable(name) for name in old_key_env or ()]
        if current is None:
            raise InvalidInput.one(
                "VOCHI_SECRET_KEY", "is not set: set it to the new key (vochi-crm secrets "
                "new-key makes one), the old one(s) in VOCHI_SECRET_KEY_PREVIOUS"
            )
        return SecretBox(current, previous)

    keys = core.guard(box)

    async def use(runtime: Runtime) -> RotationReport:
        return await rotate_secrets(runtime.db, keys, dry_run=dry_run)

    report = core.with_runtime(use)
    if as_json:
        output.print_json(report.as_dict())
    else:
        _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report: RotationReport) -> None:
    from rich.markup import escape

    verb = "would re-encrypt" if report.dry_run else "re-encrypted"
    output.success(
        f"{verb} {len(report.rotated)} key(s) under key {report.current_key_id} "
        f"({len(report.were_plaintext)} were plaintext); {len(report.already_current)} already "
        f"current; {report.without_key} unit(s) without a key"
    )
    err = output.stderr()
    for unit, why in sorted(report.unreadable.items()):
        err.print(f"[red]✗[/red] unit {escape(unit)}: {escape(why)}", highlight=False)
    for unit in report.conflicts:
        err.print(
            f"[yellow]![/yellow] unit {escape(unit)}: its config kept changing; run again",
            highlight=False,
        )
