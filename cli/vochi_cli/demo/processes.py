"""The demo's child processes: the simulator and the daemon.

Each runs as ``python -m vochi_cli simulator|daemon`` of this interpreter, in its own session (so a
terminal's Ctrl-C reaches only the demo, which stops them in order), with its output in a log file,
on the embedded PostgreSQL of the demo's data directory, on a free loopback port or the one asked
for. They are stopped the last started first: SIGTERM, wait, SIGKILL after a timeout; on Linux
they also get SIGTERM if the demo dies without stopping them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vochi_cli.demo.clock import wait

if TYPE_CHECKING:
    import asyncio

    import httpx
    from rich.console import Console

HOST = "127.0.0.1"
STOP_SECONDS = {"daemon": 20.0, "simulator": 5.0}


class Failed(Exception):
    """A clear, user-facing reason to stop with exit 1 (``log``: the file worth reading)."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) before the demo was up."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def spawn(
    name: str,
    args: list[str],
    *,
    data_dir: Path,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> Child:
    """Start ``python -m vochi_cli *args`` on the embedded PostgreSQL in ``data_dir`` (never on
    ``VOCHI_DATABASE_URL``), its output in ``log_dir/<name>.log``."""
    env = {k: v for k, v in os.environ.items() if k.upper() != "VOCHI_DATABASE_URL"}
    env.update({"VOCHI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "vochi_cli", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us only: we stop in order
            preexec_fn=die_with_parent(),  # takes no lock in the child
        )
    return Child(name, process, log)


async def wait_healthy(
    http: httpx.AsyncClient, child: Child, url: str, within: float, stop: asyncio.Event
) -> None:
    """Wait until ``url`` answers 200; :class:`Interrupted` when ``stop`` is set first,
    :class:`Failed` when ``child`` exits or ``within`` seconds pass."""
    import httpx

    deadline = time.monotonic() + within
    while True:
        if stop.is_set():
            raise Interrupted
        if not child.running():
            raise Failed(
                f"the {child.name} exited during start-up (exit code {child.process.returncode})",
                child.log,
            )
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(url, timeout=1.0)).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise Failed(f"the {child.name} was not healthy within {within:.0f} s", child.log)
        await wait(stop, 0.1)


async def stop_children(children: Sequence[Child], console: Console, hurry: asyncio.Event) -> bool:
    """Stop the children, the last started first (at once when ``hurry`` is set). True when the
    daemon had to be killed."""
    killed = False
    for child in reversed(children):
        if not child.running():
            continue
        console.print(f"Stopping the {child.name} …", highlight=False)
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS.get(child.name, 10.0)
        while child.running() and time.monotonic() < deadline:
            if await wait(hurry, 0.05):
                break
        if child.running():
            console.print(
                f"[yellow]the {child.name} did not stop in time: killed[/yellow]",
                highlight=False,
            )
            child.process.kill()
            child.process.wait()
            killed = killed or child.name == "daemon"
    if children:
        console.print("[green]✓[/green] Stopped.", highlight=False)
    return killed


def stop_orphaned_database(data_dir: Path, console: Console) -> None:
    """Stop the embedded PostgreSQL a killed daemon left running (unless something uses it)."""
    from vochi_crm.demo import stop_embedded_if_unused

    with contextlib.suppress(Exception):
        if stop_embedded_if_unused(data_dir):
            console.print("Stopped the embedded PostgreSQL the daemon left running.")


def choose_port(wanted: int | None, option: str) -> int:
    """``wanted`` when it is free on :data:`HOST` (:class:`Failed` if not), else a free port."""
    if wanted is None:
        return free_port()
    if not port_free(wanted):
        raise Failed(
            f"port {wanted} ({option}) is already in use on {HOST}: choose another one, "
            "or leave the option out to use a free port"
        )
    return wanted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, children get SIGTERM if the demo dies without stopping them (e.g. SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call above
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
