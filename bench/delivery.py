"""End-to-end delivery: calls posted to the daemon, delivered to the RetailCRM simulator.

100 units (default), each on its own simulator account and API key, so the per-key limits (10/s,
40/s for telephony) allow 100 × 40 = 4,000 telephony requests/s in all. Each call is an incoming
call answered by 151: dial → ``call/event`` type ``in``; bridge → nothing; hangup → ``call/event``
type ``hangup`` then ``calls/upload``. Events of a call are posted in order (the next after the
202), many calls at once, as fast as possible; then the harness waits until ``GET /stats`` shows
the queue empty and nothing in flight.

Baseline, in the same run and before the daemon starts: the same RetailCRM requests (the mapping's
own output for the same calls) sent straight to the simulator by a lean keep-alive client at the
dispatcher's concurrency (``in_flight``, 200), each call's requests in order. The ratio says how
much of what the simulator can take the pipeline achieves.

Order check: from the simulator's journal, per call, the successful requests must be exactly
``in`` < ``hangup`` < ``calls/upload`` (journal sequence numbers).

    python bench/delivery.py [--calls 2000] [--units 100] [--split] [--profile daemon.txt]

``--split`` runs ingest and delivery in two daemon processes (the calls are posted to an instance
with ``VOCHI_DELIVERY__ENABLED=false``; the other one delivers), as a deployment with separate
ingest and delivery instances would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
from common import (
    MAPPING,
    RawHttp,
    Service,
    add_units,
    api_key,
    cpu_seconds,
    cpu_used,
    daemon,
    fresh_database,
    machine,
    percentile,
    postgres_pids,
    py_spy,
    report,
    run_async,
    sim_accounts,
    simulator,
    throwaway_postgres,
    unit_number,
)

from vochi_crm.pipeline.callstate import CallState
from vochi_crm.pipeline.mapping import plan_event
from vochi_crm.pipeline.plan import CallEventRequest

Event = tuple[str, dict[str, Any]]
EXPECTED = ["in", "hangup", "upload"]


def call_events(call_id: str) -> list[Event]:
    end = datetime.now().replace(microsecond=0)
    start = (end - timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S")
    phone = "375291112233"
    return [
        ("dial", {"UniqueId": call_id, "Phone": phone, "CallType": 0,
                  "Extensions": ["151", "152"], "Trunk": "0001363"}),
        ("bridge", {"UniqueId": call_id, "CallerIDNum": phone, "ConnectedLineNum": "151",
                    "CallType": 0}),
        ("hangup", {"UniqueId": call_id, "Phone": phone, "CallType": 0, "CallStatus": "2",
                    "Extensions": ["151"], "StartTime": start,
                    "EndTime": end.strftime("%Y-%m-%d %H:%M:%S")}),
    ]  # fmt: skip


def calls(prefix: str, count: int, units: int) -> list[tuple[int, str]]:
    """(unit index, UniqueId) of every call, spread round-robin over the units."""
    return [(i % units + 1, f"{prefix}-{i}") for i in range(count)]


def wire_requests(call_id: str) -> list[tuple[str, bytes]]:
    """The RetailCRM requests the mapping plans for one call, form-encoded as the client sends
    them (entity as one compact JSON field)."""
    state, out = CallState(), []
    for event_type, payload in call_events(call_id):
        plan = plan_event(event_type, payload, MAPPING, state, received_at=datetime.now())
        state = plan.state
        for request in plan.requests:
            value: Any
            if isinstance(request, CallEventRequest):
                field, value = "event", request.event
            else:
                field, value = "calls", request.calls
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            out.append((request.path, urlencode({field: text}).encode()))
    return out


async def workers(n: int, jobs: Iterator[Any], work: Any, host: str, port: int) -> None:
    """``n`` tasks, each with its own keep-alive connection, taking jobs until none are left."""

    async def worker() -> None:
        conn = RawHttp(host, port)
        try:
            for job in jobs:  # a shared iterator: each job is taken once
                await work(conn, job)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(n)))


async def baseline(sim: str, todo: list[tuple[int, str]], concurrency: int) -> dict[str, Any]:
    host, port = sim.removeprefix("http://").split(":")
    statuses: Counter[int] = Counter()
    latency: list[float] = []
    prepared = [(unit, wire_requests(call_id)) for unit, call_id in todo]

    async def send_call(conn: RawHttp, job: tuple[int, list[tuple[str, bytes]]]) -> None:
        unit, requests = job
        headers = [
            ("X-API-KEY", api_key(unit)),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ]
        for path, body in requests:
            sent = time.perf_counter()
            status, _ = await conn.request("POST", path, body, headers)
            latency.append(time.perf_counter() - sent)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.wait_for(
        workers(concurrency, iter(prepared), send_call, host, int(port)), timeout=300
    )
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed),
        "request_p50_ms": round(percentile(latency, 50) * 1000, 3),
        "request_p99_ms": round(percentile(latency, 99) * 1000, 3),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def post_calls(url: str, todo: list[tuple[int, str]], concurrency: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    statuses: Counter[int] = Counter()
    headers = [("Content-Type", "application/json")]

    async def post_call(conn: RawHttp, job: tuple[int, str]) -> None:
        unit, call_id = job
        for event_type, payload in call_events(call_id):
            body = {"enterprise_number": unit_number(unit), "event_type": event_type,
                    "payload": payload}  # fmt: skip
            status, _ = await conn.request(
                "POST", "/api/events", json.dumps(body).encode(), headers
            )
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.wait_for(
        workers(concurrency, iter(todo), post_call, host, int(port)), timeout=300
    )
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    return {
        "events": total,
        "seconds": round(elapsed, 3),
        "events_per_s": round(total / elapsed),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def wait_drained(svc: Service, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=svc.url, timeout=10) as http:
        while True:
            delivery = http.get("/stats").json()["delivery"]
            if delivery["leader"] and not delivery["queue"] and delivery["in_flight"] == 0:
                return dict(delivery)
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue not drained in {timeout:.0f} s: {delivery['queue']}")
            time.sleep(0.1)


def queue_figures(database_url: str, prefix: str) -> dict[str, Any]:
    """Throughput and lag of this run's events, from the queue table itself."""
    like = (prefix + "%",)
    with psycopg.connect(database_url) as conn:
        by_status: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM retailcrm_events WHERE call_unique_id LIKE %s "
                "GROUP BY status",
                like,
            ).fetchall()
        )
        errors = dict(
            conn.execute(
                "SELECT last_error, count(*) FROM retailcrm_events WHERE call_unique_id LIKE %s "
                "AND status = 'failed' GROUP BY last_error ORDER BY count(*) DESC LIMIT 5",
                like,
            ).fetchall()
        )
        row = conn.execute(
            """
            SELECT EXTRACT(EPOCH FROM max(updated_at) - min(received_at)),
                   EXTRACT(EPOCH FROM max(delivered_at) FILTER (WHERE status = 'delivered')
                                      - min(received_at)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM
                       delivered_at - received_at)) FILTER (WHERE status = 'delivered'),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM
                       delivered_at - received_at)) FILTER (WHERE status = 'delivered'),
                   max(EXTRACT(EPOCH FROM delivered_at - received_at))
            FROM retailcrm_events WHERE call_unique_id LIKE %s""",
            like,
        ).fetchone()
    assert row is not None
    span_all, span_delivered, p50, p99, worst = (float(v or 0) for v in row)
    finished = sum(n for s, n in by_status.items() if s not in ("pending", "processing"))
    delivered = by_status.get("delivered", 0)
    return {
        "events_by_status": by_status,
        **({"failures (most common last_error)": errors} if errors else {}),
        "first_received_to_last_finished_s": round(span_all, 3),
        "events_finished_per_s": round(finished / span_all) if span_all else None,
        "events_delivered_per_s": round(delivered / span_delivered) if span_delivered else None,
        "lag_p50_ms": round(p50 * 1000, 1),
        "lag_p99_ms": round(p99 * 1000, 1),
        "lag_max_ms": round(worst * 1000, 1),
    }


