"""Every shared call scenario end to end: a real daemon process on real PostgreSQL receives the
events over HTTP and delivers them to the RetailCRM simulator, which must receive exactly the
requests the mapping plans for each call, in order, each once.

The exact request list per scenario is spelled out in tests/unit/test_scenarios_mapping.py; this
test proves the pipeline (ingest, queue, per-call order, call state, client) puts exactly that on
the wire.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.daemons import Daemon, cli, running_daemon, scrubbed_env
from tests.scenarios import LegBook, load_scenario, scenario_names
from tests.simulator_helpers import SimControl
from vochi_crm.events import QUEUED_TYPES
from vochi_crm.pipeline.callstate import CallState
from vochi_crm.pipeline.mapping import plan_event
from vochi_crm.pipeline.plan import CallEventRequest
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = pytest.mark.slow
MAPPING = {"150": 19, "151": 16, "152": 18}
TOKEN = "375290000000"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")



@pytest.fixture
def daemon(database_url: str, simulator: str, tmp_path: Path) -> Iterator[Daemon]:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url)
    steps = [
        ("units", "add", "0367", "--name", "Demo", "--token", TOKEN),
        ("config", "set", "0367", f"api_url={simulator}", f"api_key={DEMO_API_KEY}",
         "enabled=true"),
        ("config", "map", "0367", *(f"{ext}={uid}" for ext, uid in MAPPING.items())),
    ]
    for step in steps:
        result = cli(env, *step)
        assert result.returncode == 0, result.stderr
    with running_daemon(env, tmp_path) as running:
        yield running


def expected_requests(events: list[tuple[str, dict[str, Any]]]) -> dict[str, list[Any]]:
    """Fold the pure mapping over the events of each call, as the worker does."""
    states: dict[str, CallState] = defaultdict(CallState)
    legs = LegBook()
    planned: dict[str, list[Any]] = defaultdict(list)
    for event_type, payload in events:
        unique_id = payload.get("UniqueId")
        if event_type not in QUEUED_TYPES or not unique_id:
            continue
        now = datetime.now()
        state = legs.link(event_type, payload, states[unique_id], now)
        plan = plan_event(event_type, payload, MAPPING, state, received_at=now)
        states[unique_id] = plan.state
        for request in plan.requests:
            body = request.event if isinstance(request, CallEventRequest) else request.calls
            planned[unique_id].append((request.path, body))
    return planned


def received_requests(sim: SimControl) -> dict[str, list[Any]]:
    got: dict[str, list[Any]] = defaultdict(list)
    for entry in sim.requests():
        form = entry["form"]
        if "event" in form:
            got[form["event"]["callExternalId"]].append((entry["path"], form["event"]))
        elif "calls" in form:
            got[form["calls"][0]["externalId"]].append((entry["path"], form["calls"]))
    return got


def without_receive_times(requests: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``date`` and ``durationWaiting`` may come from when the daemon received the events (for
    payloads without times); the test cannot know those instants, so it checks their form only."""
    out: dict[str, list[Any]] = {}
    for call, items in requests.items():
        out[call] = []
        for path, body in items:
            if isinstance(body, list):
                body = [{k: v for k, v in c.items() if k not in ("date", "durationWaiting")}
                        for c in body]
                for call_record in body:
                    assert "externalId" in call_record
            out[call].append((path, body))
    return out


def wait_until_drained(daemon: Daemon, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        delivery = httpx.get(daemon.url + "/stats").json()["delivery"]
        if delivery["leader"] and not delivery["queue"] and delivery["in_flight"] == 0:
            return dict(delivery)
        assert time.monotonic() < deadline, f"queue not drained: {delivery['queue']}"
        time.sleep(0.05)


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_reaches_retailcrm_exactly_as_planned(
    name: str, daemon: Daemon, simulator: str
) -> None:
    sim = SimControl(simulator)
    # enabling the unit queued its module registration: let it finish before counting requests
    baseline = wait_until_drained(daemon)["per_unit"].get("0367", {}).get("requests_ok", 0)
    sim.reset()
    scenario = load_scenario(name, token=TOKEN)
    sent: list[tuple[str, dict[str, Any]]] = []
    with httpx.Client(base_url=daemon.url) as http:
        for event in scenario.events:
            body = {"token": TOKEN, "event_type": event.event_type, "payload": event.data}
            response = http.post("/api/events", json=body)
            assert response.status_code in (200, 202), response.text
            sent.append((event.event_type, event.data))
        # a retransmission of every event changes nothing
        for event in scenario.events:
            again = http.post("/api/events", json={
                "token": TOKEN, "event_type": event.event_type, "payload": event.data})
            assert again.status_code == 200, again.text

    stats = wait_until_drained(daemon)
    expected = expected_requests(sent)
    received = received_requests(sim)
    for items in received.values():
        for path, body in items:
            if path.endswith("/calls/upload"):
                assert all(DATE.match(call["date"]) for call in body), body
    assert without_receive_times(received) == without_receive_times(expected)
    assert sum(len(v) for v in expected.values()) == stats["per_unit"].get("0367", {}).get(
        "requests_ok", 0) - baseline
    sim.close()
