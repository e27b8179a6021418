"""DESIGN §2's rules and the house style, checked by the tools that enforce them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )


def test_import_linter_contracts_hold() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_ruff_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_help_does_not_import_heavy_frameworks() -> None:
    """`vochi-crm --help` must stay fast: no FastAPI, uvicorn, Textual, psycopg at import."""
    probe = (
        "import sys; import vochi_cli.main; "
        "heavy = [m for m in ('fastapi', 'uvicorn', 'textual', 'psycopg', 'pydantic') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = _run(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
