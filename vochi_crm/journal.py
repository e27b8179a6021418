"""Reading the queue and the journal: events by unit/status/time, one call's whole story, and the
journal (``integration_logs``) with event state changes, as a listing or live.

Everything a front-end may print passes :func:`masked` first. ``integration_logs`` rows are
written masked already (the RetailCRM client masks every exchange), but the table is shared with
other services and older writers, so anything that looks like a credential (``api_key``,
``apiKey``, ``X-API-KEY``, ``clientId``, ``token``, a JWT) is masked again here, defensively.

Live following (:meth:`JournalTail.follow`) LISTENs on ``retailcrm_journal`` (the delivery store
notifies once per committed batch) and ``retailcrm_events_ready`` (ingest and replay notify once
per batch); a notification only says "look": rows are then read after a cursor, so a lost
notification costs latency, never rows. A re-check every ``recheck`` seconds (30 by default) is the
insurance against a notification lost while the listener reconnects. Fetches are at most one per
``min_interval`` (a busy dispatcher commits many batches a second), so a tail never hammers the
database. The cursors overlap the last ``OVERLAP`` seconds and de-duplicate, because ids and
``now()`` timestamps are assigned at insert while rows become visible at commit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.masking import mask_secret
from vochi_crm.retailcrm.exchange import SECRET_KEYS, mask_text
from vochi_crm.units import fetch_unit

EVENT_STATUSES = ("pending", "processing", "delivered", "failed", "expired", "skipped")
TAIL_STATUSES = ("error", "success", *EVENT_STATUSES)
OVERLAP = 2.0
PAGE = 1000
_MASKED_KEYS = SECRET_KEYS | {"clientid", "client_id"}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_KEY_IN_TEXT = re.compile(
    r"(?P<head>\b(?:x-api-key|api[_-]?key|client[_-]?id)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[^\s\"'&,;}]+)",
    re.IGNORECASE,
)


def masked(value: Any) -> Any:
    """A copy of JSON-like ``value`` with every credential-looking field and text masked."""
    if isinstance(value, Mapping):
        return {
            str(k): (mask_secret(v) if isinstance(v, str) else None if v is None else "••••")
            if str(k).lower() in _MASKED_KEYS
            else masked(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, str):
        text = _KEY_IN_TEXT.sub(
            lambda m: m["head"] + (mask_secret(m["value"]) or ""), mask_text(value)
        )
        return _JWT.sub("eyJ••••", text)
    return value


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One ``retailcrm_events`` row as it may be shown (payload and error masked)."""

    id: int
    unit: str
    call_unique_id: str
    event_type: str
    status: str
    attempts: int
    progress: int
    next_attempt_at: datetime
    last_error: str | None
    received_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EventRecord:
        return _record(cls, row)

    def as_dict(self) -> dict[str, Any]:
        data = _plain(self, kind="event")
        if self.payload is None:
            del data["payload"]
        return data


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One ``integration_logs`` row: a RetailCRM call with its outcome and timing (masked)."""

    id: int
    unit: str
    event_type: str
    call_unique_id: str | None
    phone: str | None
    extension: str | None
    status: str
    error: str | None
    response_time_ms: int | None
    created_at: datetime
    request: Any
    response: Any

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JournalRecord:
        return _record(cls, row)

    def as_dict(self) -> dict[str, Any]:
        return _plain(self, kind="request")


TailItem = EventRecord | JournalRecord


def item_time(item: TailItem) -> datetime:
    return item.updated_at if isinstance(item, EventRecord) else item.created_at


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One line of a call's story: an event received, a RetailCRM call, an event's outcome."""

    at: datetime
    kind: str  # received | request | outcome
    event_type: str
    status: str
    detail: str | None
    ref: int  # the event id (received/outcome) or the journal id (request)
    response_time_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class CallStory:
    unit: str
    call_unique_id: str
    events: tuple[EventRecord, ...]
    requests: tuple[JournalRecord, ...]

    def timeline(self) -> list[StoryEntry]:
        """Events received, RetailCRM calls, outcomes, by time. An outcome and the requests that
        led to it commit together (same ``now()``): requests come first on a tie."""
        entries: list[tuple[datetime, int, int, StoryEntry]] = []
        for e in self.events:
            entries.append(
                (
                    e.received_at,
                    0,
                    e.id,
                    StoryEntry(e.received_at, "received", e.event_type, "received", None, e.id),
                )
            )
            if e.status != "pending" or e.last_error:
                detail = e.last_error or (f"{e.attempts} attempt(s)" if e.attempts else None)
                entries.append(
                    (
                        e.updated_at,
                        2,
                        e.id,
                        StoryEntry(e.updated_at, "outcome", e.event_type, e.status, detail, e.id),
                    )
                )
        for r in self.requests:
            entries.append(
                (
                    r.created_at,
                    1,
                    r.id,
                    StoryEntry(
                        r.created_at,
                        "request",
                        r.event_type,
                        r.status,
                        r.error,
                        r.id,
                        r.response_time_ms,
                    ),
                )
            )
        return [entry for *_, entry in sorted(entries, key=lambda t: t[:3])]

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "call_unique_id": self.call_unique_id,
            "events": [e.as_dict() for e in self.events],
            "requests": [r.as_dict() for r in self.requests],
            "timeline": [entry.as_dict() for entry in self.timeline()],
        }


