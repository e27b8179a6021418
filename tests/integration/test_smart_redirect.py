"""``POST /api/smart-redirect`` on the real app (lifespan included), real PostgreSQL, the RetailCRM
simulator over real sockets, and asyncssh's own SSH server as the unit's PBX."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.simulator_helpers import SimControl
from tests.ssh_fakes import FakeAsterisk, InProcessPbx, Keys, make_keys
from vochi_crm.retailcrm_config import change_from_values
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app
from vochi_daemon.simulator import DEMO_API_KEY
from vochi_daemon.simulator.state import demo_account

pytestmark = pytest.mark.anyio
TOKEN = "375290000000"
INTERNAL = "internal-test-token"
KNOWN = "PJSIP/trunk-0000002a"


def crm_module() -> dict[str, Any]:
    """Another telephony module in the account, whose codes RetailCRM answers with: 16 → 151 (ours
    too), 18 → 777 and 19 → 153 (not in our mapping: must never come back)."""
    return {
        "code": "other-telephony",
        "active": True,
        "name": "Other",
        "integrations": {
            "telephony": {
                "additionalCodes": [
                    {"userId": 16, "code": "151"},
                    {"userId": 18, "code": "777"},
                    {"userId": 19, "code": "153"},
                ]
            }
        },
    }



@pytest.fixture
def sim(simulator: str) -> Iterator[SimControl]:
    control = SimControl(simulator)
    control.reset()
    demo = demo_account()
    control.control(
        account="demo",
        modules=[crm_module()],
        customers=[
            *demo["customers"],
            {
                "id": 104,
                "firstName": "Ann",
                "lastName": "Lee",
                "managerId": 18,
                "phones": ["+375290000104"],
            },
        ],
        rate_limits=None,
    )
    yield control
    control.close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@dataclass
class Daemon:
    app: FastAPI
    http: httpx.AsyncClient
    pbx: InProcessPbx
    sim: SimControl

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def ask(self, **body: Any) -> httpx.Response:
        return await self.http.post(
            "/api/smart-redirect", json={"enterprise_number": "0367", **body}
        )

    async def configure(self, **values: Any) -> None:
        await configure(self.runtime, values)

    async def settle(self) -> None:
        await self.runtime.smart_redirect.wait_background()
        await self.runtime.journal_writer.drain()


async def configure(runtime: Any, values: dict[str, Any]) -> None:
    """Write the config, then wait for this write's own NOTIFY echo (it invalidates the caches
    once more, a moment later: a test must not read a cached answer just before that)."""
    metrics = runtime.config_cache.metrics
    before = metrics.invalidations
    await runtime.configs.update("0367", change_from_values(values))
    deadline = time.monotonic() + 5
    while metrics.invalidations < before + 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.01)


@pytest.fixture
async def daemon(env: dict[str, str], sim: SimControl, keys: Keys) -> AsyncIterator[Daemon]:
    async with InProcessPbx(keys, FakeAsterisk(channels={KNOWN})) as pbx:
        settings = load_settings(
            internal_token=INTERNAL,
            ssh={"key_path": keys.client_key, "known_hosts": pbx.known_hosts()},
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime = app.state.runtime
            await runtime.units.add(
                "0367", "Pilot", token=TOKEN, host="127.0.0.1", ssh_port=pbx.port
            )
            await configure(
                runtime,
                {
                    "api_url": sim.base_url,
                    "api_key": DEMO_API_KEY,
                    "enabled": True,
                    "user_mappings": {"151": 16, "152": 18},
                },
            )
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
                yield Daemon(app, http, pbx, sim)


def journal(url: str, event_type: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT status, error_message, call_unique_id, phone_number, internal_extension, "
            "request_data, response_data FROM integration_logs WHERE event_type = %s ORDER BY id",
            (event_type,),
        ).fetchall()


async def test_crm_then_cache_then_invalidated_by_a_config_change(
    daemon: Daemon, database_url: str
) -> None:
    first = await daemon.ask(phone="+375 29 123-45-67", unique_id="1757765248.1")
    assert first.status_code == 200, first.text
    timing = {"elapsed_ms": first.json()["elapsed_ms"], "crm_ms": first.json()["crm_ms"]}
    assert 0 < timing["crm_ms"] < timing["elapsed_ms"]  # RetailCRM's part of our answer time
    assert first.json() == {
        "extension": "151",
        "manager_id": 16,
        "customer_name": "Klim Maria",
        "source": "crm",
        "reason": "manager_code",
        **timing,
        "redirect": "not_requested",
    }
    second = (await daemon.ask(phone="375291234567")).json()
    assert (second["source"], second["extension"], second["crm_ms"]) == ("cache", "151", None)
    lookups = daemon.sim.requests(path="/api/v5/telephony/manager")
    assert len(lookups) == 1  # the second answer did not ask RetailCRM

    # the unit's mapping changes: the cached answer is dropped at once
    await daemon.configure(user_mappings={"155": 16, "152": 18})
    third = (await daemon.ask(phone="+375291234567")).json()
    assert (third["source"], third["extension"], third["reason"]) == (
        "crm",
        "155",
        "manager_mapping",
    )

    await daemon.settle()
    rows = journal(database_url, "manager_lookup")
    assert [r["response_data"]["source"] for r in rows] == ["crm", "cache", "crm"]
    assert rows[0]["status"] == "success"
    assert rows[0]["call_unique_id"] == "1757765248.1"
    assert rows[0]["phone_number"] == "+375291234567"
    assert rows[0]["internal_extension"] == "151"
    assert rows[0]["response_data"]["reason"] == "manager_code"


async def test_only_the_units_own_extensions_are_returned(daemon: Daemon) -> None:
    # RetailCRM knows manager 18 as code 777: ours is 152
    other = (await daemon.ask(phone="+375290000104")).json()
    assert (other["extension"], other["reason"]) == ("152", "manager_mapping")
    # manager 19 (code 153 in RetailCRM) is not in our mapping at all
    unmapped = (await daemon.ask(phone="375447654321")).json()
    assert unmapped | {"elapsed_ms": 0, "crm_ms": 0} == {
        "extension": None,
        "manager_id": 19,
        "customer_name": "Zhuk Pavel",
        "source": "fallback",
        "reason": "manager_not_mapped",
        "elapsed_ms": 0,
        "crm_ms": 0,
        "redirect": "not_requested",
    }
    nobody = (await daemon.ask(phone="+375255550000")).json()
    assert (nobody["extension"], nobody["reason"], nobody["customer_name"]) == (
        None,
        "no_manager",
        "Assigned Nobody",
    )
    stranger = (await daemon.ask(phone="+375330000000")).json()
    assert (stranger["reason"], stranger["customer_name"]) == ("no_manager", None)

    await daemon.configure(fallback_extension="152")
    fallback = (await daemon.ask(phone="375447654321")).json()
    assert (fallback["extension"], fallback["source"], fallback["reason"]) == (
        "152",
        "fallback",
        "manager_not_mapped",
    )


async def test_the_deadline_holds_when_retailcrm_hangs(daemon: Daemon, database_url: str) -> None:
    await daemon.configure(lookup_deadline_ms="300", fallback_extension="152")
    daemon.sim.control(account="demo", fail={"mode": "timeout", "hang_seconds": 20})
    started = time.monotonic()
    answer = (await daemon.ask(phone="+375291234567", unique_id="1.2")).json()
    took = time.monotonic() - started
    assert (answer["source"], answer["reason"], answer["extension"]) == (
        "fallback",
        "crm_timeout",
        "152",
    )
    assert 300 <= answer["elapsed_ms"] < 1000
    assert took < 2.0  # the simulator would have held the request for 20 s
    await daemon.settle()
    row = journal(database_url, "manager_lookup")[-1]
    assert (row["status"], row["error_message"]) == ("error", "crm_timeout")

    # the abandoned lookup ends at the client's own timeout (2.5 s) as a failure: never served,
    # the next call asks RetailCRM afresh
    daemon.sim.control(account="demo", fail=None)
    await anyio.sleep(2.8)
    again = (await daemon.ask(phone="+375291234567")).json()
    assert (again["source"], again["extension"]) == ("crm", "151")


async def test_a_failing_account_opens_the_breaker(daemon: Daemon) -> None:
    daemon.sim.control(account="demo", fail={"mode": "500"})
    reasons = [(await daemon.ask(phone=f"+37529000000{i}")).json()["reason"] for i in range(7)]
    assert reasons[0].startswith("crm_transient")
    assert reasons[-1] == "crm_breaker_open"
    asked = len(daemon.sim.requests(path="/api/v5/telephony/manager"))
    assert asked < 7  # once open, RetailCRM is not asked
    stats = daemon.runtime.smart_redirect.stats()
    assert stats["reasons"]["crm_breaker_open"] >= 1


async def test_redirect_runs_only_when_enabled_and_a_channel_is_given(
    daemon: Daemon, database_url: str
) -> None:
    off = (await daemon.ask(phone="+375291234567", channel=KNOWN)).json()
    assert off["redirect"] == "disabled"
    await daemon.configure(redirect_enabled="true")
    no_channel = (await daemon.ask(phone="+375291234567")).json()
    assert no_channel["redirect"] == "not_requested"
    await daemon.settle()
    assert daemon.pbx.asterisk.commands == []

    on = (await daemon.ask(phone="+375291234567", channel=KNOWN, unique_id="1.7")).json()
    assert (on["redirect"], on["extension"]) == ("scheduled", "151")
    await daemon.configure(redirect_context="from-manager")
    gone = (await daemon.ask(phone="+375291234567", channel="SIP/151-0000beef")).json()
    assert gone["redirect"] == "scheduled"
    nobody = (await daemon.ask(phone="+375255550000", channel=KNOWN)).json()
    assert nobody["redirect"] == "no_extension"
    await daemon.settle()

    assert daemon.pbx.asterisk.commands == [
        f"channel redirect {KNOWN} inoffice,151,1",
        "channel redirect SIP/151-0000beef from-manager,151,1",
    ]
    rows = journal(database_url, "channel_redirect")
    assert [(r["status"], r["internal_extension"]) for r in rows] == [
        ("success", "151"),
        ("error", "151"),
    ]
    assert rows[0]["call_unique_id"] == "1.7"
    assert rows[1]["response_data"]["reason"] == "channel_not_found"
    assert "not found" in rows[1]["error_message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"phone": "not a phone"}, 422, "phone"),
        ({"phone": "12"}, 422, "phone"),
        ({"phone": "+375291234567", "channel": "SIP/x;rm -rf /"}, 422, "channel"),
        ({"phone": "+375291234567", "channel": "SIP/x$(reboot)"}, 422, "channel"),
        ({"phone": "+375291234567", "channel": "SIP/x`id`"}, 422, "channel"),
        ({"phone": "+375291234567", "channel": "SIP/a b"}, 422, "channel"),
        ({"phone": "+375291234567", "channel": "SIP/a'b"}, 422, "channel"),
        ({"phone": "+375291234567", "channel": "SIP/a\nb"}, 422, "channel"),
        ({"enterprise_number": "0999", "phone": "+375291234567"}, 404, None),
        ({"enterprise_number": None, "token": "nobody", "phone": "+375291234567"}, 404, None),
        ({"enterprise_number": None, "phone": "+375291234567"}, 422, "enterprise_number"),
    ],
)
async def test_bad_input_is_refused_and_nothing_runs(
    daemon: Daemon, body: dict[str, Any], status: int, field: str | None
) -> None:
    await daemon.configure(redirect_enabled="true")
    response = await daemon.ask(**body)
    assert response.status_code == status, response.text
    if field is not None:
        assert field in [f["field"] for f in response.json()["fields"]]
    await daemon.settle()
    assert daemon.pbx.asterisk.raw == []


async def test_by_token_and_for_a_unit_without_the_integration(daemon: Daemon) -> None:
    by_token = await daemon.http.post(
        "/api/smart-redirect", json={"token": TOKEN, "phone": "+375291234567"}
    )
    assert by_token.json()["extension"] == "151"
    await daemon.configure(enabled="false")
    disabled = (await daemon.ask(phone="+375291234567")).json()
    assert (disabled["source"], disabled["reason"]) == ("fallback", "integration_disabled")


async def test_internal_only_and_proxy_headers(daemon: Daemon) -> None:
    app = daemon.app
    body = {"enterprise_number": "0367", "phone": "+375291234567"}

    async def post(client: str, **headers: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
            return (await http.post("/api/smart-redirect", json=body, headers=headers)).status_code

    assert await post("203.0.113.9") == 403
    assert await post("203.0.113.9", **{"X-Internal-Token": INTERNAL}) == 200
    # nginx (trusted, on loopback) relaying a remote caller: not loopback
    assert await post("127.0.0.1", **{"X-Forwarded-For": "203.0.113.9"}) == 403
    assert await post("127.0.0.1", **{"X-Real-IP": "203.0.113.9"}) == 403
    # a remote caller claiming to be loopback: its own header is left of nginx's entry
    assert await post("127.0.0.1", **{"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}) == 403
    # an untrusted peer's forwarding headers are ignored
    assert await post("203.0.113.9", **{"X-Forwarded-For": "127.0.0.1"}) == 403


async def test_the_route_is_documented(daemon: Daemon) -> None:
    spec = (await daemon.http.get("/api/openapi.json")).json()
    assert "post" in spec["paths"]["/api/smart-redirect"]
    assert {"get", "post"} <= set(spec["paths"]["/retailcrm/make-call"])


def test_keys_fixture_writes_usable_files(keys: Keys) -> None:
    assert Path(keys.client_key).read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
