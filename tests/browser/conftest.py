"""The admin UI end to end in a real browser: headless Chromium (Debian's, driven by Playwright
through ``executable_path``; never a downloaded browser) against the real ``vochi-crm daemon``
process behind real nginx (``deploy/nginx``), with the RetailCRM simulator and PostgreSQL.

These tests are marked ``browser`` and run in their own pytest process (``pytest -m browser``,
see .ci/run): Playwright's sync API wants a thread without a running event loop. Under CI=true a
missing chromium or nginx fails the run instead of skipping."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.admin_helpers import fresh_database
from tests.conftest import TEST_JWT_SECRET, require
from tests.e2e.daemons import Daemon, cli, free_port, running_daemon, scrubbed_env
from tests.e2e.pbx import running_nginx
from tests.simulator_helpers import SimControl, running_simulator
from vochi_daemon.simulator import create_simulator_app

CHROMIUM = Path(os.environ.get("VOCHI_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN_0367 = "375290000000"
SECRET_KEY = "browser-test-secret-key-000000001"
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"


@dataclass
class Stack:
    url: str
    """nginx, as the admin's browser reaches it."""
    daemon: Daemon
    sim: SimControl
    env: dict[str, str]
    database_url: str
    shots: Path

    def link(self, unit: str) -> str:
        """A sign-in link, as ``vochi-crm admin-link`` prints it."""
        result = cli(self.env, "admin-link", unit, "--ttl", "15m")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def module_database(pg_admin: str, template_db: str) -> Iterator[str]:
    with fresh_database(pg_admin, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def stack(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require(CHROMIUM.exists(), f"chromium at {CHROMIUM} (apt-get install -y chromium)")
    require(
        shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists(),
        "nginx (apt-get install -y nginx)",
    )
    work = tmp_path_factory.mktemp("browser")
    nginx_port = free_port()
    public = f"http://127.0.0.1:{nginx_port}"
    with running_simulator(create_simulator_app()) as simulator:
        env = scrubbed_env(
            VOCHI_DATABASE_URL=module_database,
            VOCHI_ADMIN__JWT_SECRET=TEST_JWT_SECRET,
            VOCHI_SECRET_KEY=SECRET_KEY,
            VOCHI_PUBLIC_BASE_URL=public,
            VOCHI_DELIVERY__POLL_SECONDS="0.2",
            VOCHI_DAEMON__LOG_LEVEL="debug",
        )
        for step in (
            ("units", "add", "0367", "--name", "Демо-магазин", "--token", TOKEN_0367),
            ("units", "add", "0368", "--name", "Другой юнит"),
        ):
            result = cli(env, *step)
            assert result.returncode == 0, result.stderr
        with running_daemon(env, work) as daemon:
            port = int(daemon.url.rsplit(":", 1)[1])
            with running_nginx(work / "nginx", port, nginx_port) as url:
                sim = SimControl(simulator)
                shots = work / "screenshots"
                shots.mkdir()
                try:
                    yield Stack(url, daemon, sim, env, module_database, shots)
                finally:
                    sim.close()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Any, stack: Stack, name: str) -> Path:
    """Save under the test's output and refresh the copy in docs/screenshots/ (the README's)."""
    target = stack.shots / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target, SCREENSHOTS / f"{name}.png")
    return target
