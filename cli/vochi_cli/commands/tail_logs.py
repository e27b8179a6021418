"""``vochi-crm tail-logs``: the journal (every RetailCRM call) and event state changes, latest
first, then live with ``--follow``.

``--follow`` waits on PostgreSQL ``LISTEN`` (the delivery store, ingest and replay notify once per
committed batch) and reads only rows after its cursor; it re-checks every 30 s in case a
notification was lost, and never polls faster than four times a second. Ctrl-C ends it (exit 0).
``--json`` prints one object per line, flushed at once, for ``jq`` and log shippers. Credentials
never reach the screen: every row is masked by the core before it gets here.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output
from vochi_cli.commands.events import local, styled

if TYPE_CHECKING:
    from rich.console import Console

    from vochi_crm.journal import TailItem
    from vochi_crm.runtime import Runtime


def tail_logs(
    unit: Annotated[str | None, typer.Option("--unit", "-u", help="Only this unit.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="error (failed calls and failed/expired events), success, or an event status "
            "(pending, delivered, failed, expired, skipped, processing)."
        ),
    ] = None,
    call: Annotated[str | None, typer.Option(help="Only this call (Asterisk UniqueId).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only rows written since: 10m, 2h or an ISO date/time.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new rows as they are written.")
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option(
            "--lines",
            "-n",
            help="Latest rows shown first (default 20; with --since: all since then).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show the RetailCRM journal and event states; --follow keeps watching, live.

    Example: vochi-crm tail-logs --unit 0367 --status error --follow
    """
    from vochi_crm.journal_tail import JournalTail, TailFilter
    from vochi_crm.timespec import parse_instant

    start = core.guard(lambda: parse_instant(since, option="--since") if since else None)
    count = lines if lines is not None or start is not None else 20
    flt = TailFilter(unit=unit, status=status, call=call, since=start)
    core.guard(flt.validate)
    console = output.stdout()

    def show(items: list[TailItem]) -> None:
        for item in items:
            if as_json:
                sys.stdout.write(json.dumps(item.as_dict(), ensure_ascii=False, default=str))
                sys.stdout.write("\n")
            else:
                _print_line(console, item)
        sys.stdout.flush()

    async def use(runtime: Runtime) -> None:
        tail = JournalTail(runtime.db, flt)
        if not follow:
            show(await tail.latest(count))
            return
        first = True
        async with contextlib.aclosing(tail.follow(count)) as batches:
            async for batch in batches:
                show(batch)
                if first:
                    output.notice("Following the journal… (Ctrl-C to stop)")
                    first = False

    try:
        core.with_runtime(use)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:  # `… | head`: the reader is gone, which is not an error
        raise typer.Exit(0) from None


def _print_line(console: Console, item: TailItem) -> None:
    from rich.text import Text

    from vochi_crm.journal import EventRecord

    line = Text()
    if isinstance(item, EventRecord):
        line.append(f"{local(item.updated_at)}  {item.unit}  event #{item.id} {item.event_type} ")
        line.append_text(styled(item.status))
        line.append(f"  call {item.call_unique_id}")
        if item.attempts:
            line.append(f"  tries {item.attempts}")
        if item.last_error:
            line.append(f"  {item.last_error}", style="red")
    else:
        line.append(f"{local(item.created_at)}  {item.unit}  {item.event_type} ")
        line.append_text(styled(item.status))
        if item.response_time_ms is not None:
            line.append(f"  {item.response_time_ms} ms")
        if item.call_unique_id:
            line.append(f"  call {item.call_unique_id}")
        if item.error:
            line.append(f"  {item.error}", style="red")
    console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
