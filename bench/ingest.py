"""Durable ingest: ``POST /api/events`` of the daemon (answer after COMMIT) versus a bare Starlette
endpoint on the same uvicorn settings (``bench/baseline_app.py``), in one run on one machine.

Per server, after a 2 s warm-up: a fixed offered rate (open loop, default 1,000 req/s for 15 s:
requests are released on schedule whatever the answers do, as wrk2 does) → p50/p99, waits for a
free connection included; then saturation with wrk (``-t2 -c64 -d15s``, a unique UniqueId per
request, ``bench/ingest.lua``) → req/s, p50/p99. ``hey -q`` is not used for the fixed rate: it
sends the same body every time, so every request after the first would be a duplicate and never
wait for a durable write.

Before each daemon's runs, the database's own durable-commit latency is sampled (one-row INSERT +
COMMIT from the harness): a group-commit writer's p99 cannot beat about twice that.

Delivery is paused for the whole run (the harness holds the dispatcher's advisory lock, as a standby
daemon would), so the daemon does ingest only. At the end every run's rows are counted against its
202 answers; for the open-loop runs every acknowledged row id is looked up.

    python bench/ingest.py [--duration 15] [--rate 1000] [--rounds 1] [--quiet-variants]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from common import (
    BENCH,
    RawHttp,
    Service,
    add_units,
    commit_latency,
    count_rows,
    cpu_seconds,
    cpu_used,
    daemon,
    delivery_paused,
    free_port,
    fresh_database,
    machine,
    percentile,
    postgres_pids,
    py_spy,
    report,
    run_async,
    service,
    throwaway_postgres,
)

HEADERS = [("Content-Type", "application/json")]
BODY = (
    '{{"enterprise_number":"{unit:04d}","event_type":"hangup","payload":{{"UniqueId":"{uid}",'
    '"Phone":"375291112233","CallType":0,"CallStatus":"2",'
    '"StartTime":"2025-01-01 10:00:00","EndTime":"2025-01-01 10:01:00"}}}}'
)


def wrk(
    url: str, prefix: str, units: int, threads: int, conns: int, seconds: float
) -> dict[str, Any]:
    argv = [
        "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(BENCH / "ingest.lua"), url, "--", prefix, str(units),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
    if match is None:
        raise RuntimeError(f"no result from wrk:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(match.group(1))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6)),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "statuses": raw["statuses"],
        "errors": {k: v for k, v in raw["errors"].items() if v},
        "command": " ".join(argv),
    }


async def open_loop(
    url: str, prefix: str, units: int, rate: float, seconds: float, conns: int
) -> dict[str, Any]:
    """``rate × seconds`` requests, request i due at ``start + i/rate`` whatever the answers do.

    Latency runs from when the request was released (its due time, or a little later: the event
    loop's timers have ~1 ms granularity, reported as ``release_lag``) to the last byte of the
    answer, including any wait for a free connection, so a server stall is not hidden."""
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue[RawHttp] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(RawHttp(host, int(port)))
    clock = time.perf_counter
    latency: list[float] = []
    lag: list[float] = []
    statuses: Counter[int] = Counter()
    ids: list[int] = []

    async def one(i: int, released: float) -> None:
        conn = await pool.get()
        body = BODY.format(unit=i % units + 1, uid=f"{prefix}-{i}").encode()
        try:
            status, answer = await conn.request("POST", "/api/events", body, HEADERS)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status, answer = 0, b""
            await conn.close()
        pool.put_nowait(conn)
        latency.append(clock() - released)
        statuses[status] += 1
        if status == 202 and (row_id := json.loads(answer).get("id")) is not None:
            ids.append(row_id)

    total = int(rate * seconds)
    start = clock() + 0.05
    tasks = []
    for i in range(total):
        due = start + i / rate
        if (wait := due - clock()) > 0:
            await asyncio.sleep(wait)
        now = clock()
        lag.append(now - due)
        tasks.append(asyncio.create_task(one(i, now)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    achieved = total / (clock() - start)
    while not pool.empty():
        await pool.get_nowait().close()
    return {
        "offered_rps": rate,
        "achieved_rps": round(achieved),
        "p50_ms": round(percentile(latency, 50) * 1000, 3),
        "p99_ms": round(percentile(latency, 99) * 1000, 3),
        "max_ms": round(max(latency) * 1000, 3),
        "release_lag_p99_ms": round(percentile(lag, 99) * 1000, 3),
        "statuses": {str(k): v for k, v in statuses.items()},
        "ids": ids,
    }


@contextlib.contextmanager
def measured_cpu(pids: Callable[[], list[int]], into: dict[str, Any], key: str) -> Iterator[None]:
    watched = pids()
    cpu0, t0 = cpu_seconds(watched), time.monotonic()
    yield
    used = cpu_used(cpu0, cpu_seconds(watched))
    into[key] = {"cpu_s": round(used, 2), "share": f"{used / (time.monotonic() - t0):.0%}"}


def batches(svc: Service) -> int:
    """Group commits the daemon's ingest writer has made so far (``/stats``); 0 for the baseline."""
    with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
        return int(httpx.get(svc.url + "/stats", timeout=5).json()["ingest"]["batches"])
    return 0


def bench_server(
    name: str, svc: Service, args: argparse.Namespace, round_no: int, profile: Path | None
) -> dict[str, Any]:
    prefix = f"{name}-r{round_no}"
    wrk(svc.url, f"warm-{prefix}", args.units, args.threads, args.connections, 2)
    result: dict[str, Any] = {"server": name, "round": round_no}
    if name.startswith("daemon"):
        result["db_commit_latency"] = commit_latency(args.database_url)
    time.sleep(1)
    before = batches(svc)
    with (
        py_spy(
            svc.pid, profile and profile.with_suffix(".fixed-rate.txt"), int(args.rate_seconds) + 10
        ),
        measured_cpu(lambda: [svc.pid], result, "server_cpu_fixed_rate"),
        measured_cpu(postgres_pids, result, "postgres_cpu_fixed_rate"),
    ):
        result["fixed_rate"] = run_async(
            open_loop(svc.url, f"rate-{prefix}", args.units, args.rate, args.rate_seconds,
                      args.rate_connections)
        )  # fmt: skip
    if commits := batches(svc) - before:
        result["fixed_rate"]["events_per_commit"] = round(
            args.rate * args.rate_seconds / commits, 1
        )
    time.sleep(1)
    before = batches(svc)
    with (
        py_spy(
            svc.pid, profile and profile.with_suffix(".saturation.txt"), int(args.duration) + 10
        ),
        measured_cpu(lambda: [svc.pid], result, "server_cpu_saturation"),
        measured_cpu(postgres_pids, result, "postgres_cpu_saturation"),
    ):
        result["saturation"] = wrk(
            svc.url, f"sat-{prefix}", args.units, args.threads, args.connections, args.duration
        )
    served = sum(result["saturation"]["statuses"].values())
    if commits := batches(svc) - before:
        result["saturation"]["events_per_commit"] = round(served / commits, 1)
    for who in ("server", "postgres"):
        cpu = result[f"{who}_cpu_saturation"]["cpu_s"]
        result[f"{who}_cpu_us_per_request"] = round(cpu / served * 1e6, 1)
    return result


def verify(database_url: str, results: list[dict[str, Any]], conns: int) -> dict[str, Any]:
    """Rows per run against the 202 answers of that run. A wrk run may leave up to ``-c`` requests
    whose COMMIT happened but whose answer wrk no longer read when its clock ran out."""
    out: dict[str, Any] = {}
    for r in results:
        if not r["server"].startswith("daemon"):
            continue
        prefix = f"{r['server']}-r{r['round']}"
        sat_rows = count_rows(
            database_url,
            "SELECT count(*) FROM retailcrm_events WHERE call_unique_id LIKE %s",
            (f"sat-{prefix}-%",),
        )
        sat_202 = r["saturation"]["statuses"].get("202", 0)
        ids = r["fixed_rate"].pop("ids")
        with psycopg.connect(database_url) as conn:
            found = conn.execute(
                "SELECT count(*) FROM retailcrm_events WHERE id = ANY(%s)", (ids,)
            ).fetchone()
        out[prefix] = {
            "saturation": f"{sat_rows} rows / {sat_202} × 202 "
            f"(unanswered in flight at wrk's end: {sat_rows - sat_202}, ≤ {conns})",
            "saturation_lost": max(0, sat_202 - sat_rows),
            "fixed_rate": f"{found[0] if found else 0} of {len(ids)} acknowledged ids found",
            "fixed_rate_lost": len(ids) - (found[0] if found else 0),
        }
    for r in results:
        r["fixed_rate"].pop("ids", None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--duration", type=float, default=15, help="wrk seconds per server")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000, help="offered req/s (open loop)")
    parser.add_argument("--rate-seconds", type=float, default=15)
    parser.add_argument("--rate-connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--quiet-variants",
        action="store_true",
        help="also measure both servers at log level warning (no uvicorn access log)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the daemon (round 1) into PROFILE.fixed-rate.txt and PROFILE.saturation.txt",
    )
    args = parser.parse_args()

    baseline_py = [sys.executable, str(BENCH / "baseline_app.py")]
    results: list[dict[str, Any]] = []
    variants = [("info", "")] + ([("warning", "-quiet")] if args.quiet_variants else [])
    with throwaway_postgres() as admin, fresh_database(admin) as url:
        add_units(url, args.units, "http://127.0.0.1:9")  # never contacted: delivery is paused
        args.database_url = url
        with delivery_paused(url):
            for round_no in range(1, args.rounds + 1):
                for level, suffix in variants:
                    port = free_port()
                    argv = [*baseline_py, "--port", str(port), "--log-level", level]
                    with service("baseline", argv, "/health", port) as svc:
                        results.append(bench_server(f"baseline{suffix}", svc, args, round_no, None))
                    with daemon(url, VOCHI_DAEMON__LOG_LEVEL=level) as svc:
                        profile = args.profile if not suffix and round_no == 1 else None
                        results.append(
                            bench_server(f"daemon{suffix}", svc, args, round_no, profile)
                        )
            checks = verify(url, results, args.connections)

    for r in results:
        report(f"ingest {r['server']} round {r['round']}", r)
    summary: dict[str, Any] = {**machine(), "verification": checks}
    for name in dict.fromkeys(r["server"] for r in results):
        mine = [r for r in results if r["server"] == name]
        summary[f"{name} (median of {len(mine)})"] = {
            "saturation_rps": statistics.median(r["saturation"]["rps"] for r in mine),
            "saturation_p50_ms": statistics.median(r["saturation"]["p50_ms"] for r in mine),
            "saturation_p99_ms": statistics.median(r["saturation"]["p99_ms"] for r in mine),
            "fixed_rate_p50_ms": statistics.median(r["fixed_rate"]["p50_ms"] for r in mine),
            "fixed_rate_p99_ms": statistics.median(r["fixed_rate"]["p99_ms"] for r in mine),
            "db_commit_p99_ms": statistics.median(
                r["db_commit_latency"]["p99_ms"] for r in mine if "db_commit_latency" in r
            )
            if name.startswith("daemon")
            else None,
            "cpu_us_per_request": statistics.median(r["server_cpu_us_per_request"] for r in mine),
            "postgres_cpu_us_per_request": statistics.median(
                r["postgres_cpu_us_per_request"] for r in mine
            ),
        }
    for _, suffix in variants:
        pairs = [
            (b, d)
            for b in results
            for d in results
            if b["server"] == f"baseline{suffix}"
            and d["server"] == f"daemon{suffix}"
            and b["round"] == d["round"]
        ]
        rps = [d["saturation"]["rps"] / b["saturation"]["rps"] for b, d in pairs]
        p99 = [d["fixed_rate"]["p99_ms"] / b["fixed_rate"]["p99_ms"] for b, d in pairs]
        cpu = [d["server_cpu_us_per_request"] / b["server_cpu_us_per_request"] for b, d in pairs]
        daemon_cpu = [d["server_cpu_us_per_request"] for _, d in pairs]
        summary[f"ratio daemon{suffix}/baseline{suffix} saturation rps (median)"] = round(
            statistics.median(rps), 3
        )
        summary[f"ratio daemon{suffix}/baseline{suffix} p99 @ {args.rate:g}/s (median)"] = round(
            statistics.median(p99), 2
        )
        summary[f"ratio daemon{suffix}/baseline{suffix} server CPU per request (median)"] = round(
            statistics.median(cpu), 2
        )
        summary[f"daemon{suffix} req/s one core could carry (1 / median CPU per request)"] = round(
            1e6 / statistics.median(daemon_cpu)
        )
    report("ingest summary", summary)


if __name__ == "__main__":
    main()
