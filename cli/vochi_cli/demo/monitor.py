"""Watching the daemon: its ``/stats``, read into the demo's numbers, and its process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vochi_cli.demo.processes import Failed

if TYPE_CHECKING:
    import httpx

    from vochi_cli.demo.processes import Child
    from vochi_crm.demo import DeliverySummary


@dataclass
class Monitor:
    """The daemon's ``/stats``, polled; the last good reading is kept across failed polls."""

    http: httpx.AsyncClient
    daemon_url: str
    unit: str
    daemon: Child
    summary: DeliverySummary = field(init=False)
    unreachable: bool = False

    def __post_init__(self) -> None:
        from vochi_crm.demo import DeliverySummary

        self.summary = DeliverySummary()

    async def poll(self) -> None:
        import httpx

        from vochi_crm.demo import summarize_stats

        if not self.daemon.running():
            raise Failed(
                f"the daemon exited unexpectedly (exit code {self.daemon.process.returncode})",
                self.daemon.log,
            )
        try:
            reply = await self.http.get(f"{self.daemon_url}/stats", timeout=2.0)
            reply.raise_for_status()
            self.summary = summarize_stats(reply.json(), self.unit)
            self.unreachable = False
        except (httpx.HTTPError, ValueError):
            self.unreachable = True

    def delivered(self, accepted: int) -> bool:
        """The queue holds nothing of the unit any more, and (when this daemon is the one that
        delivers) its counters account for every event accepted."""
        summary = self.summary
        counted = summary.processed >= accepted or not summary.leader
        return not self.unreachable and summary.idle and counted
