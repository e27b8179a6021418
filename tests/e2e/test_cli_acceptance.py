"""The operations commands as ops run them: the real console script, against a real daemon, the
RetailCRM simulator and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.calls import call_events
from tests.e2e.daemons import Daemon, cli, running_daemon, scrubbed_env
from tests.simulator_helpers import running_simulator
from vochi_daemon.simulator import DEMO_API_KEY, create_simulator_app

pytestmark = pytest.mark.slow


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Daemon]]:
    with running_simulator(create_simulator_app()) as simulator:
        env = scrubbed_env(VOCHI_DATABASE_URL=database_url)
        for step in (
            ("units", "add", "0367", "--name", "Pilot"),
            ("units", "add", "0368", "--name", "Misconfigured"),
            ("config", "set", "0367", f"api_url={simulator}", f"api_key={DEMO_API_KEY}",
             "enabled=true"),
            ("config", "map", "0367", "151=16", "152=18"),
            ("config", "set", "0368", f"api_url={simulator}", "api_key=wrong-key-0000-0000"),
        ):
            result = cli(env, *step)
            assert result.returncode == 0, result.stderr
        with running_daemon(env, tmp_path) as daemon:
            yield env, daemon


def test_operations_commands_end_to_end(world: tuple[dict[str, str], Daemon]) -> None:
    env, daemon = world
    for body in call_events("0367", "1757765248.7"):
        assert httpx.post(daemon.url + "/api/events", json=body).status_code == 202
    deadline = time.monotonic() + 20
    while httpx.get(daemon.url + "/stats").json()["delivery"]["queue"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    checked = cli(env, "test-connection", "0367", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert DEMO_API_KEY not in checked.stdout

    wrong = cli(env, "test-connection", "0368")
    assert wrong.returncode == 1
    assert "✗" in wrong.stdout
    assert "wrong-key-0000-0000" not in wrong.stdout + wrong.stderr
    print("\n$ vochi-crm test-connection 0368\n" + wrong.stdout)

    registered = cli(env, "register", "0367", "--json")
    assert registered.returncode == 0, registered.stdout + registered.stderr

    listed = cli(env, "events", "list", "--unit", "0367", "--json")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    calls = [e for e in events if e["call_unique_id"] == "1757765248.7"]
    assert sorted(e["event_type"] for e in calls) == ["bridge", "dial", "hangup"]
    assert all(e["status"] in ("delivered", "skipped") for e in calls)

    story = cli(env, "events", "show", "--call", "1757765248.7", "--unit", "0367")
    assert story.returncode == 0, story.stderr
    for step in ("call_event:in", "call_event:hangup", "calls_upload"):
        assert step in story.stdout

    tail = cli(env, "tail-logs", "--unit", "0367", "--json")
    assert tail.returncode == 0, tail.stderr
    rows = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert rows
    assert DEMO_API_KEY not in tail.stdout

    nothing = cli(env, "replay-event", "--unit", "0367", "--status", "failed")
    assert nothing.returncode == 0
    assert nothing.stdout == ""  # quiet for cron when there is nothing to do

    bad = cli(env, "replay-event", "--since", "yesterday-ish")
    assert bad.returncode == 2
    assert "--since" in bad.stdout + bad.stderr
