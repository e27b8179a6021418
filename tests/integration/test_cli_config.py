"""`vochi-crm units|config|settings|db` through Typer's CliRunner against a real database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vochi_cli.main import app

KEY = "test-key-0000-wxyz"


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(
        app, ["units", "add", "0367", "--name", "Pilot", "--token", "375290000000"]
    )
    assert result.exit_code == 0, result.output
    return runner


def _json(result: object) -> object:
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def test_set_map_show_round_trip_never_prints_the_key(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["config", "set", "0367", "api_url=shop.retailcrm.ru", f"api_key={KEY}", "enabled=yes"]
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and "wxyz" in result.output
    assert cli.invoke(app, ["config", "map", "0367", "151=16", "152=18"]).exit_code == 0
    assert cli.invoke(app, ["config", "unmap", "0367", "152"]).exit_code == 0

    shown = cli.invoke(app, ["config", "show", "0367", "--json"])
    assert shown.exit_code == 0
    body = _json(shown)
    client_id = body["retailcrm"].pop("client_id")  # type: ignore[index]
    assert client_id.startswith("••••") and len(client_id) == 8  # generated at enable, masked
    assert body == {
        "enterprise_number": "0367",
        "retailcrm": {
            "enabled": True,
            "api_url": "https://shop.retailcrm.ru",
            "api_key": "••••wxyz",
            "user_mappings": {"151": 16},
            "last_sync": None,
        },
    }

    # a credentials save does not wipe the mapping
    cli.invoke(app, ["config", "set", "0367", "api_key=another-key-5678"])
    again = _json(cli.invoke(app, ["config", "show", "0367", "--json"]))
    assert again["retailcrm"]["user_mappings"] == {"151": 16}  # type: ignore[index]
    assert cli.invoke(app, ["config", "disable", "0367"]).exit_code == 0
    off = _json(cli.invoke(app, ["config", "show", "0367", "--json"]))
    assert off["retailcrm"]["enabled"] is False  # type: ignore[index]


def test_api_key_can_come_from_stdin(cli: CliRunner) -> None:
    result = cli.invoke(app, ["config", "set", "0367", "api_key=-"], input=KEY + "\n")
    assert result.exit_code == 0, result.output
    shown = _json(cli.invoke(app, ["config", "show", "0367", "--json"]))
    assert shown["retailcrm"]["api_key"] == "••••wxyz"  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["config", "show", "9999"], "unit '9999' does not exist"),
        (["config", "set", "0367", "api_url"], "expected KEY=VALUE"),
        (["config", "set", "0367", "api_url=ftp://x"], "is not an http(s) URL"),
        (["config", "set", "0367", "colour=red"], "unknown setting"),
        (["config", "set", "0367", "enabled=maybe"], "is not a boolean"),
        (["config", "map", "0367", "151=sixteen"], "is not a RetailCRM user id"),
        (["config", "map", "0367", "151"], "expected EXTENSION=USER_ID"),
        (["config", "unmap", "0367", "159"], "not mapped"),
        (["config", "enable", "0367"], "is required to enable"),
        (["config", "export", "--include-secrets"], "needs --output"),
    ],
)
def test_bad_input_names_the_problem_and_exits_2(
    cli: CliRunner, argv: list[str], needle: str
) -> None:
    before = cli.invoke(app, ["config", "show", "0367", "--json"]).stdout
    result = cli.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert cli.invoke(app, ["config", "show", "0367", "--json"]).stdout == before


def test_export_and_import(cli: CliRunner, tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    cli.invoke(app, ["config", "set", "0367", "api_url=a.retailcrm.ru", f"api_key={KEY}"])
    cli.invoke(app, ["config", "map", "0367", "151=16"])
    exported = cli.invoke(app, ["config", "export"])
    assert exported.exit_code == 0 and KEY not in exported.stdout
    backup = folder / "backup.json"
    saved = cli.invoke(app, ["config", "export", "-o", str(backup), "--include-secrets"])
    assert saved.exit_code == 0
    assert KEY in backup.read_text() and backup.stat().st_mode & 0o777 == 0o600

    broken = folder / "broken.json"
    broken.write_text("{not json")
    result = cli.invoke(app, ["config", "import", str(broken)])
    assert result.exit_code == 2 and "is not JSON" in result.output

    cli.invoke(app, ["units", "add", "0368", "--name", "Second"])
    document = json.loads(backup.read_text())
    document["units"][0]["enterprise_number"] = "0368"
    moved = folder / "moved.json"
    moved.write_text(json.dumps(document))
    dry = cli.invoke(app, ["config", "import", str(moved), "--dry-run"])
    assert dry.exit_code == 0 and "nothing written" in dry.output
    assert cli.invoke(app, ["config", "show", "0368", "--json"]).stdout.count("a.retailcrm") == 0
    assert cli.invoke(app, ["config", "import", str(moved)]).exit_code == 0
    shown = _json(cli.invoke(app, ["config", "show", "0368", "--json"]))
    assert shown["retailcrm"]["user_mappings"] == {"151": 16}  # type: ignore[index]


def test_units_list_and_show(cli: CliRunner) -> None:
    listed = _json(cli.invoke(app, ["units", "list", "--json"]))
    assert [u["number"] for u in listed] == ["0367"]  # type: ignore[union-attr, index]
    shown = cli.invoke(app, ["units", "show", "0367"])
    assert shown.exit_code == 0 and "375290000000" in shown.output
    assert cli.invoke(app, ["units", "show", "0999"]).exit_code == 2


def test_settings_shows_sources_and_masks_secrets(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCHI_SECRET_KEY", "super-secret-value-9876")
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "9100")
    result = cli.invoke(app, ["settings", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in _json(result)}  # type: ignore[union-attr]
    assert rows["daemon.port"]["value"] == "9100" and rows["daemon.port"]["source"] == "env"
    assert rows["daemon.host"]["source"] == "default"
    assert rows["secret_key"]["value"] == "••••9876"
    assert "super-secret" not in result.output
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "99999")
    bad = cli.invoke(app, ["settings"])
    assert bad.exit_code == 2 and "VOCHI_DAEMON__PORT" in bad.output


def test_db_migrate_is_idempotent(cli: CliRunner) -> None:
    result = cli.invoke(app, ["db", "migrate", "--json"])
    assert result.exit_code == 0
    assert _json(result) == {"applied": []}


def test_unreachable_database_is_a_runtime_failure(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCHI_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("VOCHI_DATABASE__CONNECT_TIMEOUT_SECONDS", "2")
    result = cli.invoke(app, ["config", "show", "0367"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in result.output
