"""Replay: put failed or expired events back in the queue, by id or by unit / status / time window.

One use-case for every front-end (DESIGN §2 rule 6): ``vochi-crm replay-event``, cron, the daemon
and the console call :func:`replay_events` with plain arguments and render the
:class:`ReplayResult`.

What a replay does to a row, and why (the statement is ``queries.EVENTS_REPLAY``):

* ``status`` → ``pending``, ``next_attempt_at`` → now, then ``NOTIFY retailcrm_events_ready`` once
  per batch so the dispatcher wakes. Nothing else decides: a paused unit or an open breaker keeps
  the event waiting exactly as for a fresh one (replay queues, the pipeline decides).
* ``progress`` is kept: requests of the event's plan that RetailCRM already accepted (the pop-up
  of a hangup that failed at its history upload) are not sent twice.
* ``received_at`` is kept: ages count from reception. So a ring (``dial``) event older than the
  ring TTL expires again at once — correct, a pop-up for a call that ended is worthless — and a
  history event older than the retry window (``max_age_hours``) gets one attempt (it is delivered
  if RetailCRM takes it, failed again otherwise) rather than another day of retries.
* ``attempts`` restarts at 0: the retry policy (quick retries, backoff from its first step) starts
  afresh instead of at the backoff cap. Every earlier attempt is still in ``integration_logs``.
* ``last_error`` is cleared (a pending event has no error yet); the previous one is returned in
  the result (and so in cron's log), and RetailCRM's answers stay in the journal.

Concurrency: batches of :data:`BATCH` rows, each one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE
SKIP LOCKED)`` in its own transaction. A row locked by another replay is skipped, and a row another
replay already requeued no longer has a replayable status, so any number of runs at once (several
cron hosts) requeue every event exactly once between them. Within a run, batches walk ids upwards,
so an event that failed again meanwhile is not replayed twice by the same run.

Events whose unit cannot deliver them are not queued: the worker would only fail them again.
They are reported as errors (exit 1). A call event needs the unit to exist with the integration
configured and enabled; a module (de)registration event only needs credentials (its delivery
reads the config: a disabled unit's module gets deactivated). ``--unit`` naming an unknown unit
or one with no RetailCRM config is bad input (exit 2, nothing changed). Ids named explicitly that
are not failed/expired are reported "not replayable (status X)" and left alone; that is an error
too (exit 1): exit 0 says every event the caller named was requeued by this run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.journal import masked
from vochi_crm.registration.module import MODULE_EVENTS
from vochi_crm.units import Unit, fetch_unit, unit_from_row

REPLAYABLE = ("failed", "expired")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
BATCH = 500


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What to replay: explicit ``ids``, or the filters (``statuses`` empty = failed and expired,
    the window is on ``received_at``). ``limit`` bounds one run (default :data:`DEFAULT_LIMIT`)."""

    ids: tuple[int, ...] = ()
    unit: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def validate(self) -> None:
        """Conflicting or impossible requests are refused before anything is read or changed."""
        if self.ids:
            given = [
                name
                for name, value in (
                    ("--unit", self.unit),
                    ("--status", self.statuses or None),
                    ("--since", self.since),
                    ("--until", self.until),
                    ("--limit", self.limit),
                )
                if value is not None
            ]
            if given:
                raise InvalidInput.one(
                    "ids", f"event ids cannot be combined with {', '.join(given)}"
                )
            bad = [i for i in self.ids if i <= 0]
            if bad:
                raise InvalidInput.one("ids", f"{bad[0]} is not an event id")
            if len(self.ids) > MAX_LIMIT:
                raise InvalidInput.one("ids", f"at most {MAX_LIMIT} ids at once")
        wrong = [s for s in self.statuses if s not in REPLAYABLE]
        if wrong:
            raise InvalidInput.one(
                "--status", f"{wrong[0]!r} cannot be replayed (only failed or expired)"
            )
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput.one("--limit", f"must be between 1 and {MAX_LIMIT}")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidInput.one("--until", "is before --since")

    @property
    def effective_limit(self) -> int:
        if self.ids:
            return len(set(self.ids))
        return self.limit if self.limit is not None else DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class ReplayedEvent:
    id: int
    unit: str
    call_unique_id: str
    event_type: str
    previous_status: str
    previous_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit": self.unit,
            "call_unique_id": self.call_unique_id,
            "event_type": self.event_type,
            "previous_status": self.previous_status,
            "previous_error": self.previous_error,
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    dry_run: bool
    limit: int
    matched: int
    """Matching events of deliverable units when the run started (other runs may take some)."""
    events: tuple[ReplayedEvent, ...] = ()
    """Requeued by this run (in a dry run: would be requeued), by id."""
    errors: tuple[str, ...] = ()
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def requeued(self) -> int:
        return len(self.events)

    @property
    def more(self) -> bool:
        """The limit stopped this run while matching events were left (run again)."""
        return self.requeued >= self.limit and self.matched > self.requeued

    def by_unit(self) -> dict[str, int]:
        return dict(sorted(Counter(e.unit for e in self.events).items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "ok": self.ok,
            "matched": self.matched,
            "requeued": self.requeued,
            "limit": self.limit,
            "more": self.more,
            "by_unit": self.by_unit(),
            "ids": [e.id for e in self.events],
            "events": [e.as_dict() for e in self.events],
            "errors": list(self.errors),
        }


async def replay_events(
    db: Database, request: ReplayRequest, *, dry_run: bool = False
) -> ReplayResult:
    """Requeue what ``request`` selects (or, with ``dry_run``, say what would be requeued
    without locking or changing anything). Bad input raises before any change."""
    request.validate()
    limit = request.effective_limit
    ids = list(dict.fromkeys(request.ids))
    params: dict[str, Any] = {
        "ids": ids or None,
        "unit": request.unit,
        "statuses": list(request.statuses or REPLAYABLE),
        "since": request.since,
        "until": request.until,
        "ungated": sorted(MODULE_EVENTS),
    }
    errors: list[str] = []
    named: dict[int, tuple[str, str, str]] = {}
    async with db.connection() as conn:
        if request.unit is not None:
            _require_configured(await fetch_unit(conn, request.unit))
        if ids:
            named = await _named_events(conn, ids)
            errors += [
                f"event {i} is not replayable (status {status})"
                for i, (_unit, status, _type) in named.items()
                if status not in REPLAYABLE
            ]
        cur = await conn.execute(queries.REPLAY_UNITS, params)
        counts = {r["enterprise_number"]: (r["gated"], r["ungated"]) for r in await cur.fetchall()}
        cur = await conn.execute(queries.UNITS_BY_NUMBERS, {"numbers": list(counts)})
        units = {u.number: u for u in map(unit_from_row, await cur.fetchall())}
        await conn.rollback()  # end the read transaction: no snapshot held across the batches
    units_ok, units_configured, matched = [], [], 0
    for number, (gated, ungated) in counts.items():
        unit = units.get(number)
        why = _undeliverable(unit)
        if unit is not None and unit.retailcrm.configured:
            units_configured.append(number)
            matched += ungated
        else:
            gated += ungated  # without credentials nothing can be delivered
        if why is None:
            units_ok.append(number)
            matched += gated
        elif gated:
            errors.append(f"unit {number}: {why}; {gated} event(s) not replayed")
    params.update(units_ok=units_ok, units_configured=units_configured)

    events: list[ReplayedEvent] = []
    if matched and dry_run:
        async with db.connection() as conn:
            cur = await conn.execute(queries.REPLAY_PREVIEW, {**params, "limit": limit})
            events = [_replayed(r) for r in await cur.fetchall()]
    elif matched:
        events = await _requeue(db, params, limit)
    if named and not dry_run:
        taken = {e.id for e in events}
        errors += [
            f"event {i} was not requeued: another replay took it or its status changed"
            for i, (unit, status, event_type) in named.items()
            if i not in taken
            and status in REPLAYABLE
            and (unit in units_ok or (event_type in MODULE_EVENTS and unit in units_configured))
        ]
    return ReplayResult(dry_run, limit, matched, tuple(events), tuple(errors))


async def _requeue(db: Database, params: dict[str, Any], limit: int) -> list[ReplayedEvent]:
    """Batches of at most :data:`BATCH`, each its own transaction with one NOTIFY."""
    events: list[ReplayedEvent] = []
    after = 0
    while len(events) < limit:
        size = min(BATCH, limit - len(events))
        async with db.transaction() as conn:
            cur = await conn.execute(
                queries.EVENTS_REPLAY, {**params, "after": after, "limit": size}
            )
            batch = sorted(map(_replayed, await cur.fetchall()), key=lambda e: e.id)
            if batch:
                await conn.execute(queries.EVENTS_NOTIFY)
        events += batch
        if len(batch) < size:
            break  # the rest is locked by another run (it requeues those), or there is no more
        after = batch[-1].id
    return events


def _require_configured(unit: Unit) -> None:
    """``--unit`` naming a unit without credentials asks for the impossible: bad input. (A
    disabled unit is not: its module events can be replayed; its call events are reported.)"""
    if not unit.retailcrm.configured:
        raise InvalidInput.one("--unit", f"unit {unit.number}: {_undeliverable(unit)}")


def _undeliverable(unit: Unit | None) -> str | None:
    if unit is None:
        return "the unit does not exist"
    if not unit.retailcrm.configured:
        return "no RetailCRM config (vochi-crm config set)"
    if not unit.retailcrm.enabled:
        return f"the RetailCRM integration is disabled (vochi-crm config enable {unit.number})"
    return None


async def _named_events(conn: Conn, ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """id → (unit, status, type) of each named event; an unknown id is bad input (no change)."""
    cur = await conn.execute(queries.EVENTS_BY_IDS, {"ids": ids})
    found = {
        r["id"]: (r["enterprise_number"], r["status"], r["event_type"])
        for r in await cur.fetchall()
    }
    unknown = [i for i in ids if i not in found]
    if unknown:
        listed = ", ".join(map(str, unknown))
        raise NotFound(f"unknown event id{'s' if len(unknown) > 1 else ''} {listed}")
    return {i: found[i] for i in ids}


def _replayed(row: dict[str, Any]) -> ReplayedEvent:
    return ReplayedEvent(
        id=row["id"],
        unit=row["enterprise_number"],
        call_unique_id=row["call_unique_id"],
        event_type=row["event_type"],
        previous_status=row["previous_status"],
        previous_error=masked(row["previous_error"]),
    )
