"""One ``vochi-crm demo`` run, from the first child process started to the last one stopped.

Starts the simulator, prepares the demo unit on the embedded PostgreSQL, starts the daemon, plays
the calls while showing the live view, then keeps everything running until Ctrl-C, SIGTERM or
``--duration`` (or stops at once with ``--no-wait``), and stops the children in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vochi_cli import output
from vochi_cli.demo.clock import now, wait
from vochi_cli.demo.monitor import Monitor
from vochi_cli.demo.player import Player
from vochi_cli.demo.processes import (
    HOST,
    Child,
    Failed,
    Interrupted,
    choose_port,
    spawn,
    stop_children,
    stop_orphaned_database,
    wait_healthy,
)
from vochi_cli.demo.view import (
    View,
    live,
    print_failure,
    print_outcome,
    print_playing,
    print_urls,
    step,
)

if TYPE_CHECKING:
    from rich.console import Console

    from vochi_crm.demo import DemoUnit
    from vochi_crm.demo_calls import DemoCall
    from vochi_crm.runtime import Runtime
    from vochi_crm.settings import Settings

SIMULATOR_START_SECONDS = 30.0
DAEMON_START_SECONDS = 60.0
DRAIN_SECONDS = 60.0
"""How long after the last event the demo waits for the daemon to deliver everything."""
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Options:
    calls: int
    speed: float
    port: int | None
    simulator_port: int | None
    duration: float | None
    no_wait: bool
    seed: int | None


class Demo:
    def __init__(self, options: Options, settings: Settings, console: Console) -> None:
        from vochi_crm.demo import demo_settings

        self.options = options
        self.settings = demo_settings(settings)
        self.ignored_database_url = settings.database_url is not None
        self.console = console
        self.children: list[Child] = []
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
        except Interrupted:
            self.console.print("[yellow]Interrupted before the demo was up.[/yellow]")
            code = EXIT_INTERRUPTED
        except Failed as failure:
            print_failure(failure, self.children)
            code = 1
        except Exception as exc:
            from vochi_crm.errors import VochiError

            if not isinstance(exc, VochiError):
                raise
            output.print_error(exc)
            code = exc.exit_code
        finally:
            killed = await stop_children(self.children, self.console, self.hurry)
            if killed:
                stop_orphaned_database(self.data_dir, self.console)
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
        sim_port = choose_port(self.options.simulator_port, "--simulator-port")
        daemon_port = choose_port(self.options.port, "--port")
        sim_url, daemon_url = f"http://{HOST}:{sim_port}", f"http://{HOST}:{daemon_port}"

        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
            simulator = self._spawn(
                "simulator", ["simulator", "--host", HOST, "--port", str(sim_port)]
            )
            async with open_runtime(self.settings, migrate=True) as runtime:
                started = bool(runtime.embedded and runtime.embedded.started_here)
                step(
                    self.console,
                    "embedded PostgreSQL",
                    str(self.data_dir),
                    "started" if started else "already running",
                )
                unit = await self._prepare_unit(runtime, sim_url)
                await wait_healthy(
                    http, simulator, f"{sim_url}/_sim/health", SIMULATOR_START_SECONDS, self.stop
                )
                step(
                    self.console, "RetailCRM simulator", sim_url, "account demo, a public fake key"
                )
                began = time.monotonic()
                daemon = self._spawn(
                    "daemon",
                    ["daemon", "--host", HOST, "--port", str(daemon_port)],
                    {"VOCHI_PUBLIC_BASE_URL": daemon_url},
                )
                await wait_healthy(
                    http, daemon, f"{daemon_url}/health", DAEMON_START_SECONDS, self.stop
                )
                step(
                    self.console,
                    "daemon",
                    daemon_url,
                    f"healthy in {time.monotonic() - began:.1f} s",
                )
            # the daemon holds the embedded cluster now; ours was released above
            print_urls(self.console, sim_url, daemon_url, self.log_dir)
            if self.options.duration is not None:
                asyncio.get_running_loop().call_later(self.options.duration, self._end_by_duration)

            calls = generate_calls(
                self.options.calls,
                token=unit.token,
                start=now(),
                seed=self.options.seed,
            )
            monitor = Monitor(http, daemon_url, unit.number, daemon)
            player = Player(http, daemon_url, unit.number, self.console, len(calls))
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
        step(
            self.console,
            f"unit {unit.number}",
            "created" if unit.created else "updated",
            f"RetailCRM = the simulator, key {unit.api_key_masked}, mapping {mapping}",
        )
        return unit

    async def _play(self, calls: Sequence[DemoCall], player: Player, monitor: Monitor) -> bool:
        """Play ``calls`` and wait for their delivery; True when all of it was delivered."""
        print_playing(self.console, calls, self.options.speed)
        view = View(self.options.speed, len(calls), sum(len(c.events) for c in calls))
        playing = asyncio.create_task(player.play(calls, self.options.speed, self.stop))
        drained_by: float | None = None
        delivered = False
        try:
            with live(self.console, view.render(player, monitor)) as display:
                while True:
                    await monitor.poll()
                    display.update(view.render(player, monitor), refresh=True)
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
                    await wait(self.stop, 0.25)
        finally:
            if not playing.done():
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing
        print_outcome(
            self.console,
            delivered,
            player,
            monitor,
            finished=playing.done(),
            stopped=self.stop.is_set(),
            drain_seconds=DRAIN_SECONDS,
        )
        return delivered

    async def _keep_running(self, player: Player, monitor: Monitor) -> None:
        view = View(self.options.speed, player.total_calls, player.posted)
        with live(self.console, view.render(player, monitor, bars=False)) as display:
            while not self.stop.is_set():
                await wait(self.stop, 1.0)
                await monitor.poll()
                display.update(view.render(player, monitor, bars=False), refresh=True)

    # -- helpers ----------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Child:
        child = spawn(name, args, data_dir=self.data_dir, log_dir=self.log_dir, extra_env=extra_env)
        self.children.append(child)
        return child

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
