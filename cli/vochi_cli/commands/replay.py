"""``vochi-crm replay-event``: put failed or expired events back in the queue — by hand or from
cron (see deploy/cron.example).

Built for cron: bounded (``--limit``, default 1000 a run), safe to run from several hosts at once
(no event is requeued twice), quiet when there is nothing to do (no output, exit 0; ``--json``
still prints its one-line summary), and the exit code says what happened: 0 every selected event
was requeued, 1 some could not be (their unit has no config or is disabled, a named event is not
failed/expired, the database failed), 2 bad input (nothing changed). What a replay resets and why
is documented in :mod:`vochi_crm.replay`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output
from vochi_cli.commands.events import local, print_rows, split_values, styled

if TYPE_CHECKING:
    from vochi_crm.replay import ReplayResult
    from vochi_crm.runtime import Runtime


def replay_event(
    ids: Annotated[
        list[int] | None,
        typer.Argument(help="Event ids to replay (instead of the filters).", show_default=False),
    ] = None,
    unit: Annotated[str | None, typer.Option("--unit", "-u", help="Only this unit.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(help="failed and/or expired (repeat or comma-separate; default both)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Received at or after: 10m, 2h, 3d or an ISO date/time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Received before (same forms).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Requeue at most this many per run (default 1000).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be requeued; change nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a one-line JSON summary (for cron logs).")
    ] = False,
) -> None:
    """Put failed/expired events back in the queue (safe from cron on several hosts at once).

    The pipeline then decides: a paused unit or an open breaker still holds them back. Quiet when
    nothing matches; exit 0 all requeued, 1 some could not be, 2 bad input (nothing changed).

    Example: vochi-crm replay-event --status failed --since 2h --limit 500 --json
    """
    from vochi_crm.replay import ReplayRequest, replay_events
    from vochi_crm.timespec import parse_window

    start, end = core.guard(lambda: parse_window(since, until))
    request = ReplayRequest(
        ids=tuple(ids or ()),
        unit=unit,
        statuses=split_values(status),
        since=start,
        until=end,
        limit=limit,
    )
    core.guard(request.validate)

    async def use(runtime: Runtime) -> ReplayResult:
        return await replay_events(runtime.db, request, dry_run=dry_run)

    result = core.with_runtime(use)
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
    else:
        _render(result)
    if not result.ok:
        raise typer.Exit(1)


def _render(result: ReplayResult) -> None:
    if result.events and result.dry_run:
        print_rows(
            f"Would requeue {result.requeued} event(s)"
            + (f" of {result.matched} matching (--limit {result.limit})" if result.more else ""),
            ["id", "unit", "call", "type", "status", "previous error"],
            (
                [e.id, e.unit, e.call_unique_id, e.event_type, styled(e.previous_status),
                 e.previous_error]
                for e in result.events
            ),
            cut={"call": 24, "previous error": 60},
        )
    elif result.dry_run and not result.errors:
        output.notice("Nothing to replay.")
    elif result.events:
        units = ", ".join(f"{u}: {n}" for u, n in result.by_unit().items())
        output.success(f"{local(result.at)} requeued {result.requeued} event(s) ({units})")
        if result.more:
            output.notice(f"more events match than --limit {result.limit}: the next run goes on")
    from rich.text import Text

    console = output.stderr()
    for error in result.errors:
        console.print(Text.assemble(("✗ ", "red"), error), highlight=False)