def journal_figures(sim: str, prefix: str) -> dict[str, Any]:
    """Requests the simulator received for this run's calls: rate, statuses, order per call."""
    with httpx.Client(base_url=sim, timeout=60) as http:
        entries = http.get("/_sim/requests", params={"limit": 10**7}).json()["requests"]
    per_call: defaultdict[str, list[str]] = defaultdict(list)
    statuses: Counter[int] = Counter()
    times: list[datetime] = []
    for entry in sorted(entries, key=lambda e: e["seq"]):
        form = entry["form"]
        if "event" in form:
            call, kind = form["event"].get("callExternalId", ""), form["event"].get("type")
        elif "calls" in form:
            call, kind = form["calls"][0].get("externalId", ""), "upload"
        else:
            continue
        if not str(call).startswith(prefix):
            continue
        statuses[entry["status"]] += 1
        times.append(datetime.fromisoformat(entry["time"]))
        if entry["status"] == 200:
            per_call[call].append(kind)
    violations = missing = duplicates = 0
    for kinds in per_call.values():
        if len(set(kinds)) != len(kinds):
            duplicates += 1
        present = [k for k in EXPECTED if k in kinds]
        first_seen = list(dict.fromkeys(kinds))
        if first_seen != present:
            violations += 1
        elif present != EXPECTED:
            missing += 1
    span = (max(times) - min(times)).total_seconds() if times else 0.0
    total = sum(statuses.values())
    return {
        "retailcrm_requests": total,
        "retailcrm_statuses": {str(k): v for k, v in statuses.items()},
        "retailcrm_requests_per_s": round(total / span) if span else None,
        "calls_seen": len(per_call),
        "order_violations": violations,
        "calls_missing_a_request": missing,
        "calls_with_duplicates": duplicates,
    }


