"""``vochi-crm demo``: the whole service on this machine in one command.

Starts the RetailCRM simulator and the daemon as child processes of this interpreter
(``python -m vochi_cli simulator|daemon``, each in its own session so a terminal's Ctrl-C reaches
only us and we stop them in order), all on the embedded PostgreSQL, prepares the demo unit
(:func:`vochi_crm.demo.prepare_demo_unit`), plays generated calls (:mod:`vochi_crm.demo_calls`)
into ``POST /api/events`` and shows a live summary from the daemon's ``/stats``. Then it keeps
everything running until Ctrl-C (or ``--duration``, or at once with ``--no-wait``) and stops the
daemon (which stops the embedded PostgreSQL as its last user) and the simulator: SIGTERM, wait,
SIGKILL after a timeout.

This module is the Typer entry: options, help, the exit code. The work is in :mod:`vochi_cli.demo`,
which the command imports (with asyncio, httpx, Rich's live display and the core) only when it
runs, so ``vochi-crm --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vochi_cli import core, output


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
    import asyncio

    from vochi_cli.demo.session import Demo, Options

    if port is not None and port == simulator_port:
        output.stderr().print("[red]--port and --simulator-port must differ[/red]")
        raise typer.Exit(2)
    options = Options(calls, speed, port, simulator_port, duration, no_wait, seed)
    settings = core.settings()
    code = asyncio.run(Demo(options, settings, output.stdout()).run())
    raise typer.Exit(code)
