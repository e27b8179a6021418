"""The real ASGI app in-process (lifespan included) over httpx, on a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.admin_helpers import bearer
from vochi_crm.settings import load_settings
from vochi_daemon.app import create_app

pytestmark = pytest.mark.anyio
KEY = "test-key-0000-q1w2"


@pytest.fixture
async def client(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(load_settings(internal_token="internal-test-token"))
    async with app.router.lifespan_context(app):
        await app.state.runtime.units.add("0367", "Pilot")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://daemon", headers=bearer(super_=True)
        ) as http:
            yield http


async def test_health_and_stats(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "listener": "ok"}
    stats = (await client.get("/stats")).json()
    assert stats["listener"]["connected"] is True
    assert {"hits", "misses", "invalidations", "hit_ratio"} <= set(stats["config_cache"])


async def test_config_crud(client: httpx.AsyncClient) -> None:
    put = await client.put(
        "/api/config/0367",
        json={"config": {"domain": "shop.retailcrm.ru", "api_key": KEY, "enabled": True}},
    )
    assert put.status_code == 200, put.text
    assert put.json()["retailcrm"]["api_key"] == "••••q1w2"
    assert KEY not in put.text

    patch = await client.patch("/api/config/0367", json={"user_mappings": {"151": 16, "152": 18}})
    assert patch.json()["retailcrm"]["user_mappings"] == {"151": 16, "152": 18}
    unmap = await client.patch("/api/config/0367", json={"user_mappings": {"152": None}})
    assert unmap.json()["retailcrm"]["user_mappings"] == {"151": 16}

    # saving credentials again keeps the mapping; GET (through the cache) sees the change
    await client.put("/api/config/0367", json={"api_key": "another-key-0000"})
    got = (await client.get("/api/config/0367")).json()
    assert got["retailcrm"]["user_mappings"] == {"151": 16}
    assert got["retailcrm"]["api_key"] == "••••0000"

    assert (await client.delete("/api/config/0367")).status_code == 204
    after = (await client.get("/api/config/0367")).json()
    assert after["retailcrm"]["api_url"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("get", "/api/config/0999", None, 404, None),
        ("put", "/api/config/0999", {"enabled": False}, 404, None),
        ("put", "/api/config/0367", {"api_url": "not a url"}, 422, "api_url"),
        ("put", "/api/config/0367", {"enabled": "perhaps"}, 422, "enabled"),
        ("put", "/api/config/0367", {"surprise": 1}, 422, "surprise"),
        ("put", "/api/config/0367", ["a"], 422, "body"),
        ("patch", "/api/config/0367", {"user_mappings": {"151": "x"}}, 422, "user_mappings.151"),
        ("patch", "/api/config/0367", {"user_mappings": "x"}, 422, "user_mappings"),
        ("put", "/api/config/0367", {"enabled": True}, 422, "api_url"),
    ],
)
async def test_bad_requests_name_the_field(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    status: int,
    field: str | None,
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    if field is not None:
        assert field in [f["field"] for f in response.json()["fields"]]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/config/0367", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "body"


@pytest.mark.parametrize("peer", ["203.0.113.9", "127.0.0.1"])
async def test_config_api_wants_an_admin_token_whoever_calls(
    env: dict[str, str], peer: str
) -> None:
    """The admin auth replaced the loopback/internal-token guard of /api/config: neither being
    on loopback nor the call services' internal token opens it; a token for the unit does."""
    app = create_app(load_settings(internal_token="internal-test-token"))
    async with app.router.lifespan_context(app):
        await app.state.runtime.units.add("0367", "Pilot")
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
            assert (await http.get("/api/config/0367")).status_code == 403
            wrong = await http.get("/api/config/0367", headers={"X-Internal-Token": "nope"})
            assert wrong.status_code == 403
            internal = await http.get(
                "/api/config/0367", headers={"X-Internal-Token": "internal-test-token"}
            )
            assert internal.status_code == 403
            right = await http.get("/api/config/0367", headers=bearer("0367"))
            assert right.status_code == 200


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/config/{unit}" in spec["paths"]
    assert {"get", "put", "patch", "delete"} <= set(spec["paths"]["/api/config/{unit}"])
