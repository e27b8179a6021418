"""The operator's commands as real processes: two cron-style ``vochi-crm replay-event`` runs at once
over the same failed events, and ``vochi-crm tail-logs --follow`` watching a real daemon deliver
a call to the RetailCRM simulator (plus a planted row carrying a fake API key).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import psycopg
import pytest

from tests.conftest import vochi_crm_command
from tests.e2e.daemons import cli, running_daemon, scrubbed_env
from tests.integration.test_journal import FAKE_KEY, Seed
from tests.scenarios import load_scenario
from tests.simulator_helpers import running_simulator
from vochi_daemon.simulator import DEMO_API_KEY, create_simulator_app

pytestmark = pytest.mark.slow
TOKEN = "375290000000"


def test_two_cron_replays_at_once_requeue_every_event_exactly_once(database_url: str) -> None:
    env = {**scrubbed_env(VOCHI_DATABASE_URL=database_url), "COLUMNS": "200"}
    seed = Seed(database_url)
    seed.unit("0367")
    ids = seed.events("0367", 500)
    seed.events("0367", 20, status="delivered")  # never touched
    argv = [*vochi_crm_command(), "replay-event", "--status", "failed", "--since", "2h",
            "--limit", "300", "--json"]
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert len(out.splitlines()) == 1  # one summary line per run for cron's log
    summaries = [json.loads(out) for out, _ in outputs]
    got = [i for s in summaries for i in s["ids"]]
    # each run is bounded by its limit, together they cover all 500, and none twice
    assert all(s["requeued"] <= 300 and s["ok"] for s in summaries)
    assert sum(s["requeued"] for s in summaries) == 500
    assert sorted(got) == ids
    counts = seed.conn.execute(
        "SELECT status, count(*) FROM retailcrm_events GROUP BY status ORDER BY status"
    ).fetchall()
    assert counts == [("delivered", 20), ("pending", 500)]

    # the next cron run has nothing to do: silent, exit 0
    quiet = cli(env, "replay-event", "--status", "failed", "--since", "2h", "--limit", "300")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    seed.close()


class Lines:
    """A child's output stream read line by line in a thread, so the test can wait with a
    deadline instead of blocking on a pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, *needles: str, timeout: float) -> str:
        """The next line containing every needle (lines before it are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if all(needle in line for needle in needles):
                return line
        raise AssertionError(f"{needles!r} not printed within {timeout}s: {self.seen}")


@pytest.fixture
def daemon_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**scrubbed_env(VOCHI_DATABASE_URL=database_url), "COLUMNS": "200"}
    with running_simulator(create_simulator_app()) as sim:
        for step in (
            ("units", "add", "0367", "--name", "Demo", "--token", TOKEN),
            ("config", "set", "0367", f"api_url={sim}", f"api_key={DEMO_API_KEY}", "enabled=true"),
            ("config", "map", "0367", "150=19", "151=16", "152=18"),
        ):
            result = cli(env, *step)
            assert result.returncode == 0, result.stderr
        with running_daemon(env, tmp_path) as daemon:
            yield {**env, "DAEMON_URL": daemon.url}


def test_tail_follow_prints_new_rows_live_masked_and_stops_on_ctrl_c(
    daemon_env: dict[str, str], database_url: str
) -> None:
    tail = subprocess.Popen(
        [*vochi_crm_command(), "tail-logs", "--follow", "--json", "--unit", "0367"],
        env=daemon_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = Lines(tail.stdout), Lines(tail.stderr)  # type: ignore[arg-type]
    try:
        err.wait_for("Following the journal", timeout=30)
        # a call delivered by the real daemon: its RetailCRM requests appear live (the store
        # NOTIFYs; without it the tail would only see them at its 30 s re-check)
        scenario = load_scenario("simple_incoming_call", token=TOKEN)
        with httpx.Client(base_url=daemon_env["DAEMON_URL"]) as http:
            for event in scenario.events:
                body = {"token": TOKEN, "event_type": event.event_type, "payload": event.data}
                assert http.post("/api/events", json=body).status_code in (200, 202)
        unique_id = scenario.events[0].data["UniqueId"]
        request = json.loads(out.wait_for('"kind": "request"', unique_id, timeout=10))
        assert request["unit"] == "0367" and request["call_unique_id"] == unique_id
        assert request["status"] == "success" and request["response_time_ms"] is not None

        # a row planted with a fake key, written the way the store writes (row + NOTIFY)
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO integration_logs (enterprise_number, integration_type, event_type,"
                " request_data, status, error_message, call_unique_id) VALUES ('0367', "
                "'retailcrm', 'calls_upload', %s::jsonb, 'error', %s, 'planted.1')",
                (json.dumps({"apiKey": FAKE_KEY, "calls": [{"clientId": FAKE_KEY}]}),
                 f"HTTP 401 for X-API-KEY: {FAKE_KEY}"),
            )
            conn.execute("SELECT pg_notify('retailcrm_journal', '')")
        planted = json.loads(out.wait_for("planted.1", timeout=10))
        assert planted["kind"] == "request" and planted["status"] == "error"
        assert planted["request"]["apiKey"].endswith(FAKE_KEY[-4:])
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=15) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert FAKE_KEY not in "".join(out.seen + err.seen)
    assert DEMO_API_KEY not in "".join(out.seen + err.seen)
