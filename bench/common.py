"""Shared plumbing of the benchmarks: a throwaway PostgreSQL and database, bench units, the daemon
and the simulator as subprocesses, a lean keep-alive HTTP/1.1 client, and the machine description.

Everything here is started by the harness and stopped by it (SIGTERM, then wait; SIGKILL only if a
process ignores SIGTERM for 15 s), by the PID it got; temporary databases are dropped and the
embedded cluster's directory removed. Load only ever targets 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
VOCHI = str(BIN / "vochi-crm") if (BIN / "vochi-crm").exists() else "vochi-crm"
DISPATCHER_LOCK = "SELECT pg_try_advisory_lock(hashtext('vochi-crm:dispatcher')) AS held"


# -- machine ---------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def report(title: str, results: dict[str, Any]) -> None:
    """Print a result block: human lines, then one JSON line for the record."""
    print(f"\n== {title} ==")
    for key, value in results.items():
        print(f"{key:>32}: {value}")
    print("JSON " + json.dumps({"benchmark": title, **results}, default=str))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- PostgreSQL ------------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Admin conninfo of a server where we may CREATE DATABASE: VOCHI_TEST_DATABASE_URL, or a
    fresh embedded cluster in a temp dir (mode 755: as root the cluster runs as ``nobody``)."""
    given = os.environ.get("VOCHI_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from vochi_crm.db.embedded import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="vochi-bench-pg-"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base)
    try:
        cluster.acquire()
        yield cluster.conninfo("postgres")
    finally:
        cluster.release()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new empty database, migrated with ``vochi-crm db migrate``; dropped at the end."""
    name = f"vochi_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(admin, dbname=name)
    try:
        subprocess.run(
            [VOCHI, "db", "migrate"], env=vochi_env(url), check=True, capture_output=True
        )
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def vochi_env(database_url: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOCHI_")}
    return {**base, "VOCHI_DATABASE_URL": database_url, **extra}


def unit_number(index: int) -> str:
    """Bench unit ``index`` (1-based): ``0001`` … (the wrk script formats them the same way)."""
    return f"{index:04d}"


def account_name(index: int) -> str:
    return f"u{index:04d}"


def api_key(index: int) -> str:
    return f"bench-key-{index:04d}"


MAPPING = {"151": 16, "152": 18}


def add_units(database_url: str, count: int, api_url: str) -> None:
    """``count`` active units, each with an enabled RetailCRM config on its own account/key
    (rows written directly: the same JSON ``vochi-crm config set``/``map`` would store)."""
    rows = [
        (
            unit_number(i),
            f"Bench unit {i}",
            f"37529{i:07d}",
            Jsonb(
                {
                    "retailcrm": {
                        "enabled": True,
                        "api_url": api_url,
                        "api_key": api_key(i),
                        "user_mappings": MAPPING,
                    }
                }
            ),
        )
        for i in range(1, count + 1)
    ]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO enterprises (number, name, name2, active, integrations_config) "
            "VALUES (%s, %s, %s, TRUE, %s)",
            rows,
        )


@contextlib.contextmanager
def delivery_paused(database_url: str) -> Iterator[None]:
    """Hold the dispatcher's advisory lock, as a standby daemon instance would: the daemon under
    test never becomes the delivery leader, so events stay queued and nothing is sent."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(DISPATCHER_LOCK).fetchone()
        if not row or not row[0]:
            raise RuntimeError("could not take the dispatcher lock")
        yield


def commit_latency(database_url: str, count: int = 400, max_seconds: float = 8.0) -> dict[str, Any]:
    """The database's own durable-commit latency: one-row INSERT + COMMIT (synchronous_commit on),
    ``count`` times or for ``max_seconds``, from this process over the same socket. A group-commit
    writer's p99 cannot beat roughly twice this (the commit in flight, then one's own)."""
    times: list[float] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (id BIGSERIAL, note TEXT)")
        deadline = time.monotonic() + max_seconds
        while len(times) < count and time.monotonic() < deadline:
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_commit (note) VALUES ('x')")
            times.append(time.perf_counter() - started)
        conn.execute("DROP TABLE bench_commit")
    return {
        "commits": len(times),
        "p50_ms": round(percentile(times, 50) * 1000, 3),
        "p99_ms": round(percentile(times, 99) * 1000, 3),
    }


def count_rows(database_url: str, query: str, params: Sequence[Any] = ()) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextlib.contextmanager
def service(
    name: str,
    argv: list[str],
    ready_path: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[Service]:
    """Start ``argv`` (it must listen on 127.0.0.1:``port``), wait until ``ready_path`` answers
    200, yield; then SIGTERM it and wait (SIGKILL after 15 s)."""
    log = Path(tempfile.gettempdir()) / f"vochi-bench-{name}-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    svc = Service(name, process, f"http://127.0.0.1:{port}", log)
    failed = True
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{svc.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(svc.url + ready_path, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {timeout:.0f} s:\n{svc.tail()}")
            time.sleep(0.05)
        yield svc
        failed = False
    finally:
        stop(process)
        if failed:
            print(f"{name} log kept: {log}", file=sys.stderr)
        else:
            log.unlink(missing_ok=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def daemon(database_url: str, **env: str) -> contextlib.AbstractContextManager[Service]:
    port = free_port()
    argv = [VOCHI, "daemon", "--port", str(port)]
    return service("daemon", argv, "/health", port, env=vochi_env(database_url, **env))


def simulator(journal_size: int = 100_000) -> contextlib.AbstractContextManager[Service]:
    """``bench/sim_server.py``: the simulator app of ``vochi-crm simulator`` with a larger journal
    (the order check reads every request back) and no demo account."""
    port = free_port()
    argv = [
        sys.executable,
        str(BENCH / "sim_server.py"),
        "--port",
        str(port),
        "--journal-size",
        str(journal_size),
    ]
    return service("simulator", argv, "/_sim/health", port)


def sim_accounts(sim_url: str, count: int, *, rate_limits: bool = True) -> None:
    """One simulator account per bench unit, with users 16 and 18 and an active telephony
    module that knows extensions 151 and 152 (call/event and calls/upload need one); with the
    simulator's default per-key rate limits (10/s, 40/s telephony) or none."""
    from vochi_daemon.simulator.state import demo_module

    module = demo_module()
    module["integrations"]["telephony"]["additionalCodes"] = [
        {"userId": uid, "code": ext} for ext, uid in MAPPING.items()
    ]
    with httpx.Client(base_url=sim_url, timeout=10) as http:
        for i in range(1, count + 1):
            body: dict[str, Any] = {
                "account": account_name(i),
                "api_key": api_key(i),
                "users": [
                    {"id": 16, "firstName": "Ivan", "lastName": "Petrov"},
                    {"id": 18, "firstName": "Anna", "lastName": "Sidorova"},
                ],
                "modules": [module],
                "rate_limits": {} if rate_limits else None,  # {}: the defaults
            }
            http.post("/_sim/control", json=body).raise_for_status()


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, max_seconds: int) -> Iterator[None]:
    """``py-spy record`` of ``pid`` while the block runs (at most ``max_seconds``), collapsed
    stacks written to ``out``; does nothing when ``out`` is None or py-spy is missing."""
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if out is None or not Path(spy).exists():
        yield
        return
    argv = [spy, "record", "-p", str(pid), "-d", str(max_seconds), "-r", "250"]
    argv += ["-f", "raw", "-o", str(out), "--nonblocking"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop(process)


# -- a lean HTTP/1.1 keep-alive client -------------------------------------------------------------


class RawHttp:
    """One keep-alive connection, one request at a time; far cheaper per request than httpx, so
    the load generator takes less of the 2 CPUs from the server it measures."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> tuple[int, bytes]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers]
        head.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = self._reader = None


def run_async(main: Any) -> Any:
    """``asyncio.run`` on uvloop when available (the servers use it too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- CPU accounting --------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds consumed so far, per pid (those alive)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_seconds` samples by the pids alive at both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def postgres_pids() -> list[int]:
    """Every process named ``postgres`` (the embedded cluster's server and backends)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids
