"""``vochi-crm demo``: the whole service on this machine in one command.

Starts the RetailCRM simulator and the daemon as child processes of this interpreter
(``python -m vochi_cli simulator|daemon``, each in its own session so a terminal's Ctrl-C reaches
only us and we stop them in order), all on the embedded PostgreSQL, prepares the demo unit
(:func:`vochi_crm.demo.prepare_demo_unit`), plays generated calls (:mod:`vochi_crm.demo_calls`)
into ``POST /api/events`` and shows a live summary from the daemon's ``/stats``. Then it keeps
everything running until Ctrl-C (or ``--duration``, or at once with ``--no-wait``) and stops the
daemon (which stops the embedded PostgreSQL as its last user) and the simulator: SIGTERM, wait,
SIGKILL after a timeout.

Heavy imports (httpx, Rich's live display, the core) happen inside the command, so
``vochi-crm --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    import httpx
    from rich.console import Console, RenderableType
    from rich.live import Live

    from vochi_crm.demo import DeliverySummary, DemoUnit
    from vochi_crm.demo_calls import DemoCall
    from vochi_crm.runtime import Runtime
    from vochi_crm.settings import Settings

HOST = "127.0.0.1"
SIMULATOR_START_SECONDS = 30.0
DAEMON_START_SECONDS = 60.0
DRAIN_SECONDS = 60.0
"""How long after the last event the demo waits for the daemon to deliver everything."""
STOP_SECONDS = {"daemon": 20.0, "simulator": 5.0}
POST_ATTEMPTS = 3
CALL_LINES_MAX = 50
"""Above this many calls, finished calls are not listed one per line."""
EXIT_INTERRUPTED = 130


def demo(
    calls: Annotated[
        int, typer.Option("--calls", min=0, max=100_000, help="How many generated calls to play.")
    ] = 20,
    speed: Annotated[
        float,
        typer.Option(
            "--speed", min=0.1, max=10_000, help="Playing speed, × real time (1 = real time)."
        ),
    ] = 10.0,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Daemon port. Default: a free one."),
    ] = None,
    simulator_port: Annotated[
        int | None,
        typer.Option(
            "--simulator-port", min=1, max=65535, help="Simulator port. Default: a free one."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            min=0,
            help="Stop everything SECONDS after the services are up. Default: run until Ctrl-C.",
        ),
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Stop as soon as the calls are delivered (scripts, tests); exit 1 unless every "
            "call was delivered without a failure.",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the generated calls (same seed, same calls)."),
    ] = None,
) -> None:
    """Run a complete local demo: simulator, database, daemon and calls.

    Starts a RetailCRM simulator and the daemon on free loopback ports,
    on the embedded PostgreSQL (never on VOCHI_DATABASE_URL), and sets up
    the unit "demo" whose RetailCRM account is the simulator (extensions
    150, 151 and 152 mapped). Then it plays generated calls (incoming
    answered and missed, outgoing, a transfer, an internal call) and
    shows live what the daemon received and sent to RetailCRM.
    Everything keeps running until Ctrl-C, then stops cleanly.

    Exit codes: 0 ok; 1 a service did not start, or (--no-wait) a call
    was not delivered or failed.

    Example: vochi-crm demo --calls 50 --speed 20
    """
    if port is not None and port == simulator_port:
        output.stderr().print("[red]--port and --simulator-port must differ[/red]")
        raise typer.Exit(2)
    options = _Options(calls, speed, port, simulator_port, duration, no_wait, seed)
    settings = core.settings()
    code = asyncio.run(_Demo(options, settings, output.stdout()).run())
    raise typer.Exit(code)


# -- orchestration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    calls: int
    speed: float
    port: int | None
    simulator_port: int | None
    duration: float | None
    no_wait: bool
    seed: int | None


class _Failed(Exception):
    """A clear, user-facing reason to stop with exit 1 (``log``: the file worth reading)."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) before the demo was up."""


@dataclass
class _Child:
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


