"""``vochi-crm test-connection`` and ``POST /api/config/{unit}/test`` against the real simulator,
on real PostgreSQL: what passes, what fails with which hint, and that a hanging RetailCRM cannot
hold the command past its deadline."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.admin_helpers import bearer
from tests.simulator_helpers import SimControl
from vochi_cli.main import app
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app
from vochi_daemon.simulator import DEMO_API_KEY

DEMO_CODES = ("151=16", "152=18", "153=19")  # the demo module's additionalCodes




@pytest.fixture
def cli(env: dict[str, str], sim: SimControl) -> CliRunner:
    runner = CliRunner(env={"COLUMNS": "200"})
    steps = [
        ["units", "add", "0367", "--name", "Pilot"],
        ["config", "set", "0367", f"api_url={sim.base_url}", f"api_key={DEMO_API_KEY}"],
        ["config", "map", "0367", *DEMO_CODES],
        ["config", "enable", "0367"],
    ]
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, result.output
    return runner


def check(cli: CliRunner, unit: str = "0367") -> tuple[int, dict[str, Any]]:
    result = cli.invoke(app, ["test-connection", unit, "--json"])
    assert result.stdout, (result.output, result.exception)
    return result.exit_code, json.loads(result.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def by_name(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["checks"] if c["name"] == name)
    return found


def test_all_checks_pass_on_the_demo_account_once_registered(cli: CliRunner) -> None:
    assert cli.invoke(app, ["register", "0367"]).exit_code == 0
    code, report = check(cli)
    assert code == 0, report
    assert report["ok"] is True
    assert set(statuses(report).values()) == {"pass"}
    assert list(statuses(report)) == [
        "address",
        "api_key",
        "api_version",
        "permissions",
        "users",
        "mapping",
        "module",
    ]
    table = cli.invoke(app, ["test-connection", "0367"])
    assert table.exit_code == 0
    assert table.output.count("✓") >= 7
    assert "all checks passed" in table.output
    assert DEMO_API_KEY not in table.output


def test_a_wrong_key_fails_with_a_hint_and_skips_what_depends_on_it(
    cli: CliRunner, sim: SimControl
) -> None:
    cli.invoke(app, ["config", "set", "0367", "api_key=wrong-key-0000-zzzz"])
    code, report = check(cli)
    assert code == 1
    assert statuses(report) == {
        "address": "pass",
        "api_key": "fail",
        "api_version": "skipped",
        "permissions": "skipped",
        "users": "skipped",
        "mapping": "pass",
        "module": "skipped",
    }
    assert "config set 0367 api_key=-" in by_name(report, "api_key")["hint"]
    table = cli.invoke(app, ["test-connection", "0367"])
    assert table.exit_code == 1
    assert "✗" in table.output
    assert "wrong-key-0000-zzzz" not in table.output


def test_restricted_credentials_list_the_missing_methods(cli: CliRunner, sim: SimControl) -> None:
    sim.control(
        account="demo",
        credentials=[
            "/api/integration-modules/{code}",
            "/api/integration-modules/{code}/edit",
            "/api/telephony/call/event",
            "/api/users",
        ],
    )
    cli.invoke(app, ["register", "0367"])
    code, report = check(cli)
    assert code == 1
    permissions = by_name(report, "permissions")
    assert permissions["status"] == "fail"
    assert "/api/telephony/calls/upload" in permissions["detail"]
    assert "/api/telephony/manager" in permissions["detail"]
    assert "/api/users" not in permissions["detail"]
    assert "API access keys" in permissions["hint"]
    assert statuses(report)["users"] == "pass"


def test_missing_inactive_and_shared_users_and_unknown_codes(cli: CliRunner) -> None:
    cli.invoke(app, ["config", "unmap", "0367", "153"])
    cli.invoke(app, ["config", "map", "0367", "154=20", "155=99", "156=16"])
    code, report = check(cli)
    assert code == 1
    users = by_name(report, "users")
    assert users["status"] == "fail"
    assert "154 → user 20 (Olga Former) is not active" in users["detail"]
    assert "155 → user 99 does not exist" in users["detail"]
    mapping = by_name(report, "mapping")
    assert mapping["status"] == "warn"
    assert mapping["ok"] is True
    assert "user 16 has extensions 151, 156" in mapping["detail"]
    module = by_name(report, "module")  # the demo module, never registered by us
    assert module["status"] == "fail"
    assert "codes we do not know: 153 → user 19" in module["detail"]
    assert "clientId is not ours" in module["detail"]
    assert module["hint"] == "register it now: vochi-crm register 0367"


def test_a_hanging_retailcrm_fails_in_time_with_a_hint(cli: CliRunner, sim: SimControl) -> None:
    sim.control(account="demo", fail={"mode": "timeout", "count": None, "hang_seconds": 60})
    started = time.monotonic()
    code, report = check(cli)
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 15  # the client's 2.5 s timeout ends it, far from the 60 s hang
    address = by_name(report, "address")
    assert address["status"] == "fail"
    assert "in time" in address["hint"]
    assert statuses(report)["users"] == "skipped"


def test_the_whole_run_is_bounded_by_its_deadline(
    cli: CliRunner, sim: SimControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCHI_DELIVERY__RETAILCRM_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("VOCHI_RETAILCRM__CHECK_DEADLINE_SECONDS", "2")
    sim.control(
        account="demo",
        fail={"mode": "timeout", "count": None, "hang_seconds": 60, "paths": ["/api/v5/users"]},
    )
    started = time.monotonic()
    code, report = check(cli)
    assert time.monotonic() - started < 15
    assert code == 1
    assert statuses(report)["address"] == "pass"
    users = by_name(report, "users")
    assert users["status"] == "skipped"
    assert "limited to 2 s" in users["detail"]
    assert users["hint"]


def test_an_html_answer_fails_the_address(cli: CliRunner, sim: SimControl) -> None:
    sim.control(account="demo", fail={"mode": "html", "count": None})
    code, report = check(cli)
    assert code == 1
    address = by_name(report, "address")
    assert address["status"] == "fail"
    assert "HTML" in address["detail"]
    assert "api_url" in address["hint"]


def test_unknown_or_unconfigured_units_exit_2_and_change_nothing(cli: CliRunner) -> None:
    unknown = cli.invoke(app, ["test-connection", "0999"])
    assert unknown.exit_code == 2
    assert "unit '0999' does not exist" in unknown.output
    assert cli.invoke(app, ["units", "add", "0368", "--name", "Bare"]).exit_code == 0
    before = cli.invoke(app, ["config", "show", "0368", "--json"]).stdout
    bare = cli.invoke(app, ["test-connection", "0368"])
    assert bare.exit_code == 2
    assert "has no RetailCRM config" in bare.output
    assert cli.invoke(app, ["config", "show", "0368", "--json"]).stdout == before


@pytest.mark.anyio
async def test_the_daemon_route_runs_the_same_checks(env: dict[str, str], sim: SimControl) -> None:
    app_ = create_app(load_settings())
    async with app_.router.lifespan_context(app_):
        runtime = app_.state.runtime
        await runtime.units.add("0367", "Pilot")
        await runtime.units.add("0368", "Bare")
        transport = httpx.ASGITransport(app=app_, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://daemon", headers=bearer(super_=True)
        ) as http:
            config = {"api_url": sim.base_url, "api_key": "wrong-key-0000-zzzz", "enabled": True}
            await http.put("/api/config/0367", json=config)
            answer = await http.post("/api/config/0367/test")
            assert answer.status_code == 200
            body = answer.json()
            assert body["ok"] is False
            assert statuses(body)["api_key"] == "fail"
            assert "wrong-key-0000-zzzz" not in answer.text
            assert (await http.post("/api/config/0999/test")).status_code == 404
            bare = await http.post("/api/config/0368/test")
            assert bare.status_code == 409
            assert "has no RetailCRM config" in bare.json()["detail"]
