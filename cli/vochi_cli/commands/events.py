"""``vochi-crm events list|show``: the event queue for support — what arrived, what became of it,
and one call's whole story (every event and every RetailCRM call with timing and outcome).

Also the small rendering helpers ``tail-logs`` and ``replay-event`` share: status colours, local
times, and tables whose long columns are cut to fit the terminal instead of wrapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from rich.text import Text

    from vochi_crm.journal import CallStory, EventRecord
    from vochi_crm.runtime import Runtime

app = typer.Typer(
    help="The event queue: list events, show one call's story.\n\n"
    "Example: vochi-crm events list --unit 0367 --status failed",
    no_args_is_help=True,
)

UnitOpt = Annotated[str | None, typer.Option("--unit", "-u", help="Only this unit, e.g. 0367.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
STATUS_STYLES = {
    "delivered": "green",
    "success": "green",
    "pending": "cyan",
    "processing": "blue",
    "received": "dim",
    "failed": "bold red",
    "error": "bold red",
    "expired": "yellow",
    "skipped": "dim",
}


@app.command("list")
def list_events(
    unit: UnitOpt = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these statuses (repeat or comma-separate): pending, processing, "
            "delivered, failed, expired, skipped."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Received at or after: 10m, 2h, 3d or an ISO date/time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Received before (same forms).")] = None,
    call: Annotated[str | None, typer.Option(help="Only this call (Asterisk UniqueId).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List events, newest first, filtered by unit, status and time received.

    Example: vochi-crm events list --unit 0367 --status failed,expired --since 2h
    """
    from vochi_crm.journal import EventFilter, list_events
    from vochi_crm.timespec import parse_window

    start, end = core.guard(lambda: parse_window(since, until))
    flt = EventFilter(unit, split_values(status), call, start, end, limit)

    async def use(runtime: Runtime) -> list[EventRecord]:
        return await list_events(runtime.db, flt)

    events = core.with_runtime(use)
    if as_json:
        output.print_json([e.as_dict() for e in events])
        return
    print_rows(
        f"{len(events)} event(s)" + (" (limit reached)" if len(events) >= limit else ""),
        ["id", "received", "unit", "call", "type", "status", "tries", "last error"],
        (
            [e.id, local(e.received_at), e.unit, e.call_unique_id, e.event_type,
             styled(e.status), e.attempts, e.last_error]
            for e in events
        ),
        cut={"call": 24, "last error": 60},
    )


@app.command("show")
def show(
    event_id: Annotated[
        int | None, typer.Argument(help="Any event id of the call.", show_default=False)
    ] = None,
    call: Annotated[str | None, typer.Option(help="The call's Asterisk UniqueId instead.")] = None,
    unit: UnitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One call's whole story: every event, every RetailCRM call (timing, outcome), in order.

    Example: vochi-crm events show 1234        or   vochi-crm events show --call 1712345678.42
    """
    from vochi_crm.journal import call_story

    async def use(runtime: Runtime) -> CallStory:
        return await call_story(runtime.db, event_id=event_id, call=call, unit=unit)

    story = core.with_runtime(use)
    if as_json:
        output.print_json(story.as_dict())
        return
    print_rows(
        f"Call {story.call_unique_id} of unit {story.unit}: {len(story.events)} event(s), "
        f"{len(story.requests)} RetailCRM call(s)",
        ["time", "step", "type", "status", "ms", "ref", "detail"],
        (
            [local(s.at), s.kind, s.event_type, styled(s.status), s.response_time_ms,
             ("event " if s.kind != "request" else "log ") + str(s.ref), s.detail]
            for s in story.timeline()
        ),
        cut={"detail": 70},
    )


# -- rendering shared with tail-logs and replay-event ---------------------------------------------


def split_values(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--status a --status b,c`` → ``("a", "b", "c")``."""
    return tuple(v.strip() for item in values or () for v in item.split(",") if v.strip())


def local(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def styled(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLES.get(status, ""))


def print_rows(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, cut: dict[str, int]
) -> None:
    """A table that fits the terminal on one line per row: the columns named in ``cut`` (long
    free text) get what the others leave, at most ``cut[name]`` characters, cut with "…"."""
    from rich.table import Table
    from rich.text import Text

    cells = [
        [c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row]
        for row in rows
    ]
    natural = [max([len(name), *(row[i].cell_len for row in cells)]) for i, name in
               enumerate(columns)]
    console = output.stdout()
    budget = console.width - 3 * len(columns) - 1 - sum(
        w for name, w in zip(columns, natural, strict=True) if name not in cut
    )
    widths: dict[str, int] = {}
    flexible = [name for name in columns if name in cut]
    for n, name in enumerate(flexible):
        want = min(cut[name], natural[columns.index(name)])
        widths[name] = max(len(name), min(want, budget // (len(flexible) - n)))
        budget -= widths[name]
    table = Table(title=title, title_justify="left", expand=False)
    for name in columns:
        table.add_column(
            name, no_wrap=True, overflow="ellipsis", width=widths.get(name),
            justify="right" if name in ("id", "tries", "ms") else "left",
        )
    for row in cells:
        table.add_row(*row)
    console.print(table)
