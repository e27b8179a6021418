"""The queue's side of delivery: claim due events, write outcomes, journal RetailCRM calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.pipeline.linking import MAX_LEGS, Leg


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    unit: str
    call_unique_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    progress: int
    received_at: datetime
    call_state: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the shared ``integration_logs`` (reference B2 shapes, secrets masked)."""

    unit: str
    event_type: str
    request: dict[str, Any]
    response: Any
    ok: bool
    error: str | None
    call: str | None
    phone: str | None
    extension: str | None
    elapsed_ms: float


def journal_params(entry: JournalEntry) -> dict[str, Any]:
    """The ``queries.JOURNAL_INSERT`` parameters of one row."""
    return {
        "unit": entry.unit,
        "event_type": entry.event_type,
        "request": Jsonb(entry.request),
        "response": Jsonb(entry.response),
        "status": "success" if entry.ok else "error",
        "error": entry.error,
        "call": entry.call,
        "phone": entry.phone,
        "extension": entry.extension,
        "elapsed_ms": round(entry.elapsed_ms),
    }


@dataclass(frozen=True, slots=True)
class EventResult:
    event: ClaimedEvent
    status: str  # pending | delivered | failed | expired | skipped
    attempts: int
    progress: int
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    call_state: dict[str, Any] | None = None
    journal: tuple[JournalEntry, ...] = ()


class DeliveryStore:
    def __init__(self, db: Database, worker_id: str) -> None:
        self._db = db
        self.worker_id = worker_id

    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedEvent]:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                queries.EVENTS_CLAIM,
                {"limit": limit, "lease": lease_seconds, "worker": self.worker_id},
            )
            rows = await cur.fetchall()
        events = [
            ClaimedEvent(
                id=r["id"],
                unit=r["enterprise_number"],
                call_unique_id=r["call_unique_id"],
                event_type=r["event_type"],
                payload=r["payload"],
                attempts=r["attempts"],
                progress=r["progress"],
                received_at=r["received_at"],
                call_state=r["call_state"],
            )
            for r in rows
        ]
        events.sort(key=lambda e: e.id)
        return events

    async def finish(self, results: Sequence[EventResult]) -> None:
        """Write outcomes, call states and journal rows in one transaction. Worker status writes
        may use ``synchronous_commit = off`` (DESIGN §8): a crash re-delivers, never loses."""
        if not results:
            return
        async with self._db.transaction() as conn:
            await conn.execute("SET LOCAL synchronous_commit = off")
            async with conn.cursor() as cur:
                await cur.executemany(
                    queries.EVENT_FINISH,
                    [
                        {
                            "id": r.event.id,
                            "worker": self.worker_id,
                            "status": r.status,
                            "attempts": r.attempts,
                            "progress": r.progress,
                            "next_attempt_at": r.next_attempt_at,
                            "last_error": r.last_error,
                        }
                        for r in results
                    ],
                )
                states = [r for r in results if r.call_state is not None]
                if states:
                    await cur.executemany(
                        queries.CALL_STATE_SAVE,
                        [
                            {
                                "unit": r.event.unit,
                                "call": r.event.call_unique_id,
                                "state": Jsonb(r.call_state),
                            }
                            for r in states
                        ],
                    )
                journal = [entry for r in results for entry in r.journal]
                if journal:
                    await cur.executemany(
                        queries.JOURNAL_INSERT,
                        [journal_params(j) for j in journal],
                    )
                # once per batch (never per row): wakes `vochi-crm tail-logs --follow`
                await cur.execute(queries.JOURNAL_NOTIFY)

    async def extend_leases(self, ids: Sequence[int], lease_seconds: float) -> None:
        if not ids:
            return
        async with self._db.transaction() as conn:
            await conn.execute(
                queries.EVENTS_EXTEND_LEASES,
                {"ids": list(ids), "lease": lease_seconds, "worker": self.worker_id},
            )

    async def reclaim_expired_leases(self) -> int:
        async with self._db.transaction() as conn:
            cur = await conn.execute(queries.EVENTS_RECLAIM)
            return cur.rowcount

    async def linked_legs(
        self, unit: str, call: str, customer: str, until: datetime
    ) -> list[Leg]:
        """Bridges of the unit's other calls with ``customer`` (digits) on one side, between
        ``call``'s first event and ``until``."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                queries.LINKED_LEGS,
                {"unit": unit, "call": call, "customer": customer, "until": until,
                 "limit": MAX_LEGS},
            )
            rows = await cur.fetchall()
        # the mapping works on the PBX's wall clock (see EventWorker.handle)
        return [Leg(r["payload"], r["received_at"].astimezone().replace(tzinfo=None)) for r in rows]

    async def wake_unit(self, unit: str) -> None:
        """Make a unit's postponed events due now (its config changed: it may work again)."""
        async with self._db.transaction() as conn:
            await conn.execute(queries.EVENTS_WAKE_UNIT, {"unit": unit})

    async def queue_depth(self) -> list[dict[str, Any]]:
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.QUEUE_DEPTH)
            return [
                {
                    "unit": r["enterprise_number"],
                    "pending": r["pending"],
                    "oldest_pending_seconds": round(float(r["oldest_pending_seconds"]), 3),
                }
                for r in await cur.fetchall()
            ]