def simulator_capacity(sim: str, units: int, calls_n: int, concurrency: int) -> dict[str, Any]:
    """The baseline: the same requests straight to the simulator, per-key limits lifted (so the
    figure is the simulator's own capacity), best of three; then the limits are put back."""
    sim_accounts(sim, units, rate_limits=False)
    runs = [
        run_async(baseline(sim, calls(f"base{n}", calls_n, units), concurrency)) for n in range(3)
    ]
    sim_accounts(sim, units, rate_limits=True)
    best = max(runs, key=lambda r: r["requests_per_s"])
    ceiling = min(best["requests_per_s"], units * 40)
    return {**best, "runs_requests_per_s": [r["requests_per_s"] for r in runs],
            "ceiling_requests_per_s": ceiling}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--post-concurrency", type=int, default=64, help="calls posted at once")
    parser.add_argument(
        "--baseline-concurrency", type=int, default=200, help="the dispatcher's in_flight"
    )
    parser.add_argument("--timeout", type=float, default=240, help="max seconds to drain")
    parser.add_argument("--profile", type=Path, help="py-spy the daemon while it works, here")
    parser.add_argument(
        "--split",
        action="store_true",
        help="ingest and delivery in two daemon processes: the events are posted to a second "
        "instance started with VOCHI_DELIVERY__ENABLED=false",
    )
    args = parser.parse_args()

    results: dict[str, Any] = {"calls": args.calls, "units": args.units, "split": args.split}
    with throwaway_postgres() as admin, fresh_database(admin) as url, simulator() as sim:
        add_units(url, args.units, sim.url)
        base = simulator_capacity(sim.url, args.units, args.calls, args.baseline_concurrency)
        results["baseline (direct to simulator)"] = base
        time.sleep(1.5)  # let the simulator's per-key one-second windows empty
        with contextlib.ExitStack() as stack:
            svc = stack.enter_context(daemon(url))
            front = (
                stack.enter_context(daemon(url, VOCHI_DELIVERY__ENABLED="false"))
                if args.split
                else svc
            )
            # warm-up: one call per unit, so each account's HTTP client exists before timing
            started = time.perf_counter()
            run_async(post_calls(front.url, calls("warm", args.units, args.units), 16))
            wait_drained(svc, args.timeout)
            results["warm-up (1 call per unit) s"] = round(time.perf_counter() - started, 2)
            daemons = sorted({svc.pid, front.pid})
            watched = [*daemons, sim.pid, *postgres_pids()]
            cpu0, t0 = cpu_seconds(watched), time.monotonic()
            with py_spy(svc.pid, args.profile, int(args.timeout)):
                todo = calls("e2e", args.calls, args.units)
                posted = run_async(post_calls(front.url, todo, args.post_concurrency))
                stats = wait_drained(svc, args.timeout)
            cpu1, wall = cpu_seconds(watched), time.monotonic() - t0
            results["posting"] = posted
            results.update(queue_figures(url, "e2e-"))
            results.update(journal_figures(sim.url, "e2e-"))
            results["rate_limit_waits"] = stats.get("rate_limit_waits")
            groups = [("daemon", [svc.pid])]
            if args.split:
                groups = [("daemon (delivery)", [svc.pid]), ("daemon (ingest)", [front.pid])]
            groups += [
                ("simulator", [sim.pid]),
                ("postgres", [p for p in watched if p not in (*daemons, sim.pid)]),
            ]
            used = {
                name: cpu_used({p: cpu0[p] for p in pids if p in cpu0}, cpu1)
                for name, pids in groups
            }
            results["cpu_share (post+drain)"] = {k: f"{v / wall:.0%}" for k, v in used.items()}
            used["daemon"] = cpu_used({p: cpu0[p] for p in daemons}, cpu1)
            events = posted["events"]
            results["daemon CPU µs per event (ingest + delivery)"] = round(
                used["daemon"] / events * 1e6
            )
            results["events/s one daemon core could carry"] = round(events / used["daemon"])
    rps = results.get("retailcrm_requests_per_s") or 0
    results["ratio pipeline/baseline RetailCRM req/s"] = round(
        rps / base["ceiling_requests_per_s"], 3
    )
    results.update(machine())
    report("delivery", results)


if __name__ == "__main__":
    main()
