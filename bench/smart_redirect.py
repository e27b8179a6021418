"""Smart-redirect overhead (our time, excluding RetailCRM's) at a fixed rate; the cache-hit cost.

1. In process: ``SmartRedirect.handle()`` answering from the cache, N calls → µs per call (our
   code's CPU only, no HTTP), against an ``async def`` that looks a dict up and builds the answer.
2. Through the daemon (the real app on uvicorn, real PostgreSQL, the simulator as RetailCRM with a
   fixed added latency, default 20 ms), an open-loop fixed rate (default 200 req/s for 15 s):
   - miss: every request a different customer's phone (RetailCRM asked every time). Our time
     excluding RetailCRM's, per request: the answer's ``elapsed_ms`` − ``crm_ms`` (RetailCRM's
     part as our client measured it: request sent → answer read; its p50/p99 is
     ``ours_ms_*``). Cross-checks from outside: the daemon's latency − the latency of the same
     client asking the simulator directly for the same phones at the same rate in the same run;
   - hit: the same phones again, all cached; baseline: the bare Starlette endpoint
     (``bench/baseline_app.py``) at the same rate: overhead = hit latency − bare latency.
   Latency runs from a request's due time to the last byte of its answer (open loop, as wrk2).

    python bench/smart_redirect.py [--rate 200] [--seconds 15] [--latency-ms 20] [--units 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH,
    RawHttp,
    account_name,
    add_units,
    api_key,
    cpu_seconds,
    cpu_used,
    daemon,
    free_port,
    fresh_database,
    machine,
    percentile,
    py_spy,
    report,
    run_async,
    service,
    sim_accounts,
    simulator,
    throwaway_postgres,
    unit_number,
)

JSON = [("Content-Type", "application/json")]


def phone(unit: int, j: int) -> str:
    return f"+37544{unit:03d}{j:04d}"


def add_customers(sim_url: str, units: int, per_unit: int, latency_ms: float) -> None:
    with httpx.Client(base_url=sim_url, timeout=30) as http:
        for u in range(1, units + 1):
            customers = [
                {"id": 10_000 + j, "firstName": f"C{j}", "lastName": f"Unit{u}",
                 "managerId": 16 if j % 2 else 18, "phones": [phone(u, j)]}
                for j in range(per_unit)
            ]  # fmt: skip
            body = {"account": account_name(u), "customers": customers, "latency_ms": latency_ms}
            http.post("/_sim/control", json=body).raise_for_status()


Request = Callable[[int], tuple[str, str, bytes, list[tuple[str, str]]]]


async def open_loop(url: str, make: Request, total: int, rate: float, conns: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue[RawHttp] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(RawHttp(host, int(port)))
    clock = time.perf_counter
    latency: list[float] = []
    elapsed: list[float] = []
    ours: list[float] = []
    statuses: Counter[int] = Counter()
    sources: Counter[str] = Counter()

    async def one(i: int, released: float) -> None:
        method, path, body, headers = make(i)
        conn = await pool.get()
        try:
            status, answer = await conn.request(method, path, body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status, answer = 0, b""
            await conn.close()
        pool.put_nowait(conn)
        latency.append(clock() - released)
        statuses[status] += 1
        if status == 200 and path.endswith("smart-redirect"):
            data = json.loads(answer)
            elapsed.append(data["elapsed_ms"])
            if data.get("crm_ms") is not None:
                ours.append(data["elapsed_ms"] - data["crm_ms"])
            sources[data["source"]] += 1

    start = clock() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        if (wait := due - clock()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=total / rate + 60)
    achieved = total / (clock() - start)
    while not pool.empty():
        await pool.get_nowait().close()
    result: dict[str, Any] = {
        "achieved_rps": round(achieved),
        "p50_ms": round(percentile(latency, 50) * 1000, 3),
        "p99_ms": round(percentile(latency, 99) * 1000, 3),
        "statuses": {str(k): v for k, v in statuses.items()},
    }
    if elapsed:
        result["elapsed_ms_p50"] = round(percentile(elapsed, 50), 3)
        result["elapsed_ms_p99"] = round(percentile(elapsed, 99), 3)
        result["sources"] = dict(sources)
    if ours:
        result["ours_ms_p50"] = round(percentile(ours, 50), 3)
        result["ours_ms_p99"] = round(percentile(ours, 99), 3)
    return result


def in_process(calls: int) -> dict[str, Any]:
    """``SmartRedirect.handle`` on a cache hit vs a plain dict lookup building the same answer."""
    from vochi_crm.journal_writer import JournalWriter
    from vochi_crm.retailcrm_config import RetailCrmConfig
    from vochi_crm.settings import load_settings
    from vochi_crm.smart_redirect import ManagerInfo, RedirectRequest, SmartRedirect
    from vochi_crm.units import Unit

    config = RetailCrmConfig(enabled=True, api_url="http://127.0.0.1:9", api_key="bench-key-0000",
                             user_mappings={"151": 16, "152": 18})  # fmt: skip
    unit = Unit("0001", "Bench", None, None, 22, "root", True, config, None)

    async def resolve(number: str | None, token: str | None) -> Unit:
        return unit

    async def main() -> dict[str, Any]:
        # never started: rows just queue (drained between rounds), as in the daemon's hot path
        journal = JournalWriter(None, max_queue=calls + 10)  # type: ignore[arg-type]
        service_ = SmartRedirect(load_settings(), resolve, journal, None)

        async def fetch(cfg: RetailCrmConfig, key: str) -> ManagerInfo:
            return ManagerInfo(16, "151", "Klim Maria")

        service_._fetch = fetch  # type: ignore[method-assign]  # RetailCRM is not the subject
        request = RedirectRequest("0001", None, "+375291234567")
        await service_.handle(request)  # the miss that fills the cache
        table = {"375291234567": ManagerInfo(16, "151", "Klim Maria")}

        async def plain(req: RedirectRequest) -> dict[str, Any]:
            info = table[req.phone.lstrip("+")]
            return {"extension": info.manager_code, "manager_id": info.manager_id,
                    "customer_name": info.customer_name, "source": "cache"}  # fmt: skip

        timings = {}
        for name, call in (("handle", service_.handle), ("plain_dict", plain)):
            best = float("inf")
            for _ in range(3):
                while not journal._queue.empty():
                    journal._queue.get_nowait()
                started = time.perf_counter()
                for _ in range(calls):
                    await call(request)
                best = min(best, time.perf_counter() - started)
            timings[name] = best / calls * 1e6
        assert service_.sources["cache"] >= 3 * calls
        await service_.aclose()
        return {
            "calls": calls,
            "handle_hit_us": round(timings["handle"], 2),
            "plain_dict_us": round(timings["plain_dict"], 2),
            "ratio": round(timings["handle"] / timings["plain_dict"], 1),
        }

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--calls", type=int, default=50_000, help="in-process hit calls")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the miss run")
    args = parser.parse_args()
    total = int(args.rate * args.seconds)
    per_unit = -(-total // args.units)
    print("machine:", machine())
    report("smart redirect, in process, cache hit", in_process(args.calls))

    with throwaway_postgres() as admin, fresh_database(admin) as url, simulator() as sim:
        sim_accounts(sim.url, args.units, rate_limits=False)
        add_customers(sim.url, args.units, per_unit, args.latency_ms)
        add_units(url, args.units, sim.url)

        def ask(i: int) -> tuple[str, str, bytes, list[tuple[str, str]]]:
            u, j = i % args.units + 1, i // args.units
            body = {"enterprise_number": unit_number(u), "phone": phone(u, j)}
            return "POST", "/api/smart-redirect", json.dumps(body).encode(), JSON

        def direct(i: int) -> tuple[str, str, bytes, list[tuple[str, str]]]:
            u, j = i % args.units + 1, i // args.units
            query = f"phone=%2B{phone(u, j)[1:]}&details=1&ignoreStatus=1"
            return "GET", f"/api/v5/telephony/manager?{query}", b"", [("X-API-KEY", api_key(u))]

        def bare(i: int) -> tuple[str, str, bytes, list[tuple[str, str]]]:
            return "POST", "/api/events", ask(i)[2], JSON

        results: dict[str, Any] = {"rate": args.rate, "seconds": args.seconds,
                                   "retailcrm_latency_ms": args.latency_ms}  # fmt: skip
        run = lambda target, make: run_async(  # noqa: E731
            open_loop(target, make, total, args.rate, args.connections))
        results["retailcrm_direct"] = run(sim.url, direct)
        with daemon(url) as svc:
            warm = lambda i: ("POST", "/api/smart-redirect", json.dumps(  # noqa: E731
                {"enterprise_number": unit_number(i % args.units + 1), "phone": "+375000000000"}
            ).encode(), JSON)
            run_async(open_loop(svc.url, warm, 200, 100, 8))  # connections, code paths warm
            cpu0 = cpu_seconds([svc.pid])
            with py_spy(svc.pid, args.profile, int(args.seconds) + 10):
                results["daemon_miss"] = run(svc.url, ask)
            results["daemon_hit"] = run(svc.url, ask)
            results["daemon_cpu_s"] = round(cpu_used(cpu0, cpu_seconds([svc.pid])), 2)
        port = free_port()
        argv = [sys.executable, str(BENCH / "baseline_app.py"), "--port", str(port)]
        with service("baseline", argv, "/health", port) as base:
            run_async(open_loop(base.url, bare, 200, 100, 8))
            results["bare_starlette"] = run(base.url, bare)

    miss, hit = results["daemon_miss"], results["daemon_hit"]
    crm, base = results["retailcrm_direct"], results["bare_starlette"]
    results["overhead_miss_p50_ms"] = round(miss["p50_ms"] - crm["p50_ms"], 3)
    results["overhead_miss_p99_ms"] = round(miss["p99_ms"] - crm["p99_ms"], 3)
    results["overhead_miss_in_daemon_p99_ms"] = round(
        miss["elapsed_ms_p99"] - args.latency_ms, 3)
    results["overhead_hit_p50_ms"] = round(hit["p50_ms"] - base["p50_ms"], 3)
    results["overhead_hit_p99_ms"] = round(hit["p99_ms"] - base["p99_ms"], 3)
    report("smart redirect through the daemon", results)


if __name__ == "__main__":
    main()
