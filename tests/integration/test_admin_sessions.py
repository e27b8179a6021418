"""Signing in to the admin UI: the platform's link (a signed token) becomes a server-side session
with an HttpOnly cookie and a 303 to the clean URL; forged, expired and mismatched tokens are
refused; sessions expire and end; forms need the session's CSRF token; sign-ins are rate-limited;
every admin response carries the security headers. Real app in-process, real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.admin_helpers import (
    ADMIN,
    admin_app,
    bearer,
    client,
    csrf_of,
    form_of,
    sign_in,
    token,
)

pytestmark = pytest.mark.anyio
CONNECTION = f"{ADMIN}/units/0367/connection"


@pytest.fixture
async def app(env: dict[str, str]) -> AsyncIterator[FastAPI]:
    async with admin_app() as app:
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as http:
        yield http


async def test_the_platform_link_becomes_a_session_and_a_clean_url(
    http: httpx.AsyncClient, database_url: str
) -> None:
    link = {"enterprise_number": "0367", "token": token("0367")}
    answer = await http.get(f"{ADMIN}/", params=link)
    assert answer.status_code == 303
    assert answer.headers["location"] == CONNECTION  # no token in the address bar
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("vochi_admin_session=")
    for flag in ("HttpOnly", "SameSite=lax", "Path=/retailcrm-admin/", "Max-Age=28800"):
        assert flag.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http here; see the https test
    session_id = cookie.split(";")[0].split("=", 1)[1]

    page = await http.get(CONNECTION)
    assert page.status_code == 200
    assert "Подключение к RetailCRM" in page.text  # Russian by default
    # the raw session id is nowhere in the database, only its hash
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT * FROM vochi_admin_sessions").fetchall()
    assert len(rows) == 1
    assert session_id not in repr(rows)


async def test_behind_https_the_cookie_is_secure(app: FastAPI) -> None:
    # nginx (a trusted proxy on loopback) says the admin came over TLS
    async with client(app, headers={"X-Forwarded-Proto": "https"}) as http:
        answer = await http.get(f"{ADMIN}/", params={"token": token("0367")})
        assert "secure" in answer.headers["set-cookie"].lower()
    # the same header from an untrusted peer is not believed
    async with client(app, peer="203.0.113.7", headers={"X-Forwarded-Proto": "https"}) as http:
        answer = await http.get(f"{ADMIN}/", params={"token": token("0367")})
        assert answer.status_code == 303
        assert "secure" not in answer.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("link", "status", "text"),
    [
        ({"token": token("0367", secret="another-secret-of-at-least-32-chars!")}, 403, "подделан"),
        ({"token": token("0367", ttl=60, now=time.time() - 3600)}, 403, "истёк"),
        ({"token": "not-a-jwt"}, 403, "подделан"),
        ({"token": ""}, 403, "не вошли"),
        ({"token": token("0367"), "enterprise_number": "0368"}, 403, "другого юнита"),
        ({"token": token("0367"), "enterprise_number": "../etc"}, 404, "Не найдено"),
    ],
    ids=["forged", "expired", "garbage", "empty", "other-unit", "bad-unit"],
)
async def test_bad_links_are_refused_with_a_clear_page(
    http: httpx.AsyncClient, link: dict[str, str], status: int, text: str
) -> None:
    answer = await http.get(f"{ADMIN}/", params=link)
    assert answer.status_code == status, answer.text
    assert text in answer.text
    assert "set-cookie" not in answer.headers
    assert (await http.get(CONNECTION)).status_code == 403


async def test_an_alg_none_token_is_refused(http: httpx.AsyncClient) -> None:
    import base64
    import json

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"super": True, "iat": now, "exp": now + 60}
    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    assert (await http.get(f"{ADMIN}/", params={"token": unsigned})).status_code == 403
    api = await http.get("/api/config/0367", headers={"Authorization": f"Bearer {unsigned}"})
    assert api.status_code == 403


async def test_english_is_one_click_away_and_remembered(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    english = await http.get(CONNECTION, params={"lang": "en"})
    assert "Connection to RetailCRM" in english.text
    assert 'lang="en"' in english.text
    assert "Connection to RetailCRM" in (await http.get(CONNECTION)).text  # the cookie
    assert "Подключение к RetailCRM" in (await http.get(CONNECTION, params={"lang": "ru"})).text


async def test_without_a_session_the_entry_explains_how_to_sign_in(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get(f"{ADMIN}/", params={"enterprise_number": "0367"})
    assert page.status_code == 200
    assert "Интеграции → RetailCRM" in page.text
    signed = await sign_in(http, "0367")
    again = await http.get(f"{ADMIN}/", params={"enterprise_number": "0367"})
    assert again.status_code == 303
    assert again.headers["location"] == signed


async def test_a_super_link_lands_on_the_units_list(http: httpx.AsyncClient) -> None:
    assert await sign_in(http, None, super_=True) == f"{ADMIN}/units"
    units = await http.get(f"{ADMIN}/units")
    assert units.status_code == 200
    assert "0367" in units.text and "0368" in units.text


async def test_logout_ends_the_session_everywhere(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    cookie = http.cookies.get("vochi_admin_session")
    csrf, _ = await form_of(http, CONNECTION)
    # without the CSRF token sign-out is refused (a cross-site page cannot sign the admin out)
    assert (await http.post(f"{ADMIN}/logout", data={})).status_code == 403
    out = await http.post(f"{ADMIN}/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert "signed_out" in out.headers["location"]
    assert "Вы вышли" in (await http.get(out.headers["location"])).text
    # the old cookie, replayed, opens nothing
    http.cookies.set("vochi_admin_session", cookie or "", domain="daemon.local", path=f"{ADMIN}/")
    assert (await http.get(CONNECTION)).status_code == 403


async def test_sessions_expire(http: httpx.AsyncClient, database_url: str) -> None:
    await sign_in(http, "0367")
    assert (await http.get(CONNECTION)).status_code == 200
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE vochi_admin_sessions SET expires_at = now() - interval '1 second'")
    expired = await http.get(CONNECTION)
    assert expired.status_code == 403
    assert "истёк" in expired.text


async def test_forms_need_the_sessions_csrf_token(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    csrf, version = await form_of(http, CONNECTION)
    body = {"api_url": "https://csrf-test.retailcrm.ru", "api_key": "", "version": version}
    for wrong in ({}, {"csrf_token": "x" * 43}, {"csrf_token": csrf[:-1]}):
        answer = await http.post(CONNECTION, data={**body, **wrong})
        assert answer.status_code == 403
        assert "Форма устарела" in answer.text
    page = await http.get(CONNECTION)
    assert "csrf-test" not in page.text  # nothing was saved
    ok = await http.post(CONNECTION, data={**body, "csrf_token": csrf})
    assert ok.status_code == 303


async def test_another_sessions_csrf_token_does_not_work(app: FastAPI) -> None:
    async with client(app) as first, client(app) as second:
        await sign_in(first, "0367")
        await sign_in(second, "0367")
        other_csrf, version = await form_of(second, CONNECTION)
        data = {"csrf_token": other_csrf, "version": version, "api_url": "https://x.retailcrm.ru"}
        assert (await first.post(CONNECTION, data=data)).status_code == 403


async def test_the_config_api_wants_csrf_for_session_writes(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    api = f"{ADMIN}/api/config/0367"
    assert (await http.get(api)).status_code == 200  # reads need no CSRF
    body = {"api_url": "https://shop.retailcrm.ru"}
    assert (await http.put(api, json=body)).status_code == 403
    csrf = csrf_of((await http.get(CONNECTION)).text)
    assert (await http.put(api, json=body, headers={"X-CSRF-Token": csrf})).status_code == 200


async def test_sign_ins_are_rate_limited_per_client(app: FastAPI) -> None:
    limit = app.state.settings.admin.exchange_per_minute
    async with client(app, peer="198.51.100.1") as http:
        for _ in range(limit):
            assert (await http.get(f"{ADMIN}/", params={"token": "forged"})).status_code == 403
        refused = await http.get(f"{ADMIN}/", params={"token": token("0367")})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Слишком много попыток" in refused.text
    # another client is not held back by the first one's attempts
    async with client(app, peer="198.51.100.2") as other:
        assert (await other.get(f"{ADMIN}/", params={"token": token("0367")})).status_code == 303
    # behind nginx the limit is per real client (X-Forwarded-For from the trusted proxy)
    async with client(app, headers={"X-Forwarded-For": "198.51.100.1"}) as proxied:
        assert (await proxied.get(f"{ADMIN}/", params={"token": token("0367")})).status_code == 429
    async with client(app, headers={"X-Forwarded-For": "198.51.100.3"}) as proxied:
        assert (await proxied.get(f"{ADMIN}/", params={"token": token("0367")})).status_code == 303


@pytest.mark.parametrize(
    "path",
    [f"{ADMIN}/", CONNECTION, f"{ADMIN}/units/0368/connection", "/api/config/0367"],
)
async def test_security_headers_on_every_admin_response(
    http: httpx.AsyncClient, path: str
) -> None:
    await sign_in(http, "0367")
    answer = await http.get(path)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_pages_have_no_inline_script_or_style(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    for tab in ("connection", "mapping", "journal", "diagnostics"):
        html = (await http.get(f"{ADMIN}/units/0367/{tab}")).text
        assert "<script>" not in html and "<script " not in html.replace(
            '<script src="/retailcrm-admin/static/admin/admin.js', ""
        )
        assert " style=" not in html and "<style" not in html
        assert " on" + "click=" not in html


async def test_static_assets_are_served_under_the_admin_prefix(http: httpx.AsyncClient) -> None:
    css = await http.get(f"{ADMIN}/static/admin/admin.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert (await http.get(f"{ADMIN}/static/admin/admin.js")).status_code == 200
    assert (await http.get(f"{ADMIN}/static/vochi-logo.svg")).status_code == 200


async def test_oversized_forms_are_refused_before_reading(http: httpx.AsyncClient) -> None:
    await sign_in(http, "0367")
    csrf, version = await form_of(http, CONNECTION)
    big = {"csrf_token": csrf, "version": version, "api_url": "x" * 70_000}
    answer = await http.post(CONNECTION, data=big)
    assert answer.status_code == 413
    huge = await http.put("/api/config/0367", content=b"{" + b" " * 300_000 + b"}",
                          headers={**bearer("0367"), "content-type": "application/json"})
    assert huge.status_code == 413


async def test_without_a_jwt_secret_the_admin_ui_is_disabled(env: dict[str, str]) -> None:
    async with admin_app(admin={"jwt_secret": None}) as app, client(app) as http:
        page = await http.get(f"{ADMIN}/", params={"token": token("0367")})
        assert page.status_code == 403
        assert "VOCHI_ADMIN__JWT_SECRET" in page.text
        api = await http.get("/api/config/0367", headers=bearer("0367"))
        assert api.status_code == 403
        assert api.json()["reason"] == "disabled"