class _Demo:
    def __init__(self, options: _Options, settings: Settings, console: Console) -> None:
        from vochi_crm.demo import demo_settings

        self.options = options
        self.settings = demo_settings(settings)
        self.ignored_database_url = settings.database_url is not None
        self.console = console
        self.children: list[_Child] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="vochi-demo-"))
        self.stop = asyncio.Event()
        self.stop_reason = "Ctrl-C"
        self.hurry = asyncio.Event()
        """A second Ctrl-C: kill the children instead of waiting for them."""
        self.signals = 0

    @property
    def data_dir(self) -> Path:
        assert self.settings.data_dir is not None
        return self.settings.data_dir

    async def run(self) -> int:
        self._install_signal_handlers()
        code = 1
        try:
            code = await self._run()
        except _Interrupted:
            self.console.print("[yellow]Interrupted before the demo was up.[/yellow]")
            code = EXIT_INTERRUPTED
        except _Failed as failure:
            self._print_failure(failure)
            code = 1
        except Exception as exc:
            from vochi_crm.errors import VochiError

            if not isinstance(exc, VochiError):
                raise
            output.print_error(exc)
            code = exc.exit_code
        finally:
            killed = await self._stop_children()
            if killed:
                self._stop_orphaned_database()
            if (code == 0 and not killed) or not self.children:
                shutil.rmtree(self.log_dir, ignore_errors=True)
            else:
                self.console.print(f"Logs kept in {self.log_dir}", highlight=False)
        return code

    async def _run(self) -> int:
        import httpx

        from vochi_crm.demo_calls import generate_calls
        from vochi_crm.runtime import open_runtime

        say = self.console.print
        say(
            "[bold]vochi-crm demo[/bold]: the whole service on this machine, RetailCRM "
            "simulated. Ctrl-C stops everything.",
            highlight=False,
        )
        if self.ignored_database_url:
            output.notice(
                "VOCHI_DATABASE_URL is ignored: the demo always runs on the embedded PostgreSQL "
                "(it never writes its demo unit into a platform database)."
            )
        sim_port = self._port(self.options.simulator_port, "--simulator-port")
        daemon_port = self._port(self.options.port, "--port")
        sim_url, daemon_url = f"http://{HOST}:{sim_port}", f"http://{HOST}:{daemon_port}"

        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
            simulator = self._spawn(
                "simulator", ["simulator", "--host", HOST, "--port", str(sim_port)]
            )
            async with open_runtime(self.settings, migrate=True) as runtime:
                started = bool(runtime.embedded and runtime.embedded.started_here)
                self._step(
                    "embedded PostgreSQL",
                    str(self.data_dir),
                    "started" if started else "already running",
                )
                unit = await self._prepare_unit(runtime, sim_url)
                await self._wait_healthy(
                    http, simulator, f"{sim_url}/_sim/health", SIMULATOR_START_SECONDS
                )
                self._step("RetailCRM simulator", sim_url, "account demo, a public fake key")
                began = time.monotonic()
                daemon = self._spawn(
                    "daemon",
                    ["daemon", "--host", HOST, "--port", str(daemon_port)],
                    {"VOCHI_PUBLIC_BASE_URL": daemon_url},
                )
                await self._wait_healthy(http, daemon, f"{daemon_url}/health", DAEMON_START_SECONDS)
                self._step("daemon", daemon_url, f"healthy in {time.monotonic() - began:.1f} s")
            # the daemon holds the embedded cluster now; ours was released above
            self._print_urls(sim_url, daemon_url)
            if self.options.duration is not None:
                asyncio.get_running_loop().call_later(self.options.duration, self._end_by_duration)

            calls = generate_calls(
                self.options.calls,
                token=unit.token,
                start=_now(),
                seed=self.options.seed,
            )
            monitor = _Monitor(http, daemon_url, unit.number, daemon)
            player = _Player(http, daemon_url, unit.number, self.console, len(calls))
            delivered = await self._play(calls, player, monitor)
            if self.options.no_wait or self.stop.is_set():
                if self.stop.is_set():
                    say(f"{self.stop_reason}: stopping.", highlight=False)
                if not self.options.no_wait:
                    return 0
                if delivered and player.failures + monitor.summary.failures == 0:
                    return 0
                return EXIT_INTERRUPTED if self.signals else 1
            same_dir = " (same VOCHI_DATA_DIR)" if os.environ.get("VOCHI_DATA_DIR") else ""
            say(
                f"\n[bold]Everything keeps running.[/bold] In another terminal{same_dir} try "
                f"[cyan]vochi-crm events list --unit {unit.number}[/cyan] or "
                f"[cyan]vochi-crm tail-logs --unit {unit.number} --follow[/cyan].",
                highlight=False,
            )
            say("Press Ctrl-C to stop.", highlight=False)
            await self._keep_running(player, monitor)
            say(f"{self.stop_reason}: stopping.", highlight=False)
            return 0

    # -- steps ------------------------------------------------------------------------------------

    async def _prepare_unit(self, runtime: Runtime, sim_url: str) -> DemoUnit:
        from vochi_crm.demo import prepare_demo_unit

        unit = await prepare_demo_unit(runtime, sim_url)
        mapping = " ".join(f"{ext}→{user}" for ext, user in sorted(unit.mapping.items()))
        self._step(
            f"unit {unit.number}",
            "created" if unit.created else "updated",
            f"RetailCRM = the simulator, key {unit.api_key_masked}, mapping {mapping}",
        )
        return unit

    async def _play(self, calls: Sequence[DemoCall], player: _Player, monitor: _Monitor) -> bool:
        """Play ``calls`` and wait for their delivery; True when all of it was delivered."""
        from vochi_crm.demo_calls import CallKind

        kinds = Counter(call.kind for call in calls)
        mix = ", ".join(f"{kinds[k]} {_KIND_LABELS[k]}" for k in CallKind if kinds[k])
        self.console.print(
            f"\nPlaying {len(calls)} calls at {self.options.speed:g}× real time"
            + (f": {mix}" if mix else "")
            + " …",
            highlight=False,
        )
        view = _View(self.options.speed, len(calls), sum(len(c.events) for c in calls))
        playing = asyncio.create_task(player.play(calls, self.options.speed, self.stop))
        drained_by: float | None = None
        delivered = False
        try:
            with _live(self.console, view.render(player, monitor)) as live:
                while True:
                    await monitor.poll()
                    live.update(view.render(player, monitor), refresh=True)
                    if self.stop.is_set():
                        break
                    if playing.done():
                        playing.result()
                        if monitor.delivered(player.accepted):
                            delivered = True
                            break
                        if drained_by is None:
                            drained_by = time.monotonic() + DRAIN_SECONDS
                        elif time.monotonic() > drained_by:
                            break
                    await _wait(self.stop, 0.25)
        finally:
            if not playing.done():
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing
        self._print_outcome(delivered, player, monitor, finished=playing.done())
        return delivered

    async def _keep_running(self, player: _Player, monitor: _Monitor) -> None:
        view = _View(self.options.speed, player.total_calls, player.posted)
        with _live(self.console, view.render(player, monitor, bars=False)) as live:
            while not self.stop.is_set():
                await _wait(self.stop, 1.0)
                await monitor.poll()
                live.update(view.render(player, monitor, bars=False), refresh=True)

    def _print_outcome(
        self, delivered: bool, player: _Player, monitor: _Monitor, *, finished: bool
    ) -> None:
        summary = monitor.summary
        failures = player.failures + summary.failures
        counts = (
            f"{player.accepted} events accepted, {summary.requests} RetailCRM requests "
            f"({summary.requests_ok} ok, {summary.requests_error} errors), {failures} failures"
        )
        if delivered:
            mark = "[green]✓[/green]" if failures == 0 else "[yellow]![/yellow]"
            self.console.print(
                f"{mark} {player.calls_done} calls delivered: {counts}.", highlight=False
            )
        elif not finished or self.stop.is_set():
            self.console.print(
                f"[yellow]![/yellow] stopped after {player.calls_done} of {player.total_calls} "
                f"calls: {counts}.",
                highlight=False,
            )
        else:
            self.console.print(
                f"[red]✗[/red] not delivered within {DRAIN_SECONDS:.0f} s: {counts}; "
                f"{summary.queue_pending} events still queued.",
                highlight=False,
            )
        for alert in summary.alerts:
            self.console.print(f"[red]alert[/red] {alert}", highlight=False)
        if failures and (player.last_error or summary.last_error):
            self.console.print(
                f"last error: {player.last_error or summary.last_error}", highlight=False
            )

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> _Child:
        env = {k: v for k, v in os.environ.items() if k.upper() != "VOCHI_DATABASE_URL"}
        env.update(
            {"VOCHI_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        )
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "vochi_cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us only: we stop in order
                preexec_fn=_die_with_parent(),  # takes no lock in the child
            )
        child = _Child(name, process, log)
        self.children.append(child)
        return child

    async def _wait_healthy(
        self, http: httpx.AsyncClient, child: _Child, url: str, within: float
    ) -> None:
        import httpx

        deadline = time.monotonic() + within
        while True:
            if self.stop.is_set():
                raise _Interrupted
            if not child.running():
                raise _Failed(
                    f"the {child.name} exited during start-up "
                    f"(exit code {child.process.returncode})",
                    child.log,
                )
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url, timeout=1.0)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise _Failed(f"the {child.name} was not healthy within {within:.0f} s", child.log)
            await _wait(self.stop, 0.1)

    async def _stop_children(self) -> bool:
        """Stop the children, the last started first. True when one had to be killed."""
        killed = False
        for child in reversed(self.children):
            if not child.running():
                continue
            self.console.print(f"Stopping the {child.name} …", highlight=False)
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS.get(child.name, 10.0)
            while child.running() and time.monotonic() < deadline:
                if await _wait(self.hurry, 0.05):
                    break
            if child.running():
                self.console.print(
                    f"[yellow]the {child.name} did not stop in time: killed[/yellow]",
                    highlight=False,
                )
                child.process.kill()
                child.process.wait()
                killed = killed or child.name == "daemon"
        if self.children:
            self.console.print("[green]✓[/green] Stopped.", highlight=False)
        return killed

    def _stop_orphaned_database(self) -> None:
        from vochi_crm.demo import stop_embedded_if_unused

        with contextlib.suppress(Exception):
            if stop_embedded_if_unused(self.data_dir):
                self.console.print("Stopped the embedded PostgreSQL the daemon left running.")

    # -- helpers ----------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self._on_signal)

    def _on_signal(self) -> None:
        self.signals += 1
        self.stop.set()
        if self.signals >= 2:
            self.hurry.set()

    def _end_by_duration(self) -> None:
        if not self.stop.is_set():
            self.stop_reason = f"--duration {self.options.duration:g} s elapsed"
            self.stop.set()

    def _port(self, wanted: int | None, option: str) -> int:
        if wanted is None:
            return _free_port()
        if not _port_free(wanted):
            raise _Failed(
                f"port {wanted} ({option}) is already in use on {HOST}: choose another one, "
                "or leave the option out to use a free port"
            )
        return wanted

    def _step(self, what: str, where: str, detail: str) -> None:
        self.console.print(
            f"[green]✓[/green] {what:<20} [cyan]{where}[/cyan]  [dim]{detail}[/dim]",
            highlight=False,
        )

    def _print_urls(self, sim_url: str, daemon_url: str) -> None:
        rows = [
            ("daemon stats", f"{daemon_url}/stats"),
            ("API docs", f"{daemon_url}/api/docs"),
            ("what RetailCRM got", f"{sim_url}/_sim/requests"),
            ("demo account state", f"{sim_url}/_sim/state/demo"),
            ("logs", f"{self.log_dir}/{{daemon,simulator}}.log (removed at a clean exit)"),
        ]
        self.console.print("\nLook around:", highlight=False)
        for label, value in rows:
            self.console.print(f"  {label:<20} [cyan]{value}[/cyan]", highlight=False)

    def _print_failure(self, failure: _Failed) -> None:
        from rich.panel import Panel

        body = failure.message
        if failure.log is not None:
            child = next((c for c in self.children if c.log == failure.log), None)
            tail = child.log_tail() if child else ""
            body += f"\n\nlog: {failure.log}" + (f"\n{tail}" if tail else "")
        output.stderr().print(
            Panel(body, title="Demo failed", title_align="left", border_style="red", expand=False),
            highlight=False,
        )


