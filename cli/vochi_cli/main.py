"""Entry point of ``vochi-crm``. Command modules import the core lazily so ``--help`` stays fast."""

from __future__ import annotations

import typer

from vochi_cli.commands import (
    admin_link,
    completions,
    config,
    db,
    demo,
    events,
    launchers,
    register,
    replay,
    secrets,
    settings,
    tail_logs,
    test_connection,
    units,
)

app = typer.Typer(
    name="vochi-crm",
    help=(
        "RetailCRM integration of the Vochi telephony platform.\n\n"
        "Configure units, run the daemon that receives call events, and operate it.\n"
        "With no VOCHI_DATABASE_URL every command uses an embedded PostgreSQL.\n\n"
        "Example: vochi-crm config show 0367"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    # a crash's traceback must never print local variables (API keys, tokens live in them)
    pretty_exceptions_show_locals=False,
)
app.add_typer(config.app, name="config")
app.add_typer(units.app, name="units")
app.add_typer(db.app, name="db")
app.command("settings")(settings.show_settings)
app.command("register")(register.register)
app.command("test-connection")(test_connection.check_connection)
app.add_typer(events.app, name="events")
app.command("tail-logs")(tail_logs.tail_logs)
app.command("replay-event")(replay.replay_event)
launchers.register(app)
app.command("demo")(demo.demo)
app.command("completions")(completions.completions)
app.command("admin-link")(admin_link.admin_link)
app.add_typer(secrets.app, name="secrets")


def run() -> None:
    app()