# -- listing and the call story ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    unit: str | None = None
    statuses: tuple[str, ...] = ()
    call: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


def check_statuses(statuses: tuple[str, ...], allowed: tuple[str, ...], option: str) -> None:
    bad = [s for s in statuses if s not in allowed]
    if bad:
        raise InvalidInput.one(
            option, f"unknown status {', '.join(map(repr, bad))} (one of: {', '.join(allowed)})"
        )


async def list_events(db: Database, flt: EventFilter) -> list[EventRecord]:
    """Newest first. An unknown unit or status is an error, not an empty list."""
    check_statuses(flt.statuses, EVENT_STATUSES, "--status")
    if not 1 <= flt.limit <= 100_000:
        raise InvalidInput.one("--limit", "must be between 1 and 100000")
    if flt.since and flt.until and flt.until < flt.since:
        raise InvalidInput.one("--until", "is before --since")
    async with db.connection() as conn:
        if flt.unit is not None:
            await fetch_unit(conn, flt.unit)
        cur = await conn.execute(
            queries.EVENTS_LIST,
            {
                "unit": flt.unit,
                "statuses": list(flt.statuses) or None,
                "call": flt.call,
                "since": flt.since,
                "until": flt.until,
                "limit": flt.limit,
            },
        )
        return [EventRecord.from_row(r) for r in await cur.fetchall()]


async def call_story(
    db: Database, *, event_id: int | None = None, call: str | None = None, unit: str | None = None
) -> CallStory:
    """Every event of one call and every RetailCRM call made for it, found by one of its event
    ids or by its UniqueId (with the unit when two units' PBXes reused the same UniqueId)."""
    if (event_id is None) == (call is None):
        raise InvalidInput.one("call", "give an event id or --call UNIQUEID (not both)")
    async with db.connection() as conn:
        if unit is not None:
            await fetch_unit(conn, unit)
        if event_id is not None:
            cur = await conn.execute(queries.EVENTS_BY_IDS, {"ids": [event_id]})
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"unknown event id {event_id}")
            if unit is not None and row["enterprise_number"] != unit:
                raise InvalidInput.one(
                    "--unit",
                    f"event {event_id} belongs to unit {row['enterprise_number']}, not {unit}",
                )
            unit, call = row["enterprise_number"], row["call_unique_id"]
        assert call is not None
        if unit is None:
            cur = await conn.execute(queries.EVENT_CALL_UNITS, {"call": call})
            units = [r["enterprise_number"] for r in await cur.fetchall()]
            if not units:
                raise NotFound(f"no event of call {call!r}")
            if len(units) > 1:
                raise InvalidInput.one(
                    "--unit", f"call {call!r} exists in units {', '.join(units)}: name one"
                )
            unit = units[0]
        params = {"unit": unit, "call": call}
        events = [
            EventRecord.from_row(r)
            for r in await (await conn.execute(queries.CALL_EVENTS, params)).fetchall()
        ]
        if not events:
            raise NotFound(f"no event of call {call!r} in unit {unit}")
        requests = [
            JournalRecord.from_row(r)
            for r in await (await conn.execute(queries.CALL_JOURNAL, params)).fetchall()
        ]
    return CallStory(unit, call, tuple(events), tuple(requests))


_COLUMNS = {
    "unit": "enterprise_number",
    "phone": "phone_number",
    "extension": "internal_extension",
    "error": "error_message",
    "request": "request_data",
    "response": "response_data",
}
_MASKED_FIELDS = frozenset({"last_error", "payload", "error", "request", "response"})
R = TypeVar("R", EventRecord, JournalRecord)


def _record(cls: type[R], row: Mapping[str, Any]) -> R:
    """A record from a row: columns renamed, free text and JSON masked; absent columns default."""
    values = {}
    for f in fields(cls):
        column = _COLUMNS.get(f.name, f.name)
        if column in row:
            values[f.name] = masked(row[column]) if f.name in _MASKED_FIELDS else row[column]
    return cls(**values)


def _plain(record: Any, **extra: Any) -> dict[str, Any]:
    """A record's fields as JSON-ready values (times in ISO-8601 with their offset)."""
    data = dict(extra)
    for f in fields(record):
        value = getattr(record, f.name)
        data[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return data
