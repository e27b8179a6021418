"""Two real daemons on one database: a `config` change made by the CLI reaches both within a
second through NOTIFY, and a daemon whose listener connection is killed recovers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.admin_helpers import bearer
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.daemons import Daemon, cli, running_daemon, scrubbed_env

pytestmark = pytest.mark.slow


def _mapping(daemon: Daemon) -> dict[str, int]:
    body = httpx.get(daemon.url + "/api/config/0367", headers=bearer("0367"), timeout=2).json()
    mapping: dict[str, int] = body["retailcrm"]["user_mappings"]
    return mapping


def _wait_for(daemons: list[Daemon], expected: dict[str, int], since: float) -> float:
    """Seconds from ``since`` until every daemon serves ``expected``; fails after 1 s."""
    pending = list(daemons)
    while pending:
        pending = [d for d in pending if _mapping(d) != expected]
        elapsed = time.monotonic() - since
        if pending and elapsed > 1.0:
            pytest.fail(f"not propagated within 1 s to {[d.url for d in pending]}")
        time.sleep(0.005)
    return time.monotonic() - since


def test_cli_change_reaches_two_daemons_within_a_second(database_url: str, tmp_path: Path) -> None:
    env = scrubbed_env(
        VOCHI_DATABASE_URL=database_url,
        VOCHI_CACHE__TTL_SECONDS="600",
        VOCHI_CACHE__REFRESH_SECONDS="600",
        VOCHI_ADMIN__JWT_SECRET=TEST_JWT_SECRET,
    )
    assert cli(env, "units", "add", "0367", "--name", "Pilot").returncode == 0
    with running_daemon(env, tmp_path) as first, running_daemon(env, tmp_path) as second:
        daemons = [first, second]
        assert all(_mapping(d) == {} for d in daemons)  # both caches now hold the unit

        result = cli(env, "config", "map", "0367", "151=16")
        assert result.returncode == 0, result.stderr
        elapsed = _wait_for(daemons, {"151": 16}, since=time.monotonic())
        print(f"NOTIFY propagation to two daemons after CLI exit: {elapsed * 1000:.1f} ms")

        stats = httpx.get(first.url + "/stats").json()
        assert stats["config_cache"]["invalidations"] >= 1


def test_daemon_recovers_after_its_listener_connection_is_killed(
    database_url: str, tmp_path: Path
) -> None:
    env = scrubbed_env(
        VOCHI_DATABASE_URL=database_url,
        VOCHI_CACHE__TTL_SECONDS="600",
        VOCHI_CACHE__REFRESH_SECONDS="600",
        VOCHI_ADMIN__JWT_SECRET=TEST_JWT_SECRET,
    )
    assert cli(env, "units", "add", "0367", "--name", "Pilot").returncode == 0
    with running_daemon(env, tmp_path) as daemon:
        assert _mapping(daemon) == {}
        with psycopg.connect(database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'vochi-crm-config-listener' "
                "AND datname = current_database()"
            ).fetchone()
        assert killed is not None and killed[0] == 1

        deadline = time.monotonic() + 10
        while True:
            stats = httpx.get(daemon.url + "/stats").json()["listener"]
            if stats["connected"] and stats["reconnects"] >= 1:
                break
            assert time.monotonic() < deadline, f"listener did not reconnect: {stats}"
            time.sleep(0.05)
        assert httpx.get(daemon.url + "/health").status_code == 200

        assert cli(env, "config", "map", "0367", "152=18").returncode == 0
        _wait_for([daemon], {"152": 18}, since=time.monotonic())
