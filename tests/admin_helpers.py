"""Signing in to the admin UI and the config API in tests: tokens signed with the test secret
(``tests.conftest.TEST_JWT_SECRET``, set by the ``env`` fixture), bearer headers, and a browser-like
sign-in over httpx that keeps the session cookie and reads the CSRF token from a page."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from tests.conftest import TEST_JWT_SECRET
from vochi_crm.admin_auth import issue_token

ADMIN = "/retailcrm-admin"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_VERSION = re.compile(r'name="version" value="([^"]+)"')


def token(
    unit: str | None = None,
    *,
    super_: bool = False,
    ttl: int = 3600,
    secret: str = TEST_JWT_SECRET,
    now: float | None = None,
) -> str:
    return issue_token(secret, unit=unit, super_=super_, ttl_seconds=ttl, now=now)


def bearer(unit: str | None = None, *, super_: bool = False) -> dict[str, str]:
    """``Authorization`` for the config API: a unit's token, or a super token (all units)."""
    if unit is None and not super_:
        super_ = True
    return {"Authorization": f"Bearer {token(unit, super_=super_)}"}


async def sign_in(http: httpx.AsyncClient, unit: str | None, *, super_: bool = False) -> str:
    """Follow the platform's link; return where the admin landed (the session cookie is kept)."""
    query = {"token": token(unit, super_=super_)}
    if unit is not None:
        query["enterprise_number"] = unit
    response = await http.get(f"{ADMIN}/", params=query)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def version_of(html: str) -> str:
    found = _VERSION.search(html)
    assert found is not None, "no form version on the page"
    return found.group(1)


# -- an in-process daemon with the admin UI ------------------------------------------------------

TOKEN_0367 = "375290000000"
SECRET_KEY = "test-only-secret-key-for-api-keys-0001"


@contextlib.asynccontextmanager
async def admin_app(**overrides: Any) -> AsyncIterator[FastAPI]:
    """The real app (lifespan included) with units 0367 (Pilot) and 0368 (Other), added unless
    they exist; API keys are encrypted at rest unless ``secret_key=None`` is given."""
    from vochi_crm.settings import load_settings
    from vochi_daemon.app import create_app

    settings = {"secret_key": SECRET_KEY, "delivery": {"poll_seconds": 0.2}, **overrides}
    app = create_app(load_settings(**settings))
    async with app.router.lifespan_context(app):
        existing = {u.number for u in await app.state.runtime.units.list()}
        if "0367" not in existing:
            await app.state.runtime.units.add("0367", "Pilot", token=TOKEN_0367)
        if "0368" not in existing:
            await app.state.runtime.units.add("0368", "Other")
        yield app


@contextlib.contextmanager
def fresh_database(pg_admin: str, template_db: str) -> Iterator[str]:
    """A migrated database of its own, for fixtures wider than one test (the ``database_url``
    fixture is per test)."""
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"vochi_m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    try:
        yield make_conninfo(pg_admin, dbname=name)
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def client(
    app: FastAPI, *, peer: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://daemon", headers=headers, follow_redirects=False
    )


async def form_of(http: httpx.AsyncClient, path: str) -> tuple[str, str]:
    """The CSRF token and form version of the page at ``path``."""
    page = await http.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text), version_of(page.text)
