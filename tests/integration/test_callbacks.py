"""RetailCRM's callbacks (``/retailcrm/make-call``, ``/retailcrm/status``) on the real app, real
PostgreSQL, and asyncssh's own SSH server as the unit's PBX."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.e2e.daemons import free_port
from tests.ssh_fakes import FakeAsterisk, InProcessPbx, Keys, make_keys
from vochi_crm.retailcrm_config import change_from_values
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app

pytestmark = pytest.mark.anyio
PHONE = "+375291234567"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@dataclass
class Setup:
    app: FastAPI
    http: httpx.AsyncClient
    pbx: InProcessPbx
    client_id: str

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def configure(self, **values: Any) -> None:
        await self.runtime.configs.update("0367", change_from_values(values))

    async def settle(self) -> None:
        await self.runtime.callbacks.aclose(grace=5)
        await self.runtime.journal_writer.drain()


@pytest.fixture
async def setup(
    env: dict[str, str], keys: Keys, request: pytest.FixtureRequest
) -> AsyncIterator[Setup]:
    asterisk = getattr(request, "param", None) or FakeAsterisk()
    async with InProcessPbx(keys, asterisk) as pbx:
        settings = load_settings(
            ssh={"key_path": keys.client_key, "known_hosts": pbx.known_hosts()},
            smart_redirect={"click_to_call_wait_seconds": 0.5},
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            await runtime.units.add("0367", "Pilot", host="127.0.0.1", ssh_port=pbx.port)
            await runtime.units.add("0368", "Other")
            # RetailCRM is never reached here: the address is a closed local port
            for number in ("0367", "0368"):
                await runtime.configs.update(
                    number,
                    change_from_values(
                        {
                            "api_url": f"http://127.0.0.1:{free_port()}",
                            "api_key": "test-key-0000",
                            "enabled": True,
                            "user_mappings": {"151": 16, "152": 18},
                        }
                    ),
                )
            client_id = (await runtime.units.get("0367")).retailcrm.client_id
            assert client_id and len(client_id) >= 24
            transport = httpx.ASGITransport(app=app, client=("203.0.113.50", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
                yield Setup(app, http, pbx, client_id)


def journal(url: str, event_type: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT enterprise_number, status, error_message, phone_number, internal_extension, "
            "request_data, response_data FROM integration_logs WHERE event_type = %s ORDER BY id",
            (event_type,),
        ).fetchall()


async def test_make_call_originates_on_the_units_pbx(setup: Setup, database_url: str) -> None:
    # RetailCRM is a remote caller: no internal token needed, the clientId is the credential
    response = await setup.http.get(
        "/retailcrm/make-call",
        params={
            "clientId": setup.client_id,
            "code": "151",
            "phone": "+375 29 123-45-67",
            "userId": "16",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "status": "originated", "extension": "151"}
    assert setup.pbx.asterisk.commands == [
        "channel originate Local/151@web-originate application Dial Local/+375291234567@inoffice"
    ]
    await setup.settle()
    [row] = journal(database_url, "make_call")
    assert (row["enterprise_number"], row["status"], row["internal_extension"]) == (
        "0367",
        "success",
        "151",
    )
    assert row["phone_number"] == PHONE
    assert setup.client_id not in str(row)  # the secret never reaches the journal


async def test_extension_from_the_users_mapping_and_post_bodies(setup: Setup) -> None:
    await setup.configure(originate_context="from-crm", outbound_context="city-out")
    form = await setup.http.post(
        "/retailcrm/make-call",
        data={"clientId": setup.client_id, "code": "", "phone": PHONE, "userId": "18"},
    )
    assert form.json()["extension"] == "152"
    as_json = await setup.http.post(
        "/retailcrm/make-call",
        json={"clientId": setup.client_id, "phone": "375291234567", "userId": 16},
    )
    assert as_json.json()["extension"] == "151"
    assert setup.pbx.asterisk.commands == [
        "channel originate Local/152@from-crm application Dial Local/+375291234567@city-out",
        "channel originate Local/151@from-crm application Dial Local/375291234567@city-out",
    ]


@pytest.mark.parametrize(
    "client_id",
    [None, "", "0367", "x" * 32, "' OR 1=1 --"],
    ids=["missing", "empty", "number", "guess", "quote"],
)
async def test_unknown_client_id_is_403_and_nothing_runs(
    setup: Setup, client_id: str | None
) -> None:
    params = {"code": "151", "phone": PHONE, "userId": "16"}
    if client_id is not None:
        params["clientId"] = client_id
    call = await setup.http.get("/retailcrm/make-call", params=params)
    status = await setup.http.get("/retailcrm/status", params={**params, "status": "free"})
    assert (call.status_code, status.status_code) == (403, 403)
    assert call.json()["error"] == "Forbidden"
    assert setup.pbx.asterisk.raw == []


async def test_a_disabled_unit_does_not_authenticate(setup: Setup) -> None:
    await setup.configure(enabled="false")
    response = await setup.http.get(
        "/retailcrm/make-call",
        params={"clientId": setup.client_id, "code": "151", "phone": PHONE, "userId": "16"},
    )
    assert response.status_code == 403
    assert "not enabled" in response.json()["detail"]


async def test_an_unmapped_user_is_400_and_journaled(setup: Setup, database_url: str) -> None:
    response = await setup.http.get(
        "/retailcrm/make-call",
        params={"clientId": setup.client_id, "code": "", "phone": PHONE, "userId": "99"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "No extension configured for user 99"
    unmapped_code = await setup.http.get(
        "/retailcrm/make-call", params={"clientId": setup.client_id, "code": "159", "phone": PHONE}
    )
    assert unmapped_code.status_code == 400
    await setup.settle()
    assert setup.pbx.asterisk.raw == []
    rows = journal(database_url, "make_call")
    assert [r["status"] for r in rows] == ["error", "error"]
    assert rows[0]["error_message"] == "No extension configured for user 99"


@pytest.mark.parametrize(
    "phone", ["", "abc", "+375;reboot", "375$(id)", "1 2", "`id`", "+" + "1" * 30]
)
async def test_a_phone_that_is_not_a_phone_is_422(setup: Setup, phone: str) -> None:
    response = await setup.http.get(
        "/retailcrm/make-call",
        params={"clientId": setup.client_id, "code": "151", "phone": phone, "userId": "16"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "phone"
    assert setup.pbx.asterisk.raw == []


async def test_an_unreachable_pbx_is_reported_to_retailcrm(setup: Setup, database_url: str) -> None:
    await setup.runtime.units.add("0369", "No PBX", host="127.0.0.1", ssh_port=free_port())
    await setup.runtime.configs.update(
        "0369",
        change_from_values(
            {
                "api_url": "http://127.0.0.1:9",
                "api_key": "test-key-0000",
                "enabled": True,
                "user_mappings": {"151": 16},
            }
        ),
    )
    client_id = (await setup.runtime.units.get("0369")).retailcrm.client_id
    response = await setup.http.get(
        "/retailcrm/make-call", params={"clientId": client_id, "code": "151", "phone": PHONE}
    )
    assert response.status_code == 502
    assert response.json()["reason"] == "connect"
    await setup.settle()
    [row] = journal(database_url, "make_call")
    assert (row["enterprise_number"], row["status"]) == ("0369", "error")


@pytest.mark.parametrize("setup", [FakeAsterisk(mode="slow", delay=1.5)], indirect=True)
async def test_a_slow_pbx_gets_202_and_finishes_in_the_background(
    setup: Setup, database_url: str
) -> None:
    started = time.monotonic()
    response = await setup.http.get(
        "/retailcrm/make-call", params={"clientId": setup.client_id, "code": "151", "phone": PHONE}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "in_progress"
    assert time.monotonic() - started < 1.4  # answered before the PBX did
    await setup.settle()
    [row] = journal(database_url, "make_call")
    assert row["status"] == "success"


async def test_status_callback_validates_and_journals(setup: Setup, database_url: str) -> None:
    ok = await setup.http.get(
        "/retailcrm/status",
        params={"clientId": setup.client_id, "userId": "16", "code": "151", "status": "dinner"},
    )
    assert ok.status_code == 200
    assert ok.json() == {"success": True}
    bad = await setup.http.post(
        "/retailcrm/status",
        data={"clientId": setup.client_id, "userId": "x", "status": "asleep", "code": "1;2"},
    )
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["fields"]} == {"userId", "status", "code"}
    await setup.settle()
    [row] = journal(database_url, "user_status")
    assert row["request_data"] == {"userId": 16, "code": "151", "status": "dinner"}
    assert row["response_data"] == {"mapped_extensions": ["151"]}


async def test_the_client_id_index_follows_config_changes(setup: Setup) -> None:
    params = {"clientId": setup.client_id, "userId": "16", "status": "free"}
    assert (await setup.http.get("/retailcrm/status", params=params)).status_code == 200
    await setup.configure(client_id="a-brand-new-client-id-0000000000")
    await anyio.sleep(0.1)
    assert (await setup.http.get("/retailcrm/status", params=params)).status_code == 403
    fresh = {**params, "clientId": "a-brand-new-client-id-0000000000"}
    assert (await setup.http.get("/retailcrm/status", params=fresh)).status_code == 200


async def test_one_client_id_is_never_given_to_two_units(setup: Setup, database_url: str) -> None:
    from vochi_crm.errors import InvalidInput

    # a config write refuses it (config set, the admin API and config import share this path)
    with pytest.raises(InvalidInput) as err:
        await setup.runtime.configs.update(
            "0368", change_from_values({"client_id": setup.client_id})
        )
    assert err.value.fields[0].field == "client_id" and "0367" in err.value.fields[0].message
    other = (await setup.runtime.units.get("0368")).retailcrm.client_id
    assert other and other != setup.client_id
    # a row written around the use-cases (by hand, by another tool) makes make-call refuse both
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE enterprises SET integrations_config = jsonb_set(integrations_config, "
            "'{retailcrm,client_id}', to_jsonb(%s::text)) WHERE number = '0368'",
            (setup.client_id,),
        )
    setup.runtime.callbacks.forget("0368")
    setup.runtime.config_cache.invalidate("0368")
    response = await setup.http.get(
        "/retailcrm/make-call",
        params={"clientId": setup.client_id, "code": "151", "phone": PHONE, "userId": "16"},
    )
    assert response.status_code == 403, response.text
    assert "not unique" in response.text
    await setup.settle()
    assert setup.pbx.asterisk.raw == []
