"""Run real ``vochi-crm daemon`` processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import vochi_crm_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_daemon(env: dict[str, str], log_dir: Path, *, timeout: float = 30) -> Iterator[Daemon]:
    port = free_port()
    log = log_dir / f"daemon-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*vochi_crm_command(), "daemon", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    daemon = Daemon(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{daemon.output()}")
            try:
                if httpx.get(daemon.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not healthy in {timeout}s:\n{daemon.output()}")
            time.sleep(0.05)
        yield daemon
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*vochi_crm_command(), *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def scrubbed_env(**extra: str) -> dict[str, str]:
    """The current environment without any VOCHI_* setting, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOCHI_")}
    return {**base, **extra}
