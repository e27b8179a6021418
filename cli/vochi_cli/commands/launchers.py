"""Commands that start a long-running front-end. They import it lazily, inside the command, so
``vochi-crm --help`` never pays for FastAPI, uvicorn or Textual."""

from __future__ import annotations

from typing import Annotated

import typer

from vochi_cli import core, output


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon)
    app.command("console")(console)
    app.command("simulator")(simulator)


def daemon(
    host: Annotated[
        str | None, typer.Option(help="Listen address [env: VOCHI_DAEMON__HOST; default 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port [env: VOCHI_DAEMON__PORT; default 8019]")
    ] = None,
) -> None:
    """Run the daemon: call-event ingest, config API, /health and /stats.

    Migrates the database at start. With no VOCHI_DATABASE_URL it runs on the embedded
    PostgreSQL. Stops gracefully on SIGTERM or Ctrl-C.

    Example: vochi-crm daemon --port 8019
    """
    from vochi_daemon.server import serve

    settings = core.settings()
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if updates:
        settings = settings.model_copy(
            update={"daemon": settings.daemon.model_copy(update=updates)}
        )
    core.guard(lambda: serve(settings, notice=output.notice))


def console() -> None:
    """Open the live support console (units, health, queue, errors).

    Example: vochi-crm console
    """
    from vochi_tui.app import run_console

    run_console(core.settings())


def simulator(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8090,
) -> None:
    """Run the RetailCRM simulator (tests, the demo and benchmarks talk to it).

    Example: vochi-crm simulator --port 8090
    """
    from vochi_daemon.simulator import serve

    serve(host=host, port=port)
