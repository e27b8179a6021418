"""Playing the demo's calls into the daemon's ``POST /api/events``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vochi_cli.demo.clock import wait

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from vochi_crm.demo_calls import DemoCall

POST_ATTEMPTS = 3
CALL_LINES_MAX = 50
"""Above this many calls, finished calls are not listed one per line."""


@dataclass
class Player:
    """Posts the calls' events as the call services do: the events of one call in order, the
    calls concurrently, each event at its due time."""

    http: httpx.AsyncClient
    daemon_url: str
    unit: str
    console: Console
    total_calls: int
    posted: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    post_errors: int = 0
    calls_done: int = 0
    last_error: str | None = None
    by_status: Counter[int] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        return self.post_errors

    async def play(self, calls: Sequence[DemoCall], speed: float, stop: asyncio.Event) -> None:
        started = time.monotonic()
        await asyncio.gather(*(self._play_call(call, speed, started, stop) for call in calls))

    async def _play_call(
        self, call: DemoCall, speed: float, started: float, stop: asyncio.Event
    ) -> None:
        from vochi_crm.demo_calls import call_schedule

        for due, event in call_schedule(call, speed):
            pause = started + due - time.monotonic()
            if pause > 0 and await wait(stop, pause):
                return
            if stop.is_set():
                return
            await self._post(event.body(self.unit))
        self.calls_done += 1
        if self.total_calls <= CALL_LINES_MAX:
            self.console.print(f"  [dim]{call.description}[/dim]", highlight=False)

    async def _post(self, body: dict[str, object]) -> None:
        import httpx

        self.posted += 1
        for attempt in range(POST_ATTEMPTS):
            try:
                reply = await self.http.post(f"{self.daemon_url}/api/events", json=body)
            except httpx.TransportError as exc:
                self.last_error = f"POST /api/events: {type(exc).__name__}"
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.by_status[reply.status_code] += 1
            if reply.status_code == 202:
                self.accepted += 1
            elif reply.status_code == 200:
                answer = reply.json()
                if answer.get("duplicate"):
                    self.duplicates += 1
                else:
                    self.skipped += 1
            else:
                self.post_errors += 1
                self.last_error = f"POST /api/events → {reply.status_code}: {reply.text[:200]}"
            return
        self.post_errors += 1
