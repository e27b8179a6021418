"""``vochi-crm demo``, the real console script: it starts the embedded PostgreSQL, the simulator
and the daemon, plays generated calls, and leaves nothing running when it ends — after
``--no-wait``, after Ctrl-C (SIGINT), and when it cannot start."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import vochi_crm_command
from tests.e2e.daemons import free_port, scrubbed_env

pytestmark = pytest.mark.slow

REQUESTS = re.compile(r"(\d+) RetailCRM requests \((\d+) ok, (\d+) errors\)")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # not under pytest's 0700 tmp root: as root the cluster runs as `nobody`, who must reach it
    path = Path(tempfile.mkdtemp(prefix="vochi-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo_env(data_dir: Path) -> dict[str, str]:
    return scrubbed_env(VOCHI_DATA_DIR=str(data_dir), COLUMNS="200", PYTHONUNBUFFERED="1")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_mentioning(*fragments: str) -> list[str]:
    """Command lines of live processes that contain any of ``fragments``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(fragment in cmdline for fragment in fragments):
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left(data_dir: Path, *ports: int) -> None:
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL left running"
    for port in ports:
        assert not port_open(port), f"port {port} still open"
    left = processes_mentioning(*(f"--port {port}" for port in ports))
    assert left == [], f"processes left running: {left}"


def test_no_wait_plays_the_calls_and_stops_everything(data_dir: Path) -> None:
    daemon_port, sim_port = free_port(), free_port()
    result = subprocess.run(
        [*vochi_crm_command(), "demo", "--calls", "5", "--no-wait",
         "--port", str(daemon_port), "--simulator-port", str(sim_port)],
        env=demo_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "5 calls delivered" in out, out
    assert "0 failures" in out, out
    # one call of each kind: four reach RetailCRM (pop-up, hangup, history), the internal one not
    counts = REQUESTS.search(out)
    assert counts is not None, out
    made, ok, errors = (int(n) for n in counts.groups())
    assert ok >= 12 and errors == 0 and made == ok, out
    assert f"http://127.0.0.1:{daemon_port}/stats" in out
    assert f"http://127.0.0.1:{sim_port}/_sim/requests" in out
    assert "Stopped." in out
    assert_nothing_left(data_dir, daemon_port, sim_port)


def test_ctrl_c_stops_everything_cleanly(data_dir: Path, tmp_path: Path) -> None:
    daemon_port, sim_port = free_port(), free_port()
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [*vochi_crm_command(), "demo", "--calls", "3", "--speed", "50",
             "--port", str(daemon_port), "--simulator-port", str(sim_port)],
            env=demo_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not any("Press Ctrl-C to stop" in line for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "".join(seen) + errors.read_text()
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, "demo ended early:\n" + "".join(seen) + errors.read_text()
            seen.append(line)
        assert port_open(daemon_port) and port_open(sim_port)
        assert (data_dir / "pgdata" / "postmaster.pid").exists()

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    out = "".join(seen)
    assert code == 0, out + errors.read_text()
    assert "3 calls delivered" in out
    assert "Ctrl-C: stopping." in out and "Stopped." in out
    assert_nothing_left(data_dir, daemon_port, sim_port)


def test_a_taken_port_is_a_clear_error_and_starts_nothing(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*vochi_crm_command(), "demo", "--no-wait", "--port", str(port)],
            env=demo_env(data_dir),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {port} (--port) is already in use" in result.stderr
    assert not (data_dir / "pgdata").exists(), "nothing should have been started"
