"""`POST /api/events` on the real ASGI app (lifespan included) and real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from vochi_crm.retailcrm_config import change_from_values
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app

pytestmark = pytest.mark.anyio
TOKEN = "375290000000"


def hangup(unique_id: str = "1757765248.0", **extra: Any) -> dict[str, Any]:
    return {"UniqueId": unique_id, "Phone": "375291112233", "CallType": 0, "CallStatus": "2",
            "StartTime": "2025-09-13 15:07:29", "EndTime": "2025-09-13 15:07:46",
            "Extensions": ["151"], **extra}


@pytest.fixture
async def app(env: dict[str, str]) -> AsyncIterator[FastAPI]:
    # delivery is pointed at a closed port: these tests look at ingest only
    application = create_app(load_settings(internal_token="internal-test-token"))
    async with application.router.lifespan_context(application):
        runtime = application.state.runtime
        await runtime.units.add("0367", "Pilot", token=TOKEN)
        await runtime.units.add("0368", "Disabled")
        await runtime.configs.update("0367", change_from_values(
            {"api_url": "http://127.0.0.1:9", "api_key": "test-key-0000", "enabled": True}))
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        yield http


def stored(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT enterprise_number, call_unique_id, event_type "
                            "FROM retailcrm_events WHERE event_type NOT LIKE '%_module' "
                            "ORDER BY id").fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_accepted_after_commit_then_duplicate(
    client: httpx.AsyncClient, database_url: str
) -> None:
    body = {"enterprise_number": "0367", "event_type": "hangup", "payload": hangup()}
    first = await client.post("/api/events", json=body)
    assert first.status_code == 202
    assert first.json()["status"] == "accepted"
    assert stored(database_url) == [("0367", "1757765248.0", "hangup")]
    again = await client.post("/api/events", json=body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert len(stored(database_url)) == 1


async def test_unit_by_token_and_call_type_as_string(
    client: httpx.AsyncClient, database_url: str
) -> None:
    response = await client.post("/api/events", json={
        "token": TOKEN, "event_type": "dial",
        "payload": {"UniqueId": "1.2", "Phone": "375291112233", "CallType": "0",
                    "Extensions": ["151"]}})
    assert response.status_code == 202, response.text
    # the Asterisk payload's own Token is enough when the envelope names no unit
    own = await client.post("/api/events", json={
        "event_type": "hangup", "payload": hangup("1.3", Token=TOKEN)})
    assert own.status_code == 202, own.text
    assert [r[1] for r in stored(database_url)] == ["1.2", "1.3"]


async def test_two_bridges_of_one_call_are_both_kept(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for bridge in ("b-1", "b-2", "b-1"):
        await client.post("/api/events", json={
            "enterprise_number": "0367", "event_type": "bridge",
            "payload": {"UniqueId": "1.4", "BridgeUniqueid": bridge, "ConnectedLineNum": "151"}})
    assert stored(database_url) == [("0367", "1.4", "bridge"), ("0367", "1.4", "bridge")]


async def test_skipped_without_storing(client: httpx.AsyncClient, database_url: str) -> None:
    disabled = await client.post("/api/events", json={
        "enterprise_number": "0368", "event_type": "hangup", "payload": hangup()})
    assert disabled.status_code == 200
    assert "not enabled" in disabled.json()["skipped"]
    unused = await client.post("/api/events", json={
        "enterprise_number": "0367", "event_type": "new_callerid",
        "payload": {"UniqueId": "1.5", "Channel": "SIP/151-0001"}})
    assert unused.status_code == 200
    assert "not sent to RetailCRM" in unused.json()["skipped"]
    bridge_create = await client.post("/api/events", json={
        "enterprise_number": "0367", "event_type": "bridge_create", "payload": {"UniqueId": ""}})
    assert bridge_create.status_code == 200
    assert stored(database_url) == []


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        (b"{not json", 422, ["body"]),
        (b"[1, 2]", 422, ["body"]),
        (json.dumps({"enterprise_number": "0367", "event_type": "hangup",
                     "payload": {"Phone": "1"}}).encode(), 422, ["payload.UniqueId"]),
        (json.dumps({"enterprise_number": "0367", "event_type": "ringing",
                     "payload": hangup()}).encode(), 422, ["event_type"]),
        (json.dumps({"enterprise_number": "0367", "event_type": "hangup",
                     "payload": hangup(CallType=7, Extensions="151", Phone=375)}).encode(),
         422, ["payload.CallType", "payload.Extensions", "payload.Phone"]),
        (json.dumps({"event_type": "hangup", "payload": {"UniqueId": "1"}}).encode(), 422,
         ["enterprise_number"]),
        (json.dumps({"enterprise_number": "0367", "event_type": "hangup",
                     "payload": "x"}).encode(), 422, ["payload"]),
        (json.dumps({"enterprise_number": "0999", "event_type": "hangup",
                     "payload": hangup()}).encode(), 404, None),
        (json.dumps({"token": "nope", "event_type": "hangup",
                     "payload": hangup()}).encode(), 404, None),
    ],
)
async def test_bad_input_is_named_and_nothing_is_stored(
    client: httpx.AsyncClient, database_url: str, body: bytes, status: int,
    fields: list[str] | None,
) -> None:
    response = await client.post("/api/events", content=body,
                                 headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    if fields is not None:
        assert [f["field"] for f in response.json()["fields"]] == fields
    assert stored(database_url) == []


async def test_oversized_body_is_413(client: httpx.AsyncClient, database_url: str) -> None:
    big = {"enterprise_number": "0367", "event_type": "hangup",
           "payload": hangup(Filler="x" * 70_000)}
    response = await client.post("/api/events", json=big)
    assert response.status_code == 413
    assert stored(database_url) == []


async def test_remote_callers_need_the_internal_token(app: FastAPI, database_url: str) -> None:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        body = {"enterprise_number": "0367", "event_type": "hangup", "payload": hangup()}
        assert (await http.post("/api/events", json=body)).status_code == 403
        ok = await http.post("/api/events", json=body,
                             headers={"X-Internal-Token": "internal-test-token"})
        assert ok.status_code == 202
    assert len(stored(database_url)) == 1


async def test_many_concurrent_events_are_group_committed(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    import asyncio

    bodies = [{"enterprise_number": "0367", "event_type": "hangup", "payload": hangup(f"9.{i}")}
              for i in range(200)]
    responses = await asyncio.gather(*(client.post("/api/events", json=b) for b in bodies))
    assert {r.status_code for r in responses} == {202}
    assert len(stored(database_url)) == 200
    ingest = app.state.runtime.ingest
    assert ingest.accepted == 200
    assert ingest.batches < 200  # several events shared a commit


async def test_the_served_fast_path_keeps_the_same_rules(app: FastAPI, database_url: str) -> None:
    """What uvicorn serves: POST /api/events outside FastAPI's stack, everything else inside."""
    import ipaddress

    from vochi_daemon.fast_path import IngestFastPath

    served = IngestFastPath(app, [ipaddress.ip_network("127.0.0.1/32")])
    transport = httpx.ASGITransport(app=served, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
        body = {"enterprise_number": "0367", "event_type": "hangup", "payload": hangup("5.1")}
        assert (await http.post("/api/events", json=body)).status_code == 202
        assert (await http.post("/api/events", json=body)).json()["duplicate"] is True
        relayed = await http.post(  # nginx relaying a remote caller is not loopback
            "/api/events", json={**body, "payload": hangup("5.2")},
            headers={"X-Forwarded-For": "203.0.113.5"},
        )
        assert relayed.status_code == 403
        bad = await http.post("/api/events", content=b"{", headers={"X-Real-IP": "127.0.0.1"})
        assert bad.status_code == 422
        assert (await http.get("/health")).status_code == 200  # the rest goes to the app
    assert [r[1] for r in stored(database_url)] == ["5.1"]


async def test_an_empty_payload_token_does_not_name_a_unit(
    client: httpx.AsyncClient, database_url: str
) -> None:
    response = await client.post("/api/events", json={
        "event_type": "hangup", "payload": hangup("6.1", Token="")})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "enterprise_number"
    assert stored(database_url) == []
