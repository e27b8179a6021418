"""Журнал / Journal: the unit's events and RetailCRM calls with filters, a call's whole story and
replay of failed/expired events (the journal and replay use-cases, scoped to the unit)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vochi_crm.admin_views import JournalQuery, replay_for_unit, search_events, search_requests
from vochi_crm.errors import InvalidInput
from vochi_crm.journal import EVENT_STATUSES, call_story
from vochi_crm.replay import REPLAYABLE
from vochi_daemon.admin.auth import page_access
from vochi_daemon.admin.http import ADMIN_PREFIX, first
from vochi_daemon.admin.pages import checked_form, see_other
from vochi_daemon.admin.render import page, render, zone
from vochi_daemon.app_state import runtime_of

router = APIRouter(prefix=ADMIN_PREFIX + "/units/{unit}/journal", include_in_schema=False)
FILTERS = ("phone", "call", "status", "day")
STATUS_CHOICES = ("error", *EVENT_STATUSES)


@router.get("")
@page
async def journal(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    runtime = runtime_of(request)
    current = await runtime.configs.get(unit)
    params = {name: request.query_params.get(name, "").strip()[:100] for name in FILTERS}
    errors: dict[str, str] = {}
    try:
        query = JournalQuery.validated(
            phone=params["phone"], call=params["call"], status=params["status"], day=params["day"]
        )
    except InvalidInput as exc:
        errors = {f.field: f"err.filter.{f.field}" for f in exc.fields}
        query = JournalQuery()
    tz = zone(request)
    events = await search_events(runtime.db, unit, query, tz) if not errors else []
    requests = await search_requests(runtime.db, unit, query, tz) if not errors else []
    return render(
        request,
        "journal.html",
        status=422 if errors else 200,
        access=access,
        unit=current,
        nav="journal",
        filters=params,
        errors=errors,
        statuses=STATUS_CHOICES,
        events=events,
        requests=requests,
        replayable=REPLAYABLE,
        **_replayed(request),
    )


@router.get("/calls/{call}")
@page
async def story(request: Request, unit: str, call: str) -> Response:
    access = await page_access(request, unit)
    runtime = runtime_of(request)
    current = await runtime.configs.get(unit)
    found = await call_story(runtime.db, call=call, unit=unit)
    return render(
        request,
        "story.html",
        access=access,
        unit=current,
        nav="journal",
        story=found,
        timeline=found.timeline(),
        replayable=REPLAYABLE,
        **_replayed(request),
    )


@router.post("/replay")
@page
async def replay(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    form = await checked_form(request, access)
    ids: list[int] = []
    for value in form.get("event", []):
        if not value.isascii() or not value.isdigit():
            raise InvalidInput.one("event", f"{value[:20]!r} is not an event id")
        ids.append(int(value))
    if not ids and first(form, "all") != "1":
        return see_other(f"{ADMIN_PREFIX}/units/{unit}/journal?done=nothing")
    result = await replay_for_unit(runtime_of(request).db, unit, ids[:1000])
    back = first(form, "back").split("?")[0]
    target = back if back.startswith(f"{ADMIN_PREFIX}/units/{unit}/journal") else (
        f"{ADMIN_PREFIX}/units/{unit}/journal"
    )
    joiner = "&" if "?" in target else "?"
    return see_other(
        f"{target}{joiner}done=replayed&requeued={result.requeued}&refused={len(result.errors)}"
    )


def _replayed(request: Request) -> dict[str, Any]:
    """What the replay that redirected here did (for the notice)."""
    query = request.query_params
    return {
        "done": query.get("done"),
        "counts": {"requeued": _int(query.get("requeued")), "refused": _int(query.get("refused"))},
    }


def _int(value: str | None) -> int:
    return int(value) if value and value.isascii() and value.isdigit() else 0
