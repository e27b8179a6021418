"""``vochi-crm completions``: shell completion scripts for bash, zsh and fish.

The scripts are Typer's: small shims that ask ``vochi-crm`` itself for the candidates
(``_VOCHI_CRM_COMPLETE=complete_<shell>``), so they never go stale when commands change. The
repository ships them in ``completions/`` (``vochi-crm completions --output-dir completions``
regenerates them; tests/unit/test_completions.py checks they match).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

PROG_NAME = "vochi-crm"
COMPLETE_VAR = "_VOCHI_CRM_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


FILE_NAMES: dict[Shell, str] = {
    Shell.bash: "vochi-crm.bash",
    Shell.zsh: "_vochi-crm",
    Shell.fish: "vochi-crm.fish",
}
"""The conventional file name per shell (zsh: ``_<command>`` on ``$fpath``)."""


def completion_script(shell: Shell) -> str:
    """The completion script for ``shell``, ending with one newline."""
    from typer._completion_shared import get_completion_script

    script = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)
    return script.strip() + "\n"


def completions(
    shell: Annotated[
        Shell | None,
        typer.Argument(help="bash, zsh or fish. With --output-dir and no SHELL: all three."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            file_okay=False,
            help="Write vochi-crm.bash, _vochi-crm and/or vochi-crm.fish into this directory "
            "instead of printing.",
        ),
    ] = None,
) -> None:
    """Print (or write) the shell completion script.

    Install: bash — source it from ~/.bashrc or copy it to
    ~/.local/share/bash-completion/completions/vochi-crm; zsh — put _vochi-crm in a directory
    on $fpath; fish — copy it to ~/.config/fish/completions/. The repository ships them in
    completions/.

    Example: vochi-crm completions bash > ~/.local/share/bash-completion/completions/vochi-crm
    """
    if output_dir is None:
        if shell is None:
            raise typer.BadParameter(
                "name a shell (bash, zsh, fish) or give --output-dir", param_hint="SHELL"
            )
        typer.echo(completion_script(shell), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for each in [shell] if shell is not None else list(Shell):
        path = output_dir / FILE_NAMES[each]
        path.write_text(completion_script(each), encoding="utf-8")
        typer.echo(f"wrote {path}")
