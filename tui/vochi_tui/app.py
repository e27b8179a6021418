"""The support console. A placeholder for now: it shows the settings in use; units, health,
queue and replay come with the console issue."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static

from vochi_crm.settings import Settings


class ConsoleApp(App[None]):
    TITLE = "vochi-crm console"
    BINDINGS = [("q", "quit", "Quit")]  # noqa: RUF012 - Textual's declared class attribute

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "The live console (units, health, queue, errors, replay) is not built yet.\n"
            f"Daemon: http://{self._settings.daemon.host}:{self._settings.daemon.port}\n"
            "Press q to quit.",
            id="placeholder",
        )
        yield Footer()


def run_console(settings: Settings) -> None:
    ConsoleApp(settings).run()
