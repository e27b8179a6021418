"""Delivery under faults, end to end: real daemon processes, real PostgreSQL, the simulator."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.calls import call_events, interleaved, post_until_acknowledged
from tests.e2e.daemons import Daemon, cli, running_daemon, scrubbed_env
from tests.simulator_helpers import SimControl, running_simulator
from vochi_daemon.simulator import DEMO_API_KEY, create_simulator_app
from vochi_daemon.simulator.state import demo_module

pytestmark = pytest.mark.slow
OTHER_KEY = "other-key-not-secret-0002"


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with running_simulator(create_simulator_app(journal_size=100_000)) as url:
        yield url


@pytest.fixture
def sim(simulator: str) -> Iterator[SimControl]:
    control = SimControl(simulator)
    control.reset()
    control.control(account="other", api_key=OTHER_KEY, modules=[demo_module()],
                    users=[{"id": 16, "firstName": "Ivan", "lastName": "Petrov"}])
    yield control
    control.close()


def setup_units(env: dict[str, str], simulator: str, units: dict[str, str]) -> None:
    for number, key in units.items():
        for step in (
            ("units", "add", number, "--name", f"Unit {number}"),
            ("config", "set", number, f"api_url={simulator}", f"api_key={key}", "enabled=true"),
            ("config", "map", number, "151=16"),
        ):
            result = cli(env, *step)
            assert result.returncode == 0, result.stderr


def delivery(daemon: Daemon) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(daemon.url + "/stats", timeout=5).json()["delivery"]
    return stats


def wait_drained(daemons: list[Daemon], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = [delivery(d) for d in daemons]
        if all(not s["queue"] for s in stats) and all(s["in_flight"] == 0 for s in stats):
            return
        assert time.monotonic() < deadline, f"not drained: {[s['queue'] for s in stats]}"
        time.sleep(0.1)


def statuses(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM retailcrm_events "
            "WHERE event_type NOT LIKE '%%_module' GROUP BY status").fetchall()
    return Counter(dict(rows))


def telephony_requests(sim: SimControl, account: str = "demo") -> list[dict[str, Any]]:
    return [r for r in sim.requests(account=account, limit=100_000)
            if r["path"].startswith("/api/v5/telephony/")]


def requests_per_call(requests: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for r in requests:
        form = r["form"]
        if "event" in form:
            seen[(form["event"]["callExternalId"], form["event"]["type"])] += 1
        elif "calls" in form:
            seen[(form["calls"][0]["externalId"], "upload")] += 1
    return seen


def test_sigkill_mid_load_loses_nothing(
    database_url: str, simulator: str, sim: SimControl, tmp_path: Path
) -> None:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url, VOCHI_DELIVERY__LEASE_SECONDS="5")
    setup_units(env, simulator, {"0367": DEMO_API_KEY})
    sim.control(account="demo", latency_ms=20)  # keep deliveries in flight when the kill lands
    calls = [call_events("0367", f"77.{i}") for i in range(150)]
    events = list(interleaved(calls))
    acknowledged = 0
    with running_daemon(env, tmp_path) as first, httpx.Client(base_url=first.url) as http:
        for body in events[:200]:
            post_until_acknowledged(http, body, deadline=time.monotonic() + 30)
            acknowledged += 1
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    with running_daemon(env, tmp_path) as second, httpx.Client(base_url=second.url) as http:
        # the call services retry what was not acknowledged, and go on with the rest
        for body in events[200:]:
            post_until_acknowledged(http, body, deadline=time.monotonic() + 30)
            acknowledged += 1
        wait_drained([second])
    final = statuses(database_url)
    assert acknowledged == len(events)
    assert sum(final.values()) == len(events), final  # every acknowledged event is stored
    assert final["failed"] == 0
    seen = requests_per_call(telephony_requests(sim))
    uploads = {call for (call, kind) in seen if kind == "upload"}
    assert uploads == {f"77.{i}" for i in range(150)}  # every call reached the history
    resent = {key: n for key, n in seen.items() if n > 1}
    print(f"SIGKILL: {len(events)} events acknowledged, {sum(final.values())} stored, "
          f"statuses {dict(final)}, {sum(seen.values())} RetailCRM requests, "
          f"{len(resent)} sent more than once: {resent}")
    # at-least-once: only requests that were in flight at the kill may be repeated
    assert len(resent) <= 10


def test_retailcrm_down_then_back(
    database_url: str, simulator: str, sim: SimControl, tmp_path: Path
) -> None:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url, VOCHI_DELIVERY__RING_TTL_SECONDS="2")
    setup_units(env, simulator, {"0367": DEMO_API_KEY})
    sim.control(account="demo", fail={"mode": "503", "count": None})
    with running_daemon(env, tmp_path) as daemon, httpx.Client(base_url=daemon.url) as http:
        for body in interleaved(call_events("0367", f"88.{i}") for i in range(20)):
            assert http.post("/api/events", json=body).status_code == 202
        time.sleep(4)  # RetailCRM is down longer than the ring TTL
        during = len(sim.requests(account="demo", limit=100_000))
        breaker = delivery(daemon)["accounts"][f"{simulator} (key ••••{DEMO_API_KEY[-4:]})"][
            "breaker"
        ]
        sim.control(account="demo", fail={"mode": "none"})
        wait_drained([daemon], timeout=90)
    final = statuses(database_url)
    assert final["expired"] == 20, final  # stale pop-ups are not sent late
    assert final["delivered"] + final["skipped"] == 40, final  # bridges and hangups all done
    uploads = {k[0] for k in requests_per_call(telephony_requests(sim)) if k[1] == "upload"}
    assert uploads == {f"88.{i}" for i in range(20)}
    # no retry storm: the breaker opened; far fewer attempts than a retry-per-event loop
    assert breaker["trips"] >= 1
    assert during < 40, during


def test_wrong_key_pauses_only_that_unit(
    database_url: str, simulator: str, sim: SimControl, tmp_path: Path
) -> None:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url)
    setup_units(env, simulator, {"0367": DEMO_API_KEY, "0368": "wrong-key-0000-0000"})
    with running_daemon(env, tmp_path) as daemon, httpx.Client(base_url=daemon.url) as http:
        for unit in ("0367", "0368"):
            for body in call_events(unit, f"{unit}.1"):
                body["payload"]["UniqueId"] = f"{unit}.1"
                assert http.post("/api/events", json=body).status_code == 202
        deadline = time.monotonic() + 20
        while True:
            stats = delivery(daemon)
            done = stats["per_unit"].get("0367", {}).get("delivered", 0) >= 2
            if done and stats["alerts"]:
                break
            assert time.monotonic() < deadline, stats
            time.sleep(0.1)
        assert [a["unit"] for a in stats["alerts"]] == ["0368"]
        assert stats["alerts"][0]["reason"] == "invalid_key"
        assert statuses(database_url)["failed"] == 0  # paused events wait, they are not burned

        # the unit fixes its key: delivery resumes by itself
        fixed = cli(env, "config", "set", "0368", f"api_key={OTHER_KEY}")
        assert fixed.returncode == 0, fixed.stderr
        wait_drained([daemon], timeout=30)
        assert delivery(daemon)["alerts"] == []
    assert {k[0] for k in requests_per_call(telephony_requests(sim, "other"))} == {"0368.1"}


def test_a_burst_for_one_unit_never_trips_the_rate_limit(
    database_url: str, simulator: str, sim: SimControl, tmp_path: Path
) -> None:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url)
    setup_units(env, simulator, {"0367": DEMO_API_KEY})
    with running_daemon(env, tmp_path) as daemon, httpx.Client(base_url=daemon.url) as http:
        for body in interleaved(call_events("0367", f"99.{i}") for i in range(40)):
            assert http.post("/api/events", json=body).status_code == 202
        wait_drained([daemon], timeout=60)
        waits = delivery(daemon)["rate_limit_waits"]
    answered = Counter(r["status"] for r in sim.requests(account="demo", limit=100_000))
    assert answered[503] == 0, answered
    assert len(telephony_requests(sim)) == 120
    assert waits > 0  # our own limiter did the waiting


def test_two_daemons_share_the_queue_without_double_delivery(
    database_url: str, simulator: str, sim: SimControl, tmp_path: Path
) -> None:
    env = scrubbed_env(VOCHI_DATABASE_URL=database_url)
    setup_units(env, simulator, {"0367": DEMO_API_KEY})
    with running_daemon(env, tmp_path) as one, running_daemon(env, tmp_path) as two:
        leaders = [d for d in (one, two) if delivery(d)["leader"]]
        assert len(leaders) == 1
        for i, body in enumerate(interleaved(call_events("0367", f"66.{i}") for i in range(30))):
            target = (one, two)[i % 2]
            assert httpx.post(target.url + "/api/events", json=body).status_code == 202
        wait_drained([one, two])
        leader = leaders[0]
        follower = two if leader is one else one
        os.kill(leader.process.pid, signal.SIGTERM)
        leader.process.wait(timeout=20)
        deadline = time.monotonic() + 15
        while not delivery(follower)["leader"]:
            assert time.monotonic() < deadline, "the other daemon did not take over"
            time.sleep(0.1)
        for body in call_events("0367", "66.last"):
            assert httpx.post(follower.url + "/api/events", json=body).status_code == 202
        wait_drained([follower])
    seen = requests_per_call(telephony_requests(sim))
    assert all(n == 1 for n in seen.values()), {k: n for k, n in seen.items() if n > 1}
    assert len({k[0] for k in seen if k[1] == "upload"}) == 31
