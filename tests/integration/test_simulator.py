"""The real RetailCRM client against the real simulator, served by uvicorn on 127.0.0.1.

One server per module (a free loopback port); every test starts from ``POST /_sim/reset``.
Accounts: ``acme`` and ``globex`` (two keys, to show state and limits are per account).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.simulator_helpers import SimControl, running_simulator
from vochi_crm.retailcrm import (
    RetailCrmClient,
    RetailCrmError,
    RetailCrmPermanent,
    RetailCrmTransient,
    RetailCrmUnitMustAct,
    classify,
)
from vochi_daemon.simulator import DEMO_API_KEY, create_simulator_app

pytestmark = pytest.mark.anyio

ACME_KEY = "test-key-0001"
GLOBEX_KEY = "test-key-0002"
MODULE_CODE = "vochi-telephony"
USERS = [
    {"id": 16, "firstName": "Ivan", "lastName": "Petrov"},
    {"id": 18, "firstName": "Anna", "lastName": "Sidorova", "status": "busy"},
    {"id": 19, "firstName": "Oleg", "lastName": "Ivanov", "active": False, "isManager": False},
]
CUSTOMERS = [
    {"id": 501, "firstName": "Maria", "managerId": 16, "phones": ["+375 29 123-45-67"]},
    {"id": 502, "firstName": "Pavel", "managerId": 18, "phones": [{"number": "375447654321"}]},
]


def module(codes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "code": MODULE_CODE, "active": True, "name": "Vochi-CRM",
        "logo": "https://crm.example.test/static/vochi_logo.svg",
        "baseUrl": "https://crm.example.test", "clientId": "cid-fake-0001",
        "integrations": {"telephony": {
            "makeCallUrl": "https://crm.example.test/retailcrm/make-call",
            "changeUserStatusUrl": "https://crm.example.test/retailcrm/status",
            "allowEdit": False, "inputEventSupported": True, "outputEventSupported": True,
            "hangupEventSupported": True, "additionalCodes": codes, "externalPhones": [],
        }},
        **extra,
    }


ACCOUNTS = [
    {"account": "acme", "api_key": ACME_KEY, "users": USERS, "customers": CUSTOMERS,
     "modules": [module([{"userId": 16, "code": "151"}, {"userId": 18, "code": "152"}])]},
    {"account": "globex", "api_key": GLOBEX_KEY, "users": USERS[:1]},
]


def call(external_id: str, **extra: Any) -> dict[str, Any]:
    return {"date": "2025-09-13 15:07:28", "type": "in", "phone": "375291234567", "code": "151",
            "result": "answered", "duration": 42, "externalId": external_id, **extra}


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with running_simulator(create_simulator_app(ACCOUNTS, seed_demo=True)) as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> Iterator[SimControl]:
    control = SimControl(sim_url)
    control.reset()
    yield control
    control.close()


@pytest.fixture
async def acme(sim: SimControl) -> AsyncIterator[RetailCrmClient]:
    async with RetailCrmClient(sim.base_url, ACME_KEY, timeout=2.5) as crm:
        yield crm


# -- every endpoint, round trip --------------------------------------------------------------------


async def test_service_methods(acme: RetailCrmClient) -> None:
    versions = await acme.api_versions()
    assert "5.0" in versions.data["versions"]
    creds = await acme.credentials()
    assert "/api/telephony/calls/upload" in creds.data["credentials"]
    assert creds.data["sitesAvailable"] == ["acme-store"]


async def test_users_list_filters_and_status(acme: RetailCrmClient, sim: SimControl) -> None:
    everyone = await acme.users(limit=20)
    assert [u["id"] for u in everyone.data["users"]] == [16, 18, 19]
    assert everyone.data["pagination"]["totalCount"] == 3
    active = await acme.users(limit=50, filters={"active": True, "isManager": True})
    assert [u["id"] for u in active.data["users"]] == [16, 18]
    one = await acme.user(18)
    assert one.data["user"]["lastName"] == "Sidorova"
    await acme.user_status(16, "dinner")
    assert (await acme.user(16)).data["user"]["status"] == "dinner"
    with pytest.raises(RetailCrmPermanent) as missing:
        await acme.user(999)
    assert (missing.value.reason, missing.value.error_msg) == ("not_found", "Not found")
    journaled = sim.requests(account="acme", path="/api/v5/users")
    assert journaled[1]["query"] == {"page": "1", "limit": "50", "filter[active]": "1",
                                     "filter[isManager]": "1"}


async def test_call_event_reports_unknown_codes(acme: RetailCrmClient, sim: SimControl) -> None:
    ring = await acme.call_event({"phone": "+375291234567", "type": "in", "codes": ["151", "999"],
                                  "userIds": [16, 77], "callExternalId": "1757765248.0"})
    assert ring.data == {"success": True, "notExistCodes": ["999"], "notExistUsers": [77]}
    hangup = await acme.call_event({"phone": "+375291234567", "type": "hangup", "codes": ["151"],
                                    "callExternalId": "1757765248.0",
                                    "hangupStatus": "no answered"})
    assert hangup.data == {"success": True}
    events = sim.state("acme")["events"]
    assert [e["type"] for e in events] == ["in", "hangup"]
    assert events[1]["hangupStatus"] == "no answered"


async def test_calls_upload_deduplicates_by_external_id(
    acme: RetailCrmClient, sim: SimControl
) -> None:
    first = await acme.calls_upload([call("a.1"), call("a.2", result="no answer", duration=0)])
    assert first.data == {"success": True, "processedCallsCount": 2, "duplicateCalls": []}
    again = await acme.calls_upload([call("a.2"), call("a.3"), call("a.3")])
    assert again.data["processedCallsCount"] == 1
    assert again.data["duplicateCalls"] == ["a.2", "a.3"]
    stored = sim.state("acme")["calls"]
    assert [c["externalId"] for c in stored] == ["a.1", "a.2", "a.3"]
    assert stored[1]["result"] == "no answer"  # the first upload wins
    assert sim.state("globex")["calls"] == []  # accounts are separate


async def test_manager_lookup(acme: RetailCrmClient, sim: SimControl) -> None:
    found = await acme.manager("80291234567", details=True, ignore_status=True)
    assert found.data["manager"] == {"id": 16, "firstName": "Ivan", "lastName": "Petrov",
                                     "patronymic": None, "email": "user16@example.test",
                                     "code": "151"}
    assert found.data["customer"]["id"] == 501
    assert "customerLink" in found.data["links"]
    # Anna is busy: only returned when the status is ignored
    busy = await acme.manager("+375447654321", details=False, ignore_status=False)
    assert busy.data == {"success": True}
    assert (await acme.manager("+375447654321")).data["manager"]["code"] == "152"
    nobody = await acme.manager("+375330000000", details=True)
    assert "manager" not in nobody.data and "customer" not in nobody.data
    assert nobody.data["success"] is True and "newCustomerLink" in nobody.data["links"]
    sent = sim.requests(path="/api/v5/telephony/manager")
    assert sent[0]["query"] == {"phone": "80291234567", "details": "1", "ignoreStatus": "1"}
    assert sent[1]["query"]["ignoreStatus"] == "0"


async def test_integration_module_edit_replaces_telephony_block(
    acme: RetailCrmClient, sim: SimControl
) -> None:
    got = await acme.integration_module_get(MODULE_CODE)
    assert got.data["integrationModule"]["integrations"]["telephony"]["additionalCodes"][0] == {
        "userId": 16, "code": "151"
    }
    edit = await acme.integration_module_edit(
        MODULE_CODE, module([{"userId": 18, "code": "160"}, {"userId": 42, "code": "161"}])
    )
    assert edit.data == {"success": True, "info": {"notExistUsersIds": [42]}}
    block = (await acme.integration_module_get(MODULE_CODE)).data["integrationModule"][
        "integrations"]["telephony"]
    assert block["additionalCodes"] == [{"userId": 18, "code": "160"},
                                        {"userId": 42, "code": "161"}]
    # the new codes drive manager.code and notExistCodes at once
    assert (await acme.manager("+375447654321")).data["manager"]["code"] == "160"
    ring = await acme.call_event({"phone": "1", "type": "out", "codes": ["151"]})
    assert ring.data["notExistCodes"] == ["151"]
    with pytest.raises(RetailCrmPermanent) as missing:
        await acme.integration_module_get("other-module")
    assert missing.value.reason == "not_found"


async def test_module_validation(acme: RetailCrmClient) -> None:
    with pytest.raises(RetailCrmPermanent) as bad:
        await acme.integration_module_edit(
            "new-module", {"code": "new-module", "name": "X", "baseUrl": "",
                           "logo": "https://x.test/logo.png", "integrationCode": "vochi"}
        )
    assert bad.value.errors == {
        "code": "Code prefix must match integrationCode",
        "baseUrl": "This value should not be blank.",
        "logo": "Logo image must be svg",
    }


# -- errors the unit must act on -------------------------------------------------------------------


async def test_wrong_key_is_unit_must_act(sim: SimControl) -> None:
    async with RetailCrmClient(sim.base_url, "test-key-wrong-9999") as crm:
        with pytest.raises(RetailCrmUnitMustAct) as info:
            await crm.call_event({"phone": "1", "type": "in", "codes": ["151"]})
    assert (info.value.reason, info.value.status) == ("invalid_key", 403)
    assert info.value.error_msg == 'Wrong "apiKey" value.'
    entry = sim.requests()[-1]
    assert (entry["account"], entry["status"]) == (None, 403)
    assert "test-key-wrong-9999" not in json.dumps(sim.requests())


async def test_missing_permission_is_access_denied(acme: RetailCrmClient, sim: SimControl) -> None:
    granted = ["/api/telephony/call/event", "/api/telephony/calls/upload", "/api/users"]
    sim.control(account="acme", credentials=granted)
    assert (await acme.credentials()).data["credentials"] == granted
    await acme.users()
    with pytest.raises(RetailCrmUnitMustAct) as info:
        await acme.manager("+375291234567")
    assert (info.value.reason, info.value.error_msg) == ("access_denied", "Access denied.")


async def test_telephony_not_enabled(sim: SimControl) -> None:
    async with RetailCrmClient(sim.base_url, GLOBEX_KEY) as crm:
        with pytest.raises(RetailCrmUnitMustAct) as event:
            await crm.call_event({"phone": "1", "type": "in", "codes": ["151"]})
        with pytest.raises(RetailCrmUnitMustAct) as upload:
            await crm.calls_upload([call("g.1")])
    assert event.value.reason == upload.value.reason == "telephony_disabled"


async def test_injected_html_means_account_missing(acme: RetailCrmClient, sim: SimControl) -> None:
    sim.control(account="acme", fail={"mode": "html", "count": 2})
    with pytest.raises(RetailCrmUnitMustAct) as post:
        await acme.calls_upload([call("h.1")])
    with pytest.raises(RetailCrmUnitMustAct) as get:
        await acme.users()
    assert (post.value.status, post.value.reason) == (405, "account_missing")
    assert (get.value.status, get.value.reason) == (404, "account_missing")
    assert (await acme.users()).status == 200  # count exhausted


async def test_injected_invalid_key(acme: RetailCrmClient, sim: SimControl) -> None:
    sim.control(account="acme", fail={"mode": "invalid_key", "count": None,
                                      "paths": "/api/v5/telephony/"})
    with pytest.raises(RetailCrmUnitMustAct) as info:
        await acme.call_event({"phone": "1", "type": "in", "codes": ["151"]})
    assert info.value.reason == "invalid_key"
    assert (await acme.users()).status == 200  # other paths unaffected


# -- transient and permanent failures --------------------------------------------------------------


async def test_rate_limit_answers_503_with_retry_after(
    acme: RetailCrmClient, sim: SimControl
) -> None:
    async def outcome(coro: Any) -> str:
        try:
            await coro
        except RetailCrmTransient as exc:
            return f"throttled {exc.status} {exc.retry_after}"
        return "ok"

    results: list[str] = []

    async def run(coro: Any) -> None:
        results.append(await outcome(coro))

    async with anyio.create_task_group() as tg:
        for _ in range(14):
            tg.start_soon(run, acme.users())
    assert (results.count("ok"), results.count("throttled 503 1.0")) == (10, 4)
    # telephony has its own, larger bucket
    results.clear()
    async with anyio.create_task_group() as tg:
        for n in range(42):
            tg.start_soon(run, acme.call_event({"phone": str(n), "type": "in", "codes": ["151"]}))
    assert (results.count("ok"), results.count("throttled 503 1.0")) == (40, 2)
    # per key: another account is not throttled by acme's traffic
    async with RetailCrmClient(sim.base_url, GLOBEX_KEY) as globex:
        assert (await globex.users()).status == 200
    assert sim.requests(account="acme")[-1]["status"] == 503


async def test_injected_timeout_is_transient_within_the_client_timeout(sim: SimControl) -> None:
    sim.control(account="acme", fail={"mode": "timeout", "count": 1, "hang_seconds": 10})
    async with RetailCrmClient(sim.base_url, ACME_KEY, timeout=0.3) as crm:
        started = time.perf_counter()
        with pytest.raises(RetailCrmTransient) as info:
            await crm.calls_upload([call("t.1")])
        waited = time.perf_counter() - started
        assert info.value.reason == "timeout"
        assert waited < 2.0
        assert info.value.exchange is not None and info.value.exchange.status is None
        assert (await crm.api_versions()).status == 200  # the next call goes through


async def test_latency_injection(sim: SimControl) -> None:
    sim.control(account="acme", latency_ms=150)
    async with RetailCrmClient(sim.base_url, ACME_KEY, timeout=2.5) as crm:
        result = await crm.api_versions()
        assert result.elapsed_ms >= 150
    async with RetailCrmClient(sim.base_url, ACME_KEY, timeout=0.05) as crm:
        with pytest.raises(RetailCrmTransient) as info:
            await crm.api_versions()
        assert info.value.reason == "timeout"


@pytest.mark.parametrize(
    ("mode", "cls", "reason"),
    [
        ("503", RetailCrmTransient, "http_503"),
        ("429", RetailCrmTransient, "http_429"),
        ("500", RetailCrmTransient, "http_500"),
        ("garbage", RetailCrmPermanent, "bad_response"),
    ],
)
async def test_injected_failures(
    acme: RetailCrmClient, sim: SimControl, mode: str, cls: type[RetailCrmError], reason: str
) -> None:
    sim.control(account="acme", fail={"mode": mode, "count": 1})
    with pytest.raises(cls) as info:
        await acme.calls_upload([call("f.1")])
    assert info.value.reason == reason
    retried = await acme.calls_upload([call("f.1")])
    assert retried.data["processedCallsCount"] == 1


@pytest.mark.parametrize(
    ("calls", "field"),
    [
        ([call("v.1", result="missed")], "calls[0].result"),
        ([call("v.1"), call("v.2", result="no answered")], "calls[1].result"),
        ([call("v.1", date="2025-09-13T15:07:28")], "calls[0].date"),
        ([call("v.1", date="2025-02-30 10:00:00")], "calls[0].date"),
        ([call("v.1", type="internal")], "calls[0].type"),
        ([call("v.1", duration=-1)], "calls[0].duration"),
        ([call(f"v.{n}") for n in range(51)], "calls"),
    ],
)
async def test_upload_validation_names_the_field(
    acme: RetailCrmClient, sim: SimControl, calls: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(RetailCrmPermanent) as info:
        await acme.calls_upload(calls)
    assert info.value.reason == "validation"
    assert isinstance(info.value.errors, dict) and field in info.value.errors
    assert field in str(info.value)
    assert sim.state("acme")["calls"] == []  # nothing half-stored


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"phone": "1", "type": "ring", "codes": ["151"]}, "type"),
        ({"phone": "1", "type": "hangup", "codes": ["151"], "hangupStatus": "no answer"},
         "hangupStatus"),
        ({"phone": "1", "type": "hangup", "codes": ["151"], "hangupStatus": "missed"},
         "hangupStatus"),
        ({"phone": "1", "type": "hangup", "codes": ["151"]}, "hangupStatus"),
        ({"phone": "", "type": "in", "codes": ["151"]}, "phone"),
        ({"phone": "1", "type": "in"}, "codes"),
    ],
)
async def test_event_validation_names_the_field(
    acme: RetailCrmClient, event: dict[str, Any], field: str
) -> None:
    with pytest.raises(RetailCrmPermanent) as info:
        await acme.call_event(event)
    assert info.value.errors is not None and field in info.value.errors


async def test_every_hangup_status_is_accepted(acme: RetailCrmClient) -> None:
    for status in ("answered", "busy", "cancel", "failed", "no answered"):
        event = {"phone": "1", "type": "hangup", "codes": ["151"], "hangupStatus": status}
        assert (await acme.call_event(event)).data["success"] is True
    for n, result in enumerate(("answered", "busy", "failed", "no answer", "not allowed",
                                "unknown")):
        uploaded = await acme.calls_upload([call(f"r.{n}", result=result)])
        assert uploaded.data["processedCallsCount"] == 1


# -- the wire format, below the client -------------------------------------------------------------


async def test_raw_wire_rules(sim: SimControl) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as raw:
        url = "/api/v5/telephony/call/event"
        missing = await raw.post(url, headers={"X-API-KEY": ACME_KEY}, data={"other": "1"})
        assert (missing.status_code, missing.json()) == (
            400, {"success": False, "errorMsg": "Parameter 'event' is missing"})
        nested = await raw.post(url, headers={"X-API-KEY": ACME_KEY},
                                data={"event[phone]": "1", "event[type]": "in"})
        assert (nested.status_code, nested.json()["errorMsg"]) == (
            400, 'Input value "event" contains a non-scalar value')
        no_key = await raw.get("/api/v5/users")
        assert (no_key.status_code, no_key.json()["errorMsg"]) == (403, '"apiKey" is missing.')
        outcome = classify(no_key.status_code, no_key.headers, no_key.text)
        assert isinstance(outcome, RetailCrmUnitMustAct) and outcome.reason == "missing_key"
        versioned = await raw.get("/api/v5/credentials", headers={"X-API-KEY": ACME_KEY})
        assert (versioned.status_code, versioned.json()["errorMsg"]) == (
            404, "API method not found")
        wrong_verb = await raw.get(url, headers={"X-API-KEY": ACME_KEY})
        assert wrong_verb.status_code == 404
        by_query = await raw.get("/api/v5/users", params={"apiKey": ACME_KEY, "limit": "20"})
        assert by_query.status_code == 200
        by_form = await raw.post("/api/v5/users/16/status",
                                 data={"apiKey": GLOBEX_KEY, "status": "break"})
        assert by_form.status_code == 200
        multipart = await raw.post(
            url, headers={"X-API-KEY": ACME_KEY},
            files={"event": (None, '{"phone":"1","type":"in","codes":["151"]}')},
        )
        assert multipart.status_code == 200
        bad_limit = await raw.get("/api/v5/users", params={"limit": "30"},
                                  headers={"X-API-KEY": ACME_KEY})
        assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["errors"]
    assert sim.state("globex")["users"][0]["status"] == "break"
    entries = sim.requests()
    journal = json.dumps(entries)
    assert ACME_KEY not in journal and GLOBEX_KEY not in journal
    assert all("apiKey" not in e["query"] and "apiKey" not in e["form"] for e in entries)
    assert [e["account"] for e in entries if e["path"] == "/api/v5/users/16/status"] == ["globex"]


async def test_journal_records_everything_without_keys(
    acme: RetailCrmClient, sim: SimControl
) -> None:
    event = {"phone": "+375291234567", "type": "in", "codes": ["151"], "callExternalId": "j.1"}
    await acme.call_event(event)
    with pytest.raises(RetailCrmPermanent):
        await acme.calls_upload([call("j.1", result="missed")])
    entries = sim.requests(account="acme")
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/api/v5/telephony/call/event", 200),
        ("POST", "/api/v5/telephony/calls/upload", 400),
    ]
    assert entries[0]["form"] == {"event": event}  # JSON fields decoded
    assert entries[1]["form"]["calls"][0]["result"] == "missed"
    assert entries[1]["errorMsg"] == "Errors in the entity format"
    assert entries[0]["time"] and entries[0]["seq"] < entries[1]["seq"]
    everything = json.dumps(sim.requests()) + json.dumps(sim.state("acme"))
    assert ACME_KEY not in everything
    assert sim.requests(account="acme", limit=1) == entries[-1:]
    sim.reset()
    assert sim.requests() == []


async def test_control_surface(sim: SimControl) -> None:
    created = sim.control(account="initech", api_key="test-key-0003",
                          users=[{"id": 7, "firstName": "Bill"}])
    assert created == {"ok": True, "account": "initech", "users": 1, "modules": []}
    async with RetailCrmClient(sim.base_url, "test-key-0003") as crm:
        assert (await crm.user(7)).data["user"]["firstName"] == "Bill"
    clash = sim.post("/_sim/control", {"account": "other", "api_key": ACME_KEY})
    assert clash.status_code == 400 and "acme" in clash.json()["error"]
    bad = sim.post("/_sim/control", {"account": "acme", "fail": {"mode": "explode"}})
    assert bad.status_code == 400
    assert sim.state("acme")["fail"]["mode"] == "none"  # nothing applied from a bad body
    sim.reset()
    assert sim.post("/_sim/control", {"account": "initech"}).status_code == 400  # gone, no key


async def test_demo_account_works_out_of_the_box(sim: SimControl) -> None:
    async with RetailCrmClient(sim.base_url, DEMO_API_KEY) as crm:
        users = await crm.users()
        assert {16, 18, 19} <= {u["id"] for u in users.data["users"]}
        ring = await crm.call_event({"phone": "+375291234567", "type": "in", "codes": ["151"]})
        assert ring.data == {"success": True}
        found = await crm.manager("+375291234567")
        assert found.data["manager"]["code"] == "151"


async def test_make_call_callback(sim: SimControl) -> None:
    # point the module's makeCallUrl back at the simulator's health probe: a real GET happens
    registered = module([{"userId": 16, "code": "151"}])
    registered["integrations"]["telephony"]["makeCallUrl"] = f"{sim.base_url}/_sim/health"
    sim.control(account="acme", modules=[registered])
    reply = sim.post("/_sim/make-call", {"account": "acme", "userId": 16, "phone": "+3752900"})
    assert reply.status_code == 200
    assert reply.json()["status"] == 200
    assert reply.json()["params"] == {"clientId": "cid-fake-0001", "code": "151",
                                      "phone": "+3752900", "userId": "16"}
