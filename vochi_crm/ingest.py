"""Durable, idempotent ingest of call events with group commit.

Callers await :meth:`Ingest.submit`; one writer task takes every event queued while the previous
COMMIT was in flight and inserts them in one statement and one transaction (no linger timer), then
sends one ``NOTIFY`` for the whole batch. A caller is answered only after its row is committed, so
an acknowledged event is never lost (``synchronous_commit`` stays on).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Literal

import psycopg

from vochi_crm.aio import cancel_and_wait, cancelling
from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import NotFound, StorageUnavailable
from vochi_crm.events import IncomingEvent
from vochi_crm.units import Unit

log = logging.getLogger(__name__)
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: Literal["accepted", "duplicate", "skipped"]
    enterprise_number: str
    id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "enterprise_number": self.enterprise_number,
        }
        if self.id is not None:
            body["id"] = self.id
        if self.status == "duplicate":
            body["duplicate"] = True
        if self.reason is not None:
            body["skipped"] = self.reason
        return body


@dataclass(slots=True)
class _Pending:
    unit: str
    event: IncomingEvent
    future: asyncio.Future[IngestResult]


class Ingest:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._conn: Conn | None = None
        self.batches = 0
        self.accepted = 0
        self.duplicates = 0

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="ingest-writer")

    async def stop(self) -> None:
        if self._writer is not None:
            await cancel_and_wait([self._writer])
        if self._conn is not None:
            await self._conn.close()
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        _fail(left, StorageUnavailable("the daemon is shutting down"))

    async def submit(self, unit: Unit, event: IncomingEvent) -> IngestResult:
        """Store ``event`` for ``unit`` (already resolved), or say why it is not stored."""
        if not unit.active:
            return IngestResult("skipped", unit.number, reason="unit is not active")
        if not (unit.retailcrm.enabled and unit.retailcrm.configured):
            return IngestResult(
                "skipped", unit.number, reason="RetailCRM integration not enabled for this unit"
            )
        if not event.queued:
            return IngestResult(
                "skipped",
                unit.number,
                reason=f"{event.event_type} events are not sent to RetailCRM",
            )
        if self._writer is None:
            raise StorageUnavailable("ingest is not running")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(unit.number, event, future))
        return await future

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                _fail(batch, StorageUnavailable("the daemon is shutting down"))
                raise
            except Exception as exc:  # answer every waiter; the callers retry
                if cancelling():  # a stop request the driver turned into an error
                    _fail(batch, StorageUnavailable("the daemon is shutting down"))
                    raise asyncio.CancelledError from exc
                error = (
                    exc
                    if isinstance(exc, StorageUnavailable)
                    else StorageUnavailable(f"could not store events: {type(exc).__name__}")
                )
                log.error("event batch not stored: %s", error, extra={"action": "ingest_error"})
                _fail(batch, error)

    async def _connection(self) -> Conn:
        """The writer's own autocommit connection: each batch is one statement, one round trip."""
        if self._conn is None or self._conn.closed:
            self._conn = await self._db.direct("ingest")
        return self._conn

    async def _write(self, batch: list[_Pending]) -> None:
        params = {
            "units": [p.unit for p in batch],
            "calls": [p.event.unique_id for p in batch],
            "types": [p.event.event_type for p in batch],
            "keys": [p.event.dedup_key for p in batch],
            "payloads": [json.dumps(p.event.payload) for p in batch],
        }
        conn = await self._connection()
        try:
            cur = await conn.execute(queries.EVENTS_INSERT, params)
            rows = await cur.fetchall()
        except psycopg.Error as exc:
            await conn.close()  # the next batch reconnects
            raise StorageUnavailable(f"could not store events: {type(exc).__name__}") from None
        inserted = {
            (r["enterprise_number"], r["call_unique_id"], r["event_type"], r["dedup_key"]): r["id"]
            for r in rows
        }
        self.batches += 1
        for item in batch:
            key = (item.unit, item.event.unique_id, item.event.event_type, item.event.dedup_key)
            row_id = inserted.pop(key, None)
            if row_id is not None:
                self.accepted += 1
                result = IngestResult("accepted", item.unit, id=row_id)
            else:
                self.duplicates += 1
                result = IngestResult("duplicate", item.unit)
            if not item.future.done():
                item.future.set_result(result)


def _fail(batch: list[_Pending], error: StorageUnavailable) -> None:
    """Answer every waiter of a batch that was not stored: the callers retry (nothing was
    acknowledged, so nothing is lost)."""
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def unknown_unit(event: IncomingEvent) -> NotFound:
    if event.enterprise_number is not None:
        return NotFound(f"unit {event.enterprise_number!r} does not exist")
    return NotFound(f"no unit has the token {event.token!r}")
