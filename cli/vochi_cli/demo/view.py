"""What the demo shows (Rich): a line per step, where to look around, the live display (progress
bars and the numbers that matter), the outcome of playing the calls, a failure."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from vochi_cli import output

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console, RenderableType
    from rich.live import Live

    from vochi_cli.demo.monitor import Monitor
    from vochi_cli.demo.player import Player
    from vochi_cli.demo.processes import Child, Failed
    from vochi_crm.demo_calls import DemoCall

_KIND_LABELS = {
    "incoming_answered": "incoming answered",
    "incoming_missed": "incoming missed",
    "outgoing_answered": "outgoing",
    "transfer": "transfer",
    "internal": "internal",
}


class View:
    """The live display: progress bars and the numbers that matter."""

    def __init__(self, speed: float, calls: int, events: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description:<18}"),
            BarColumn(bar_width=32),
            MofNCompleteColumn(),
            auto_refresh=False,
            expand=False,
        )
        self.calls = self.progress.add_task("calls played", total=max(calls, 1))
        self.events = self.progress.add_task("events posted", total=max(events, 1))
        self.processed = self.progress.add_task("events processed", total=1)
        self.started = time.monotonic()
        self.speed = speed

    def render(self, player: Player, monitor: Monitor, *, bars: bool = True) -> RenderableType:
        from rich.console import Group
        from rich.table import Table

        summary = monitor.summary
        self.progress.update(self.calls, completed=player.calls_done)
        self.progress.update(self.events, completed=player.posted)
        total = max(player.accepted, 1)
        self.progress.update(self.processed, completed=min(summary.processed, total), total=total)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row(
            "events",
            f"{player.posted} posted, {summary.ingest_accepted} accepted by the daemon "
            f"({player.duplicates} duplicates, {player.skipped} not stored, "
            f"{player.post_errors} refused)",
        )
        table.add_row(
            "delivery",
            f"{summary.delivered} delivered, {summary.skipped} with nothing to send "
            f"(start, bridge, internal), {summary.retried} retried",
        )
        table.add_row(
            "RetailCRM requests",
            f"{summary.requests} made: {summary.requests_ok} ok, "
            + _colour(summary.requests_error, "errors"),
        )
        table.add_row("queue", f"{summary.queue_pending} pending, {summary.in_flight} in flight")
        table.add_row("failures", _colour(player.failures + summary.failures, "failures"))
        table.add_row(
            "RetailCRM latency",
            f"p50 {_ms(summary.latency_p50_ms)}, p99 {_ms(summary.latency_p99_ms)}",
        )
        alerts = "; ".join(summary.alerts) if summary.alerts else "none"
        table.add_row("alerts", f"[red]{alerts}[/red]" if summary.alerts else alerts)
        if monitor.unreachable:
            table.add_row("daemon", "[yellow]/stats did not answer[/yellow]")
        elif summary.dispatcher and not summary.leader:
            table.add_row(
                "note",
                "[yellow]another daemon on this database delivers (this one stands by): "
                "the delivery numbers are its, not shown here[/yellow]",
            )
        return Group(self.progress, table) if bars else table


@contextlib.contextmanager
def live(console: Console, first: RenderableType) -> Iterator[Live]:
    """A manually refreshed Rich ``Live``. Off a terminal Rich draws only the last frame, at the
    end, and leaves the line open: close it."""
    from rich.live import Live

    with Live(first, console=console, auto_refresh=False) as live:
        yield live
    if not console.is_terminal or console.is_dumb_terminal:
        console.line()


def step(console: Console, what: str, where: str, detail: str) -> None:
    console.print(
        f"[green]✓[/green] {what:<20} [cyan]{where}[/cyan]  [dim]{detail}[/dim]",
        highlight=False,
    )


def print_urls(console: Console, sim_url: str, daemon_url: str, log_dir: Path) -> None:
    rows = [
        ("daemon stats", f"{daemon_url}/stats"),
        ("API docs", f"{daemon_url}/api/docs"),
        ("what RetailCRM got", f"{sim_url}/_sim/requests"),
        ("demo account state", f"{sim_url}/_sim/state/demo"),
        ("logs", f"{log_dir}/{{daemon,simulator}}.log (removed at a clean exit)"),
    ]
    console.print("\nLook around:", highlight=False)
    for label, value in rows:
        console.print(f"  {label:<20} [cyan]{value}[/cyan]", highlight=False)


def print_playing(console: Console, calls: Sequence[DemoCall], speed: float) -> None:
    from vochi_crm.demo_calls import CallKind

    kinds = Counter(call.kind for call in calls)
    mix = ", ".join(f"{kinds[k]} {_KIND_LABELS[k]}" for k in CallKind if kinds[k])
    console.print(
        f"\nPlaying {len(calls)} calls at {speed:g}× real time"
        + (f": {mix}" if mix else "")
        + " …",
        highlight=False,
    )


def print_outcome(
    console: Console,
    delivered: bool,
    player: Player,
    monitor: Monitor,
    *,
    finished: bool,
    stopped: bool,
    drain_seconds: float,
) -> None:
    """After playing: delivered, stopped (``stopped``, or not ``finished``), or not delivered
    within ``drain_seconds``; then the alerts and the last error."""
    summary = monitor.summary
    failures = player.failures + summary.failures
    counts = (
        f"{player.accepted} events accepted, {summary.requests} RetailCRM requests "
        f"({summary.requests_ok} ok, {summary.requests_error} errors), {failures} failures"
    )
    if delivered:
        mark = "[green]✓[/green]" if failures == 0 else "[yellow]![/yellow]"
        console.print(f"{mark} {player.calls_done} calls delivered: {counts}.", highlight=False)
    elif not finished or stopped:
        console.print(
            f"[yellow]![/yellow] stopped after {player.calls_done} of {player.total_calls} "
            f"calls: {counts}.",
            highlight=False,
        )
    else:
        console.print(
            f"[red]✗[/red] not delivered within {drain_seconds:.0f} s: {counts}; "
            f"{summary.queue_pending} events still queued.",
            highlight=False,
        )
    for alert in summary.alerts:
        console.print(f"[red]alert[/red] {alert}", highlight=False)
    if failures and (player.last_error or summary.last_error):
        console.print(f"last error: {player.last_error or summary.last_error}", highlight=False)


def print_failure(failure: Failed, children: Sequence[Child]) -> None:
    """The failure in a red panel on stderr, with the tail of the log it names."""
    from rich.panel import Panel

    body = failure.message
    if failure.log is not None:
        child = next((c for c in children if c.log == failure.log), None)
        tail = child.log_tail() if child else ""
        body += f"\n\nlog: {failure.log}" + (f"\n{tail}" if tail else "")
    output.stderr().print(
        Panel(body, title="Demo failed", title_align="left", border_style="red", expand=False),
        highlight=False,
    )


def _colour(count: int, noun: str) -> str:
    return f"[red]{count} {noun}[/red]" if count else f"{count} {noun}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"
