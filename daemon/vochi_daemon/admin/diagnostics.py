"""Диагностика / Diagnostics: last successes and errors, queue depth and oldest pending, breaker
state and alerts with what to do — from the dispatcher's stats and the journal, for one unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vochi_crm.admin_views import JournalQuery, search_events, search_requests
from vochi_crm.delivery.accounts import account_label
from vochi_crm.units import Unit
from vochi_daemon.admin.auth import page_access
from vochi_daemon.admin.http import ADMIN_PREFIX
from vochi_daemon.admin.render import page, render, zone
from vochi_daemon.app_state import runtime_of

router = APIRouter(prefix=ADMIN_PREFIX + "/units/{unit}", include_in_schema=False)
BACKLOG_SECONDS = 300
PAUSE_REASONS = (
    "missing_key",
    "invalid_key",
    "access_denied",
    "account_missing",
    "telephony_disabled",
    "redirect",
)


@dataclass(frozen=True)
class Alert:
    key: str
    """i18n key of the text; ``<key>.do`` says what to do."""
    level: str = "warn"
    params: dict[str, Any] = field(default_factory=dict)
    link: str | None = None


def alerts_for(
    unit: Unit, paused: dict[str, Any] | None, breaker: dict[str, Any] | None,
    queue: dict[str, Any] | None, failed: int,
) -> list[Alert]:
    """What needs the admin's attention, most important first (pure)."""
    base = f"{ADMIN_PREFIX}/units/{unit.number}"
    config = unit.retailcrm
    found: list[Alert] = []
    if unit.api_key_unreadable:
        found.append(Alert("alert.key_unreadable", "error", link=f"{base}/connection"))
    elif not config.configured:
        found.append(Alert("alert.not_configured", "error", link=f"{base}/connection"))
    elif not config.enabled:
        found.append(Alert("alert.disabled", "warn", link=f"{base}/connection"))
    if paused is not None:
        reason = paused.get("reason")
        key = f"alert.paused.{reason}" if reason in PAUSE_REASONS else "alert.paused"
        found.append(Alert(key, "error", link=f"{base}/connection"))
    if breaker is not None and breaker.get("state") in ("open", "half_open"):
        found.append(Alert("alert.breaker_open", "error"))
    if config.configured and not config.user_mappings:
        found.append(Alert("alert.no_mapping", "warn", link=f"{base}/mapping"))
    if queue is not None and (queue.get("oldest_pending_seconds") or 0) > BACKLOG_SECONDS:
        minutes = int(queue["oldest_pending_seconds"] // 60)
        params = {"minutes": minutes, "count": queue["pending"]}
        found.append(Alert("alert.backlog", "warn", params))
    if failed:
        found.append(
            Alert("alert.failed", "warn", {"count": failed}, link=f"{base}/journal?status=error")
        )
    return found


def stamped(text: str | None) -> tuple[datetime | None, str]:
    """``"<ISO time> <message>"`` (the delivery metrics' last success/error) → (time, message)."""
    if not text:
        return None, ""
    head, _, rest = text.partition(" ")
    try:
        return datetime.fromisoformat(head), rest
    except ValueError:
        return None, text


@router.get("/diagnostics")
@page
async def diagnostics(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    runtime = runtime_of(request)
    current = await runtime.configs.get(unit)
    stats: dict[str, Any] = await runtime.dispatcher.stats() if runtime.dispatcher else {}
    queue = next((q for q in stats.get("queue", []) if q.get("unit") == unit), None)
    per_unit = stats.get("per_unit", {}).get(unit)
    account = (stats.get("accounts") or {}).get(account_label(current.retailcrm))
    breaker = account.get("breaker") if isinstance(account, dict) else None
    paused = next((a for a in stats.get("alerts", []) if a.get("unit") == unit), None)
    tz = zone(request)
    db = runtime.db
    failed = await search_events(db, unit, JournalQuery(status="error", limit=500), tz)
    successes = await search_requests(db, unit, JournalQuery(status="success", limit=5), tz)
    errors = await search_requests(db, unit, JournalQuery(status="error", limit=5), tz)
    return render(
        request,
        "diagnostics.html",
        access=access,
        unit=current,
        nav="diagnostics",
        alerts=alerts_for(current, paused, breaker, queue, len(failed)),
        leader=bool(stats.get("leader")),
        queue=queue or {"pending": 0, "oldest_pending_seconds": None},
        delivery=per_unit or {},
        last_success=stamped((per_unit or {}).get("last_success")),
        last_error=stamped((per_unit or {}).get("last_error")),
        breaker=breaker,
        latency=stats.get("retailcrm_latency_ms"),
        successes=successes,
        errors=errors,
        encrypted=request.app.state.settings.secret_key is not None,
    )
