"""The shell completion scripts in completions/ are what the CLI generates, and they work.

When a test here fails after a Typer upgrade or a rename, regenerate the files:

    vochi-crm completions --output-dir completions
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import require
from vochi_cli.commands.completions import COMPLETE_VAR, FILE_NAMES, Shell, completion_script
from vochi_cli.main import app

REPO = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO / "completions"
BIN = Path(sys.executable).parent
REGENERATE = "regenerate with: vochi-crm completions --output-dir completions"


def committed(shell: Shell) -> str:
    path = COMPLETIONS / FILE_NAMES[shell]
    assert path.is_file(), f"{path.relative_to(REPO)} is missing; {REGENERATE}"
    return path.read_text(encoding="utf-8")


def console_script() -> list[str]:
    script = BIN / "vochi-crm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vochi_cli"]


@pytest.mark.parametrize("shell", list(Shell))
def test_committed_script_matches_the_generator(shell: Shell) -> None:
    assert committed(shell) == completion_script(shell), (
        f"completions/{FILE_NAMES[shell]} differs from what the CLI generates; {REGENERATE}"
    )


@pytest.mark.parametrize("shell", list(Shell))
def test_completions_command_prints_the_committed_script(shell: Shell) -> None:
    result = CliRunner().invoke(app, ["completions", shell.value])
    assert result.exit_code == 0, result.output
    assert result.output == committed(shell), (
        f"`vochi-crm completions {shell}` differs from completions/{FILE_NAMES[shell]}; "
        f"{REGENERATE}"
    )


@pytest.mark.parametrize("shell", list(Shell))
def test_committed_script_matches_the_installed_program(shell: Shell) -> None:
    """What the console script itself answers to ``_VOCHI_CRM_COMPLETE=source_<shell>`` (the
    mechanism ``--show-completion`` uses), independent of our generator."""
    env = {**os.environ, COMPLETE_VAR: f"source_{shell.value}"}
    result = subprocess.run(
        console_script(), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == committed(shell).strip(), (
        f"the installed vochi-crm generates another {shell} script; {REGENERATE}"
    )


def test_output_dir_writes_every_shell(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["completions", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for shell in Shell:
        assert (tmp_path / FILE_NAMES[shell]).read_text(encoding="utf-8") == committed(shell)


def test_a_shell_or_a_directory_is_required() -> None:
    result = CliRunner().invoke(app, ["completions"])
    assert result.exit_code == 2


def test_bash_completes_commands_from_the_committed_script() -> None:
    """Source completions/vochi-crm.bash in a real bash and ask it to complete."""
    require(shutil.which("bash") is not None, "bash")
    program = console_script()
    require(len(program) == 1, "the vochi-crm console script next to this interpreter")
    probe = (
        f'source "{COMPLETIONS / FILE_NAMES[Shell.bash]}"\n'
        "COMP_WORDS=(vochi-crm de); COMP_CWORD=1; _vochi_crm_completion vochi-crm\n"
        'echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(vochi-crm config ""); COMP_CWORD=2; _vochi_crm_completion vochi-crm\n'
        'echo "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(program[0]).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.split() == ["demo"]
    assert {"show", "set", "map"} <= set(second.split())