# -- playing and watching ------------------------------------------------------------------------


_KIND_LABELS = {
    "incoming_answered": "incoming answered",
    "incoming_missed": "incoming missed",
    "outgoing_answered": "outgoing",
    "transfer": "transfer",
    "internal": "internal",
}


@dataclass
class _Player:
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
            if pause > 0 and await _wait(stop, pause):
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


@dataclass
class _Monitor:
    """The daemon's ``/stats``, polled; the last good reading is kept across failed polls."""

    http: httpx.AsyncClient
    daemon_url: str
    unit: str
    daemon: _Child
    summary: DeliverySummary = field(init=False)
    unreachable: bool = False

    def __post_init__(self) -> None:
        from vochi_crm.demo import DeliverySummary

        self.summary = DeliverySummary()

    async def poll(self) -> None:
        import httpx

        from vochi_crm.demo import summarize_stats

        if not self.daemon.running():
            raise _Failed(
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


class _View:
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

    def render(self, player: _Player, monitor: _Monitor, *, bars: bool = True) -> RenderableType:
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


# -- small helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def _live(console: Console, first: RenderableType) -> Iterator[Live]:
    """A manually refreshed Rich ``Live``. Off a terminal Rich draws only the last frame, at the
    end, and leaves the line open: close it."""
    from rich.live import Live

    with Live(first, console=console, auto_refresh=False) as live:
        yield live
    if not console.is_terminal or console.is_dumb_terminal:
        console.line()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``event`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def _now() -> datetime:
    return datetime.now().astimezone()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> Callable[[], None] | None:
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


def _colour(count: int, noun: str) -> str:
    return f"[red]{count} {noun}[/red]" if count else f"{count} {noun}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"
