"""Shared fixtures: a real PostgreSQL for every test that needs one.

``VOCHI_TEST_DATABASE_URL`` (a server where we may CREATE DATABASE) is used when set; otherwise a
throwaway cluster is started with the same embedded mechanism the product uses. One template
database is migrated per session; every test gets a fresh copy of it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from tests.simulator_helpers import SimControl

REPO = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-only-admin-jwt-secret-0123456789abcdef"  # a test fixture, not a secret
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, what: str) -> None:
    """Skip a test whose real component is missing; under CI=true that is a failure instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {what}")
    pytest.skip(f"component missing: {what}")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    """Conninfo of a maintenance database on a server where tests may create databases."""
    given = os.environ.get("VOCHI_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from vochi_crm.db.embedded import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="vochi-test-pg-"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base)
    cluster.acquire()
    try:
        yield cluster.conninfo("postgres")
    finally:
        cluster.release()


def _admin_exec(admin: str, statement: sql.Composable) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def template_db(pg_admin: str) -> Iterator[str]:
    from vochi_crm.db.migrations import migrate

    name = f"vochi_tpl_{os.getpid()}"
    _admin_exec(pg_admin, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    _admin_exec(pg_admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(
            make_conninfo(pg_admin, dbname=name),
            autocommit=True,
            row_factory=psycopg.rows.dict_row,
        ) as conn:
            await migrate(conn)

    asyncio.run(run())
    yield name
    _admin_exec(
        pg_admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture
def database_url(pg_admin: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"vochi_t_{uuid.uuid4().hex[:12]}"
    _admin_exec(
        pg_admin,
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)
        ),
    )
    yield make_conninfo(pg_admin, dbname=name)
    _admin_exec(
        pg_admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture
def empty_database_url(pg_admin: str) -> Iterator[str]:
    """A fresh database with nothing in it (for migration tests)."""
    name = f"vochi_e_{uuid.uuid4().hex[:12]}"
    _admin_exec(pg_admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(pg_admin, dbname=name)
    _admin_exec(
        pg_admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A process environment pointing vochi-crm at this test's database."""
    for key in list(os.environ):
        if key.startswith("VOCHI_") and key != "VOCHI_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("VOCHI_DATABASE_URL", database_url)
    # the admin UI and /api/config accept tokens signed with this (tests/admin_helpers.py)
    monkeypatch.setenv("VOCHI_ADMIN__JWT_SECRET", TEST_JWT_SECRET)
    return {**os.environ, "VOCHI_DATABASE_URL": database_url}


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    """The RetailCRM simulator (demo account) on a free loopback port, for one test module."""
    from tests.simulator_helpers import running_simulator
    from vochi_daemon.simulator import create_simulator_app

    with running_simulator(create_simulator_app()) as url:
        yield url


@pytest.fixture
def sim(simulator: str) -> Iterator[SimControl]:
    """Control of that simulator, reset to its start state for each test."""
    from tests.simulator_helpers import SimControl

    control = SimControl(simulator)
    control.reset()
    yield control
    control.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def vochi_crm_command() -> list[str]:
    """The installed console script, next to this interpreter."""
    script = Path(sys.executable).parent / "vochi-crm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vochi_cli"]
