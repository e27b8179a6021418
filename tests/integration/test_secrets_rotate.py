"""``vochi-crm secrets rotate`` on real PostgreSQL: the first encryption of plaintext keys, a
rotation to a new key with the old one as previous, old keys named by --old-key-env, a key nobody
can decrypt (reported, untouched, exit 1), and the usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from vochi_cli.main import app
from vochi_crm.secretbox import PREFIX, SecretBox

K1 = "first-secret-key-000000000000001"
K2 = "second-secret-key-00000000000002"
K3 = "third-secret-key-000000000000003"
KEYS = {"0367": "key-of-pilot-0367-aaaa", "0368": "key-of-other-0368-bbbb"}


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    runner = CliRunner(env={"COLUMNS": "200"})
    for unit in ("0367", "0368", "0369"):
        assert runner.invoke(app, ["units", "add", unit, "--name", f"Unit {unit}"]).exit_code == 0
    for unit, key in KEYS.items():
        result = runner.invoke(
            app, ["config", "set", unit, "api_url=https://x.retailcrm.ru", f"api_key={key}"]
        )
        assert result.exit_code == 0, result.output
    return runner


def stored_keys(database_url: str) -> dict[str, str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT number, integrations_config -> 'retailcrm' ->> 'api_key' FROM enterprises"
        ).fetchall()
    return dict(rows)


def rotate(cli: CliRunner, *args: str, **env: str | None) -> tuple[int, dict[str, object]]:
    result = cli.invoke(app, ["secrets", "rotate", "--json", *args], env=env)
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, {"output": result.output}


def test_plaintext_keys_are_encrypted_then_rotated(
    cli: CliRunner, database_url: str, tmp_path: Path
) -> None:
    assert stored_keys(database_url) == {**KEYS, "0369": None}  # no key set: plaintext

    code, dry = rotate(cli, "--dry-run", VOCHI_SECRET_KEY=K1)
    assert code == 0 and dry["rotated"] == 2 and dry["were_plaintext"] == 2
    assert dry["without_key"] == 1 and dry["dry_run"] is True
    assert stored_keys(database_url)["0367"] == KEYS["0367"]  # nothing changed

    code, first = rotate(cli, VOCHI_SECRET_KEY=K1)
    assert code == 0 and first["rotated"] == 2 and first["ok"] is True
    sealed = stored_keys(database_url)
    k1 = SecretBox(K1)
    for unit, key in KEYS.items():
        value = sealed[unit]
        assert value is not None and value.startswith(PREFIX) and key not in value
        assert k1.open(value, unit) == key
    code, again = rotate(cli, VOCHI_SECRET_KEY=K1)
    assert code == 0 and again["rotated"] == 0 and again["already_current"] == 2

    # a new key; the old one readable as previous
    code, second = rotate(cli, VOCHI_SECRET_KEY=K2, VOCHI_SECRET_KEY_PREVIOUS=K1)
    assert code == 0 and second["rotated"] == 2 and second["were_plaintext"] == 0
    k2 = SecretBox(K2)
    for unit, key in KEYS.items():
        value = stored_keys(database_url)[unit]
        assert value is not None and k2.key_id(value) == k2.current_kid
        assert k2.open(value, unit) == key
    # the previous key is no longer needed: the CLI reads every key with K2 alone
    target = tmp_path / "backup.json"
    export = cli.invoke(
        app,
        ["config", "export", "--include-secrets", "--output", str(target)],
        env={"VOCHI_SECRET_KEY": K2},
    )
    assert export.exit_code == 0, export.output
    document = json.loads(target.read_text())
    assert {r["retailcrm"]["api_key"] for r in document["units"]} == set(KEYS.values())

    # old keys may also come from variables named on the command line
    code, third = rotate(
        cli, "--old-key-env", "OLD_VOCHI_KEY", VOCHI_SECRET_KEY=K3, OLD_VOCHI_KEY=K2
    )
    assert code == 0 and third["rotated"] == 2


def test_a_key_no_given_key_opens_is_reported_and_left_alone(
    cli: CliRunner, database_url: str
) -> None:
    assert rotate(cli, VOCHI_SECRET_KEY=K1)[0] == 0
    before = stored_keys(database_url)
    code, report = rotate(cli, VOCHI_SECRET_KEY=K2)  # K1 forgotten
    assert code == 1
    assert report["unreadable"] == 2 and report["rotated"] == 0
    units = report["units"]
    assert isinstance(units, dict) and set(units["unreadable"]) == {"0367", "0368"}
    assert stored_keys(database_url) == before
    text = cli.invoke(app, ["secrets", "rotate"], env={"VOCHI_SECRET_KEY": K2})
    assert text.exit_code == 1
    assert "neither VOCHI_SECRET_KEY nor in VOCHI_SECRET_KEY_PREVIOUS" in text.output
    for key in KEYS.values():
        assert key not in text.output


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        ((), {}, "VOCHI_SECRET_KEY"),
        (("--old-key-env", "NOT_SET_ANYWHERE"), {"VOCHI_SECRET_KEY": K1}, "NOT_SET_ANYWHERE"),
        (("--new-key-env", "SHORT_KEY"), {"SHORT_KEY": "short"}, "shorter than 16"),
    ],
)
def test_usage_errors_exit_2_and_change_nothing(
    cli: CliRunner,
    database_url: str,
    args: tuple[str, ...],
    extra_env: dict[str, str],
    message: str,
) -> None:
    before = stored_keys(database_url)
    result = cli.invoke(app, ["secrets", "rotate", *args], env=extra_env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert stored_keys(database_url) == before


def test_new_key_prints_a_usable_key() -> None:
    result = CliRunner().invoke(app, ["secrets", "new-key"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert len(key) >= 40
    assert SecretBox(key).open(SecretBox(key).seal("x", "1"), "1") == "x"
