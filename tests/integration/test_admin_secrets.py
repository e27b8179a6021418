"""API keys at rest and in every output: encrypted in the database with VOCHI_SECRET_KEY, legacy
plaintext rows still read and get sealed by the next save, a warning without a key, and a planted
key that never shows up in any admin page, /stats, the config API, the journal tables, the log
or an error page — after it went through every flow (save, test, mapping and registration,
delivery of a call, replay, a crash)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import anyio
import httpx
import psycopg
import pytest

from tests.admin_helpers import (
    ADMIN,
    SECRET_KEY,
    TOKEN_0367,
    admin_app,
    bearer,
    client,
    form_of,
    sign_in,
)
from tests.scenarios import load_scenario
from tests.simulator_helpers import SimControl
from vochi_crm.retailcrm_config import ConfigChange
from vochi_crm.secretbox import PREFIX
from vochi_daemon.simulator.state import demo_account

pytestmark = pytest.mark.anyio
PLANTED = "planted-Key-7Hq9-9f3c-never-shown"
UNIT = f"{ADMIN}/units/0367"



@pytest.fixture
def sim(simulator: str) -> Iterator[SimControl]:
    control = SimControl(simulator)
    control.reset()
    control.control(**{**demo_account(), "account": "planted", "api_key": PLANTED})
    yield control
    control.close()


def raw_config(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT integrations_config::text FROM enterprises WHERE number = '0367'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def every_table(database_url: str) -> str:
    """Every row of every table we and the journal write, as text."""
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        return "\n".join(
            str(row)
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall()
        )


async def settled(database_url: str, call: str, within: float = 20) -> None:
    """Until no event of ``call`` waits or is being delivered."""
    deadline = time.monotonic() + within
    while True:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT status FROM retailcrm_events WHERE call_unique_id = %s", [call]
            ).fetchall()
        if rows and not {"pending", "processing"} & {r[0] for r in rows}:
            return
        assert time.monotonic() < deadline, rows
        await anyio.sleep(0.1)


async def journaled_error(database_url: str, call: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while True:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT 1 FROM integration_logs WHERE call_unique_id = %s AND status = 'error'",
                [call],
            ).fetchone()
        if row is not None:
            return
        assert time.monotonic() < deadline, "no error journaled"
        await anyio.sleep(0.1)


async def test_keys_are_encrypted_at_rest(
    env: dict[str, str], sim: SimControl, database_url: str
) -> None:
    async with admin_app() as app, client(app) as http:
        await sign_in(http, "0367")
        csrf, version = await form_of(http, f"{UNIT}/connection")
        data = {"csrf_token": csrf, "version": version, "api_url": sim.base_url,
                "api_key": PLANTED}
        assert (await http.post(f"{UNIT}/connection", data=data)).status_code == 303
        assert PLANTED not in raw_config(database_url)
        assert PREFIX in raw_config(database_url)
        # read back through the use-cases: the real key, for RetailCRM only
        assert (await app.state.runtime.configs.get("0367")).retailcrm.api_key == PLANTED
        # a save that does not touch the key keeps its ciphertext (no churn)
        before = json.loads(raw_config(database_url))["retailcrm"]["api_key"]
        await app.state.runtime.configs.update("0367", ConfigChange(map={"151": 16}))
        assert json.loads(raw_config(database_url))["retailcrm"]["api_key"] == before


async def test_a_legacy_plaintext_key_reads_and_is_sealed_by_the_next_save(
    env: dict[str, str], sim: SimControl, database_url: str
) -> None:
    async with admin_app() as app:
        legacy = {"domain": sim.base_url.removeprefix("http://"), "api_key": PLANTED,
                  "enabled": True, "user_extensions": {"16": "151"}}
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE enterprises SET integrations_config = jsonb_build_object('retailcrm', "
                "%s::jsonb) WHERE number = '0367'",
                [json.dumps({**legacy, "domain": sim.base_url})],
            )
        unit = await app.state.runtime.configs.get("0367")
        assert unit.retailcrm.api_key == PLANTED
        assert PLANTED in raw_config(database_url)
        await app.state.runtime.configs.update("0367", ConfigChange(enabled=True))
        assert PLANTED not in raw_config(database_url)
        stored = json.loads(raw_config(database_url))["retailcrm"]
        assert stored["api_key"].startswith(PREFIX)
        assert stored["user_extensions"] == {"16": "151"}  # the legacy keys stay in sync
        assert (await app.state.runtime.configs.get("0367")).retailcrm.api_key == PLANTED


async def test_without_a_secret_key_keys_stay_plaintext_and_the_daemon_warns(
    env: dict[str, str], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with admin_app(secret_key=None) as app:
        await app.state.runtime.configs.update("0367", ConfigChange(api_key=PLANTED))
        assert PLANTED in raw_config(database_url)
    warnings = [r for r in caplog.records if getattr(r, "action", None) == "secrets_plaintext"]
    assert len(warnings) == 1
    assert "VOCHI_SECRET_KEY is not set" in warnings[0].getMessage()


async def test_a_key_sealed_under_a_lost_secret_is_flagged_not_lost(
    env: dict[str, str], database_url: str
) -> None:
    async with admin_app() as app:
        await app.state.runtime.configs.update("0367", ConfigChange(api_key=PLANTED))
    sealed = json.loads(raw_config(database_url))["retailcrm"]["api_key"]
    async with admin_app(secret_key="a-completely-different-secret-key") as app:
        unit = await app.state.runtime.configs.get("0367")
        assert unit.api_key_unreadable and unit.retailcrm.api_key is None
        async with client(app) as http:
            await sign_in(http, "0367")
            page = await http.get(f"{UNIT}/connection")
            assert "не удаётся расшифровать" in page.text
        # an unrelated save keeps the unreadable ciphertext (the old secret may come back)
        await app.state.runtime.configs.update("0367", ConfigChange(map={"151": 16}))
        assert json.loads(raw_config(database_url))["retailcrm"]["api_key"] == sealed
    async with admin_app(secret_key="a-completely-different-secret-key",
                         secret_key_previous=SECRET_KEY) as app:
        assert (await app.state.runtime.configs.get("0367")).retailcrm.api_key == PLANTED


async def test_a_planted_key_appears_nowhere(
    env: dict[str, str],
    sim: SimControl,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with admin_app() as app, client(app) as http:
        await sign_in(http, "0367")

        async def page(path: str, **params: str) -> httpx.Response:
            answer = await http.get(path, params=params)
            seen.append(f"{path} {answer.status_code} {answer.headers}\n{answer.text}")
            return answer

        async def post(path: str, data: dict[str, str]) -> httpx.Response:
            answer = await http.post(path, data=data)
            seen.append(f"POST {path} {answer.status_code} {answer.headers}\n{answer.text}")
            return answer

        # save it, test it, map and register, deliver a call, fail and replay it
        csrf, version = await form_of(http, f"{UNIT}/connection")
        await post(f"{UNIT}/connection", {"csrf_token": csrf, "version": version,
                                          "api_url": sim.base_url, "api_key": PLANTED,
                                          "enabled": "on"})
        await post(f"{UNIT}/connection/test", {"csrf_token": csrf})
        csrf, version = await form_of(http, f"{UNIT}/mapping")
        await post(f"{UNIT}/mapping", {"csrf_token": csrf, "version": version,
                                       "user_16": "151", "user_18": "152", "user_19": "150"})
        sim.control(account="planted", fail={"mode": "invalid_key", "count": 1,
                                             "paths": ["/api/v5/telephony/calls/upload"]})
        scenario = load_scenario("2-1-real", token=TOKEN_0367)
        for event in scenario.events:
            await http.post("/api/events", json={
                "token": TOKEN_0367, "event_type": event.event_type, "payload": event.data})
        # RetailCRM refuses the key once: the unit pauses (its events wait), a save resumes it
        await journaled_error(database_url, scenario.unique_id)
        await app.state.runtime.configs.update("0367", ConfigChange(enabled=True))
        await post(f"{UNIT}/journal/replay", {"csrf_token": csrf, "all": "1"})
        await settled(database_url, scenario.unique_id)

        # a crash inside a RetailCRM call (the key is in the frames' locals)
        from vochi_crm.retailcrm.client import RetailCrmClient

        async def crash(*args: object, **kwargs: object) -> None:
            raise RuntimeError("simulated crash")

        monkeypatch.setattr(RetailCrmClient, "_request", crash)
        crashed = await post(f"{UNIT}/connection/test", {"csrf_token": csrf})
        assert crashed.status_code == 500
        assert "Внутренняя ошибка" in crashed.text and "simulated crash" not in crashed.text
        monkeypatch.undo()

        for tab in ("connection", "mapping", "journal", "diagnostics"):
            for lang in ("ru", "en"):
                assert (await page(f"{UNIT}/{tab}", lang=lang)).status_code == 200
        await page(f"{UNIT}/journal/calls/{scenario.unique_id}")
        await page(f"{UNIT}/journal", status="error")
        await page(f"{ADMIN}/")
        async with client(app, headers=bearer(super_=True)) as api:
            for path in ("/stats", "/health", "/api/config/0367", f"{ADMIN}/units"):
                answer = await api.get(path)
                seen.append(f"{path}\n{answer.text}")
            tested = await api.post("/api/config/0367/test")
            seen.append(tested.text)
        assert "••••hown" in "\n".join(seen)  # the masked form is what they all show
    logs = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in caplog.records
    ) + caplog.text
    assert "simulated crash" in logs  # the crash was logged, with its traceback...
    assert "delivered" in every_table(database_url)  # the call went through
    for where, text in (("pages", "\n".join(seen)), ("log", logs),
                        ("database", every_table(database_url))):
        assert PLANTED not in text, f"the key leaked into the {where}"
