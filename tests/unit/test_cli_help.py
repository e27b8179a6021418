"""Every command and sub-command of ``vochi-crm`` has ``--help`` with an example."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from vochi_cli.main import app


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of the Click tree Typer builds, groups included, root first."""
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        if not getattr(sub, "hidden", False):
            yield from command_paths(sub, (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def test_the_tree_is_walked() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "demo", "completions", "config", "config show", "daemon"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "vochi-crm")
def test_help_exits_0_and_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "Example" in result.output, (
        f"`vochi-crm {' '.join(path)} --help` shows no example: add an 'Example: …' line to "
        "its docstring (or the group's help)"
    )
