"""Every admin route and every config API route, asked by every kind of caller: a unit's admin
never reads or changes another unit; a super token sees all; no, forged or expired credentials
get 403; and a refused request changes nothing.

The route table below is checked against the app's own routes, so a new route without a row here
fails the suite."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.admin_helpers import (
    ADMIN,
    admin_app,
    client,
    csrf_of,
    fresh_database,
    sign_in,
    token,
)
from tests.conftest import TEST_JWT_SECRET
from vochi_crm.retailcrm_config import ConfigChange

pytestmark = pytest.mark.anyio
CALL = "1757766449.12"

# (method, path template, body kind) — {u} is the unit the request touches
UNIT_ROUTES: list[tuple[str, str, str | None]] = [
    ("GET", ADMIN + "/units/{u}", None),
    ("GET", ADMIN + "/units/{u}/connection", None),
    ("POST", ADMIN + "/units/{u}/connection", "form"),
    ("POST", ADMIN + "/units/{u}/connection/test", "form"),
    ("GET", ADMIN + "/units/{u}/mapping", None),
    ("POST", ADMIN + "/units/{u}/mapping", "form"),
    ("GET", ADMIN + "/units/{u}/journal", None),
    ("GET", ADMIN + "/units/{u}/journal/calls/" + CALL, None),
    ("POST", ADMIN + "/units/{u}/journal/replay", "form"),
    ("GET", ADMIN + "/units/{u}/diagnostics", None),
    *(
        (method, prefix + "/api/config/{u}" + suffix, body)
        for prefix in ("", ADMIN)
        for method, suffix, body in (
            ("GET", "", None),
            ("PUT", "", "json"),
            ("PATCH", "", "json"),
            ("DELETE", "", None),
            ("POST", "/test", None),
        )
    ),
]
GLOBAL_ROUTES = {
    ("GET", ADMIN + "/"),
    ("GET", ADMIN),
    ("GET", ADMIN + "/units"),
    ("POST", ADMIN + "/logout"),
}


def test_the_table_covers_every_admin_and_config_route(env: dict[str, str]) -> None:
    from starlette.routing import Route

    from vochi_crm.settings import load_settings
    from vochi_daemon.app import create_app

    app = create_app(load_settings())
    listed = {(m, p.replace("{u}", "{unit}").replace(CALL, "{call}")) for m, p, _ in UNIT_ROUTES}
    served: set[tuple[str, str]] = set()

    def walk(routes: Any, prefix: str = "") -> None:
        for route in routes:
            context = getattr(route, "include_context", None)  # FastAPI's lazily included router
            if context is not None:
                walk(route.original_router.routes, prefix + context.prefix)
            elif isinstance(route, Route):
                path = prefix + route.path
                if path.startswith((ADMIN, "/api/config")):
                    served.update((m, path) for m in route.methods or () if m != "HEAD")

    walk(app.router.routes)
    assert served - GLOBAL_ROUTES == listed


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def database_url(pg_admin: str, template_db: str) -> Iterator[str]:
    with fresh_database(pg_admin, template_db) as url:
        yield url


@pytest.fixture(scope="module")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    """One daemon for the whole matrix (hundreds of requests; a refused one changes nothing and
    the table is checked before and after each)."""
    admin = {"jwt_secret": TEST_JWT_SECRET, "exchange_per_minute": 10_000}  # many sign-ins here
    overrides = {"database_url": database_url, "admin": admin}
    async with admin_app(**overrides) as app:
        await app.state.runtime.configs.update(
            "0367",
            ConfigChange(api_url="https://pilot.retailcrm.ru", api_key="pilot-key-0000-abcd"),
        )
        yield app


def stored(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT number, integrations_config FROM enterprises").fetchall()
    return {number: json.dumps(config, sort_keys=True) for number, config in rows}


Caller = Callable[[httpx.AsyncClient], Awaitable[dict[str, str]]]


async def _session(http: httpx.AsyncClient, unit: str | None) -> dict[str, str]:
    await sign_in(http, unit, super_=unit is None)
    home = ADMIN + "/units" if unit is None else f"{ADMIN}/units/{unit}/connection"
    return {"X-CSRF-Token": csrf_of((await http.get(home)).text) if unit else ""}


CALLERS: dict[str, Caller] = {
    "other-unit-session": lambda http: _session(http, "0368"),
    "other-unit-bearer": lambda http: _bearer(token("0368")),
    "nobody": lambda http: _nothing(),
    "forged-bearer": lambda http: _bearer(token("0367", secret="x" * 40)),
    "expired-bearer": lambda http: _bearer(token("0367", ttl=60, now=time.time() - 7200)),
    "unsigned-bearer": lambda http: _bearer(token("0367").rsplit(".", 1)[0] + "."),
    "wrong-scheme": lambda http: _headers({"Authorization": "Basic " + TEST_JWT_SECRET}),
}


async def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def _headers(value: dict[str, str]) -> dict[str, str]:
    return value


async def _nothing() -> dict[str, str]:
    return {}


async def call(
    http: httpx.AsyncClient, method: str, path: str, body: str | None, headers: dict[str, str]
) -> httpx.Response:
    csrf = headers.pop("X-CSRF-Token", "")
    session = http.cookies.get("vochi_admin_session")
    if session and path.startswith("/api/config"):
        # the browser only sends the cookie under /retailcrm-admin/; a client may send it anywhere
        headers = {**headers, "Cookie": f"vochi_admin_session={session}"}
    if body == "form":
        data = {"csrf_token": csrf, "version": "v", "api_url": "https://evil.retailcrm.ru",
                "enabled": "on", "user_16": "151", "event": "1", "all": "1"}
        return await http.request(method, path, data=data, headers=headers)
    if body == "json":
        payload = {"api_url": "https://evil.retailcrm.ru", "user_mappings": {"151": 16}}
        return await http.request(
            method, path, json=payload, headers={**headers, "X-CSRF-Token": csrf}
        )
    return await http.request(method, path, headers={**headers, "X-CSRF-Token": csrf})


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize(("method", "path", "body"), UNIT_ROUTES)
async def test_refused_callers_get_403_and_change_nothing(
    app: FastAPI,
    database_url: str,
    caller: str,
    method: str,
    path: str,
    body: str | None,
) -> None:
    before = stored(database_url)
    async with client(app) as http:
        headers = await CALLERS[caller](http)
        answer = await call(http, method, path.format(u="0367"), body, headers)
    assert answer.status_code == 403, (caller, method, path, answer.status_code, answer.text[:300])
    assert stored(database_url) == before
    if path.startswith(ADMIN + "/units"):
        assert "text/html" in answer.headers["content-type"]  # a page, in the admin's language
        assert "Нет доступа" in answer.text or "вход" in answer.text.lower() or (
            "ссылк" in answer.text.lower()
        )


@pytest.mark.parametrize("who", ["own-session", "own-bearer", "super-session", "super-bearer"])
@pytest.mark.parametrize(("method", "path", "body"), UNIT_ROUTES)
async def test_the_units_admin_and_super_admins_get_through(
    app: FastAPI, who: str, method: str, path: str, body: str | None
) -> None:
    async with client(app) as http:
        if who == "own-session":
            headers = await _session(http, "0367")
        elif who == "super-session":
            await sign_in(http, None, super_=True)
            page = await http.get(f"{ADMIN}/units/0367/connection")
            headers = {"X-CSRF-Token": csrf_of(page.text)}
        else:
            headers = await _bearer(token("0367") if who == "own-bearer" else token(super_=True))
        answer = await call(http, method, path.format(u="0367"), body, headers)
    # past the guard: whatever the route then says (saved, bad form, no such call, not
    # configured, RetailCRM unreachable) — never a refusal, never a crash
    assert answer.status_code not in (401, 403), (who, method, path, answer.text[:300])
    assert answer.status_code < 500, (who, method, path, answer.text[:300])


async def test_a_unit_admin_cannot_replay_another_units_event_from_its_own_page(
    app: FastAPI, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO retailcrm_events (enterprise_number, call_unique_id, event_type, payload,"
            " status, last_error) VALUES ('0367', %s, 'hangup', '{}', 'failed', 'x') RETURNING id",
            [CALL],
        ).fetchone()
    assert row is not None
    async with client(app) as http:
        headers = await _session(http, "0368")
        answer = await http.post(
            f"{ADMIN}/units/0368/journal/replay",
            data={"csrf_token": headers["X-CSRF-Token"], "event": str(row[0])},
        )
    assert answer.status_code == 404  # another unit's event looks like an unknown one
    with psycopg.connect(database_url) as conn:
        status = conn.execute("SELECT status FROM retailcrm_events WHERE id = %s", [row[0]])
        assert status.fetchone() == ("failed",)


async def test_the_units_list_is_for_super_admins_only(app: FastAPI) -> None:
    async with client(app) as http:
        await sign_in(http, "0368")
        answer = await http.get(f"{ADMIN}/units")
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{ADMIN}/units/0368/connection"
    async with client(app) as http:
        assert (await http.get(f"{ADMIN}/units")).status_code == 403
        await sign_in(http, None, super_=True)
        listing = await http.get(f"{ADMIN}/units")
        assert listing.status_code == 200 and "0368" in listing.text


async def test_super_sees_every_unit_through_the_api(app: FastAPI) -> None:
    async with client(app, headers=await _bearer(token(super_=True))) as http:
        for unit in ("0367", "0368"):
            answer = await http.get(f"/api/config/{unit}")
            assert answer.status_code == 200
            assert answer.json()["enterprise_number"] == unit
        assert (await http.get("/api/config/0999")).status_code == 404
    async with client(app, headers=await _bearer(token("0368"))) as http:
        assert (await http.get("/api/config/0999")).status_code == 403  # no unit enumeration
