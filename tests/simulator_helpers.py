"""Run the RetailCRM simulator for a test: real uvicorn, real sockets, 127.0.0.1 only.

``running_simulator(app)`` serves an ASGI app on a free loopback port in a background thread and
yields its base URL; :class:`SimControl` drives the simulator's ``/_sim`` control surface.
Shared by the integration and end-to-end tests (and usable by benchmarks).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

STARTUP_TIMEOUT = 10.0


@contextmanager
def running_simulator(app: Any) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1:<free port>`` until the block ends; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound before the thread starts: no port race
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        loop="asyncio",  # uvloop would install a process-wide event loop policy
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class SimControl:
    """Thin synchronous client of ``/_sim/*`` (no API key involved)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=5.0, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def control(self, **body: Any) -> dict[str, Any]:
        return self._ok(self._http.post("/_sim/control", json=body))

    def reset(self) -> dict[str, Any]:
        return self._ok(self._http.post("/_sim/reset"))

    def requests(self, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._ok(self._http.get("/_sim/requests", params=params))[
            "requests"
        ]
        return result

    def state(self, account: str) -> dict[str, Any]:
        return self._ok(self._http.get(f"/_sim/state/{account}"))

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._http.post(path, json=body)

    @staticmethod
    def _ok(response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
