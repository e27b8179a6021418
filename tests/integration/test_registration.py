"""Module registration on real PostgreSQL: config writes queue it, the real daemon app (in-process,
lifespan included) delivers it to the real simulator, and ``vochi-crm register`` forces it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row
from typer.testing import CliRunner

from tests.admin_helpers import bearer
from tests.simulator_helpers import SimControl
from vochi_cli.main import app as cli_app
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app
from vochi_daemon.simulator import DEMO_API_KEY

T = TypeVar("T")
CODE = "vochi-telephony"




def rows(database_url: str, sql: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def module_events(database_url: str) -> list[dict[str, Any]]:
    return rows(
        database_url,
        "SELECT id, event_type, status, attempts, payload, dedup_key FROM retailcrm_events "
        "WHERE call_unique_id = '__module__' ORDER BY id",
    )


def stored_client_id(database_url: str) -> str | None:
    found = rows(
        database_url,
        "SELECT integrations_config -> 'retailcrm' ->> 'client_id' AS c FROM enterprises "
        "WHERE number = '0367'",
    )
    return found[0]["c"] if found else None


def journal(database_url: str, *types: str) -> list[dict[str, Any]]:
    return rows(
        database_url,
        "SELECT event_type, status, error_message, request_data, response_data::text AS resp "
        "FROM integration_logs WHERE event_type = ANY(%s) ORDER BY id",
        list(types),
    )


def codes(module: dict[str, Any]) -> dict[str, int]:
    telephony = module["integrations"]["telephony"]
    return {c["code"]: int(c["userId"]) for c in telephony["additionalCodes"]}


# -- queueing on config writes (CLI, no daemon) -------------------------------------------------


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    runner = CliRunner(env={"COLUMNS": "200"})
    assert runner.invoke(cli_app, ["units", "add", "0367", "--name", "Pilot"]).exit_code == 0
    return runner


def invoke(cli: CliRunner, *argv: str) -> Any:
    result = cli.invoke(cli_app, list(argv))
    assert result.exit_code == 0, result.output
    return result


def test_config_writes_queue_registrations_once_and_keep_one_client_id(
    cli: CliRunner, database_url: str
) -> None:
    invoke(cli, "config", "set", "0367", "api_url=shop.retailcrm.ru", "api_key=key-0000-abcd")
    assert module_events(database_url) == []  # configured but not enabled: nothing to register
    assert stored_client_id(database_url) is None

    shown = invoke(cli, "config", "enable", "0367", "--json")
    client_id = stored_client_id(database_url)
    assert client_id is not None
    assert len(client_id) >= 32
    assert client_id not in shown.output
    assert json.loads(shown.stdout)["retailcrm"]["client_id"] == "••••" + client_id[-4:]
    events = module_events(database_url)
    assert [(e["event_type"], e["status"], e["payload"]) for e in events] == [
        ("register_module", "pending", {})
    ]

    invoke(cli, "config", "enable", "0367")  # the same save twice: nothing changed, nothing queued
    invoke(cli, "config", "map", "0367", "151=16")
    invoke(cli, "config", "map", "0367", "151=16")
    assert len(module_events(database_url)) == 2
    invoke(cli, "config", "unmap", "0367", "151")  # back to content still waiting: queued once
    assert len(module_events(database_url)) == 2

    invoke(cli, "config", "set", "0367", "api_key=another-key-5678")
    invoke(cli, "config", "disable", "0367")
    assert [e["event_type"] for e in module_events(database_url)] == [
        "register_module",
        "register_module",
        "register_module",
        "delete_module",
    ]
    assert stored_client_id(database_url) == client_id  # generated once, kept by every save
    invoke(cli, "config", "disable", "0367")
    invoke(cli, "config", "set", "0367", "api_key=third-key-9999")  # disabled: nothing to do
    assert len(module_events(database_url)) == 4


def test_moving_to_another_account_retires_the_old_client_id(
    cli: CliRunner, database_url: str
) -> None:
    invoke(cli, "config", "set", "0367", "api_url=shop.retailcrm.ru", "api_key=key-0000-abcd",
           "enabled=true")
    first = stored_client_id(database_url)
    invoke(cli, "config", "set", "0367", "api_key=key-1111-abcd")  # same account: same id
    assert stored_client_id(database_url) == first
    # another account: the old one keeps our module and this id, which must stop working
    invoke(cli, "config", "set", "0367", "api_url=other.retailcrm.ru", "api_key=key-2222-abcd")
    second = stored_client_id(database_url)
    assert first and second and second != first and len(second) >= 32
    # an id given in the same write as the move is the operator's choice and kept
    invoke(cli, "config", "set", "0367", "api_url=third.retailcrm.ru",
           "client_id=operator-chosen-client-id-0123456789")
    assert stored_client_id(database_url) == "operator-chosen-client-id-0123456789"
    assert [e["event_type"] for e in module_events(database_url)] == ["register_module"] * 4
    # each account left behind still has our module: the journal says so, and what to do
    left = journal(database_url, "delete_module")
    assert [(r["status"], r["request_data"]["domain"]) for r in left] == [
        ("error", "https://shop.retailcrm.ru"),
        ("error", "https://other.retailcrm.ru"),
    ]
    assert "moved to another RetailCRM account (https://other.retailcrm.ru)" in left[0][
        "error_message"]
    assert "by hand" in left[0]["error_message"]
    assert "key-0000-abcd" not in str(left) and "key-2222-abcd" not in str(left)


def test_register_command_refuses_unknown_and_unconfigured_units(
    cli: CliRunner, database_url: str
) -> None:
    unknown = cli.invoke(cli_app, ["register", "0999"])
    assert unknown.exit_code == 2
    assert "unit '0999' does not exist" in unknown.output
    bare = cli.invoke(cli_app, ["register", "0367", "--json"])
    assert bare.exit_code == 2
    assert "has no RetailCRM config" in bare.output
    assert module_events(database_url) == []
    assert journal(database_url, "register_module", "delete_module") == []


def test_register_command_pushes_the_module_now(
    cli: CliRunner, database_url: str, sim: SimControl
) -> None:
    invoke(cli, "config", "set", "0367", f"api_url={sim.base_url}", f"api_key={DEMO_API_KEY}")
    invoke(cli, "config", "map", "0367", "151=16", "152=18", "1500=19")
    invoke(cli, "config", "enable", "0367")
    client_id = stored_client_id(database_url)
    assert client_id is not None

    result = invoke(cli, "register", "0367", "--json")
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert body["action"] == "register_module"
    assert body["module"]["clientId"] == "••••" + client_id[-4:]
    assert client_id not in result.output
    module = sim.state("demo")["modules"][CODE]
    assert module["clientId"] == client_id
    assert module["active"] is True
    assert codes(module) == {"151": 16, "152": 18, "1500": 19}
    assert module["integrations"]["telephony"]["makeCallUrl"].endswith("/retailcrm/make-call")
    assert module["logo"].endswith(".svg")

    text = invoke(cli, "register", "0367")
    assert "registered" in text.output
    assert "3 codes" in text.output

    invoke(cli, "config", "disable", "0367")
    off = invoke(cli, "register", "0367", "--json")
    assert json.loads(off.stdout)["action"] == "delete_module"
    module = sim.state("demo")["modules"][CODE]
    assert module["active"] is False
    assert codes(module) == {"151": 16, "152": 18, "1500": 19}

    logged = journal(database_url, "register_module", "delete_module")
    assert [(j["event_type"], j["status"]) for j in logged] == [
        ("register_module", "success"),
        ("register_module", "success"),
        ("delete_module", "success"),
    ]
    assert logged[0]["request_data"]["domain"] == sim.base_url
    assert logged[0]["request_data"]["module"]["clientId"] == "••••" + client_id[-4:]
    assert all(client_id not in json.dumps(j, default=str) for j in logged)


def test_register_command_reports_refusal_with_a_hint(
    cli: CliRunner, database_url: str, sim: SimControl
) -> None:
    invoke(cli, "config", "set", "0367", f"api_url={sim.base_url}", "api_key=wrong-key-0000")
    invoke(cli, "config", "enable", "0367")
    result = cli.invoke(cli_app, ["register", "0367"])
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "hint:" in result.output
    assert "api_key=-" in result.output
    assert "wrong-key-0000" not in result.output
    [logged] = journal(database_url, "register_module")
    assert logged["status"] == "error"


# -- delivery by the daemon (in-process app with its lifespan) ----------------------------------


@pytest.fixture
async def daemon(env: dict[str, str], sim: SimControl) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(load_settings(delivery={"poll_seconds": 0.2}))
    async with app.router.lifespan_context(app):
        await app.state.runtime.units.add("0367", "Pilot")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://daemon", headers=bearer(super_=True)
        ) as http:
            yield http


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 15.0) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await _sleep(0.1)


async def _sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


def sim_module(simulator: str, want: Callable[[dict[str, Any]], bool]) -> Any:
    async def probe() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=simulator, trust_env=False) as http:
            module = (await http.get("/_sim/state/demo")).json()["modules"].get(CODE)
        return module if module is not None and want(module) else None

    return probe


@pytest.mark.anyio
async def test_daemon_registers_updates_and_deactivates_the_module(
    daemon: httpx.AsyncClient, simulator: str, database_url: str
) -> None:
    config = {"api_url": simulator, "api_key": DEMO_API_KEY, "enabled": True}
    assert (await daemon.put("/api/config/0367", json=config)).status_code == 200
    client_id = stored_client_id(database_url)
    assert client_id is not None
    await daemon.patch("/api/config/0367", json={"user_mappings": {"151": 16, "152": 18}})
    module = await eventually(
        sim_module(simulator, lambda m: m.get("clientId") == client_id and len(codes(m)) == 2)
    )
    assert module["active"] is True

    await daemon.patch("/api/config/0367", json={"user_mappings": {"153": 19}})
    module = await eventually(sim_module(simulator, lambda m: len(codes(m)) == 3))
    assert codes(module) == {"151": 16, "152": 18, "153": 19}  # the whole list, every time

    await daemon.put("/api/config/0367", json={"enabled": False})
    module = await eventually(sim_module(simulator, lambda m: m["active"] is False))
    assert codes(module) == {"151": 16, "152": 18, "153": 19}

    async with httpx.AsyncClient(base_url=simulator, trust_env=False) as http:
        posted = (
            await http.get(
                "/_sim/requests", params={"path": f"/api/v5/integration-modules/{CODE}/edit"}
            )
        ).json()["requests"]
    sizes = [
        len(p["form"]["integrationModule"]["integrations"]["telephony"]["additionalCodes"])
        for p in posted
    ]
    assert sizes == sorted(sizes)  # a later registration never posts fewer codes than the mapping
    assert stored_client_id(database_url) == client_id  # registering never changed it

    logo = await daemon.get("/static/vochi-logo.svg")  # the module's logo URL, served by us
    assert logo.status_code == 200
    assert logo.headers["content-type"].startswith("image/svg+xml")
    assert module["logo"] == "http://127.0.0.1:8019/static/vochi-logo.svg"

    events = await eventually(lambda: _all_finished(database_url))
    assert {e["status"] for e in events} == {"delivered"}
    logged = journal(database_url, "register_module", "delete_module")
    assert {j["status"] for j in logged} == {"success"}
    assert logged[-1]["event_type"] == "delete_module"
    assert all(client_id not in json.dumps(j, default=str) for j in logged)


async def _all_finished(database_url: str) -> list[dict[str, Any]] | None:
    events = module_events(database_url)
    return (
        events
        if events and all(e["status"] != "pending" and e["status"] != "processing" for e in events)
        else None
    )


@pytest.mark.anyio
async def test_daemon_retries_a_throttled_registration_until_delivered(
    daemon: httpx.AsyncClient, simulator: str, sim: SimControl, database_url: str
) -> None:
    sim.control(
        account="demo",
        fail={
            "mode": "503",
            "count": 3,
            "retry_after": None,
            "paths": ["/api/v5/integration-modules"],
        },
    )
    config = {
        "api_url": simulator,
        "api_key": DEMO_API_KEY,
        "enabled": True,
        "user_mappings": {"151": 16},
    }
    assert (await daemon.put("/api/config/0367", json=config)).status_code == 200
    client_id = stored_client_id(database_url)
    await eventually(sim_module(simulator, lambda m: m.get("clientId") == client_id))
    [event] = await eventually(lambda: _all_finished(database_url))
    assert event["status"] == "delivered"
    assert event["attempts"] == 4
    logged = journal(database_url, "register_module")
    assert [j["status"] for j in logged] == ["error", "error", "error", "success"]
    assert "503" in logged[0]["error_message"] or "throttling" in logged[0]["error_message"]


@pytest.mark.anyio
async def test_deleting_an_enabled_config_journals_why_the_module_stays(
    daemon: httpx.AsyncClient, simulator: str, database_url: str
) -> None:
    config = {"api_url": simulator, "api_key": DEMO_API_KEY, "enabled": True}
    await daemon.put("/api/config/0367", json=config)
    client_id = stored_client_id(database_url)
    await eventually(sim_module(simulator, lambda m: m.get("clientId") == client_id))
    assert (await daemon.delete("/api/config/0367")).status_code == 204

    async def deleted() -> list[dict[str, Any]] | None:
        found = [e for e in module_events(database_url) if e["event_type"] == "delete_module"]
        return found if found and found[0]["status"] == "failed" else None

    await eventually(deleted)
    [logged] = journal(database_url, "delete_module")
    assert logged["status"] == "error"
    assert "deactivate 'vochi-telephony' in RetailCRM" in logged["error_message"]


@pytest.mark.anyio
async def test_a_refused_key_waits_for_the_fix_and_then_registers(
    daemon: httpx.AsyncClient, simulator: str, database_url: str
) -> None:
    config = {"api_url": simulator, "api_key": "wrong-key-0000-zzzz", "enabled": True}
    await daemon.put("/api/config/0367", json=config)

    async def paused() -> list[dict[str, Any]] | None:
        events = module_events(database_url)
        waiting = (
            events and events[0]["status"] == "pending" and journal(database_url, "register_module")
        )
        return events if waiting else None

    [event] = await eventually(paused)
    assert event["attempts"] == 0  # "the unit must act": the attempt is not burned
    [refused] = journal(database_url, "register_module")
    assert refused["status"] == "error"
    assert "wrong-key-0000-zzzz" not in json.dumps(refused, default=str)

    await daemon.put("/api/config/0367", json={"api_key": DEMO_API_KEY})  # the fix
    client_id = stored_client_id(database_url)
    await eventually(sim_module(simulator, lambda m: m.get("clientId") == client_id))
    events = await eventually(lambda: _all_finished(database_url))
    assert {e["status"] for e in events} == {"delivered"}
