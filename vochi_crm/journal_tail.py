"""Following the journal live: ``vochi-crm tail-logs`` (``--follow``) and the console.

LISTEN on the journal and event channels (one NOTIFY per written batch) wakes the tail; a re-check
every ``recheck`` seconds is insurance only. Cursors re-read a short overlap and skip what was
already shown, because rows become visible at COMMIT, after their id or time was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vochi_crm.aio import cancel_and_wait
from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.db.listener import NotificationListener
from vochi_crm.errors import InvalidInput, StorageUnavailable
from vochi_crm.journal import (
    EVENT_STATUSES,
    OVERLAP,
    PAGE,
    TAIL_STATUSES,
    EventRecord,
    JournalRecord,
    TailItem,
    check_statuses,
    item_time,
)
from vochi_crm.units import fetch_unit


@dataclass(frozen=True, slots=True)
class TailFilter:
    """``status``: ``error`` / ``success`` select journal rows with that status and the event
    outcomes that match (failed+expired / delivered); an event status selects events only."""

    unit: str | None = None
    status: str | None = None
    call: str | None = None
    since: datetime | None = None

    def validate(self) -> None:
        if self.status is not None:
            check_statuses((self.status,), TAIL_STATUSES, "--status")

    def scope(self) -> tuple[bool, str | None, list[str]]:
        """(include journal rows, their status or None for all, event statuses to include)."""
        if self.status is None:
            return True, None, [s for s in EVENT_STATUSES if s != "processing"]
        if self.status == "error":
            return True, "error", ["failed", "expired"]
        if self.status == "success":
            return True, "success", ["delivered"]
        return False, None, [self.status]


class JournalTail:
    """Latest rows first, then (``follow``) every row written afterwards, oldest first.

    Cursors: journal rows by id, event changes by ``updated_at``. Both re-read the last
    ``OVERLAP`` seconds and skip what was already shown, since a row becomes visible at commit
    while its id / ``now()`` were taken earlier. The journal's id floor is the highest id that
    was *committed in the whole table* then (``max(id)``), not the highest matching one, so a
    filtered tail never rescans a quiet unit's history.
    """

    def __init__(self, db: Database, flt: TailFilter) -> None:
        flt.validate()
        self._db = db
        self._flt = flt
        self._journal, self._journal_status, self._event_statuses = flt.scope()
        self._marks: list[tuple[float, int]] = [(0.0, 0)]  # (monotonic, max journal id then)
        self._seen_journal: set[int] = set()
        self._changed_after = datetime.fromtimestamp(0, UTC)
        self._seen_events: dict[tuple[int, str, datetime], datetime] = {}

    async def latest(self, lines: int | None) -> list[TailItem]:
        """The newest ``lines`` items (all since ``since`` when ``lines`` is None, up to 1000),
        oldest first; also sets the cursors :meth:`poll` continues from."""
        if lines is not None and not 0 <= lines <= PAGE:
            raise InvalidInput.one("--lines", f"must be between 0 and {PAGE}")
        limit = PAGE if lines is None else lines
        items: list[TailItem] = []
        async with self._db.connection() as conn:
            if self._flt.unit is not None:
                await fetch_unit(conn, self._flt.unit)
            now, top = await _clock(conn)
            if self._journal and limit:
                cur = await conn.execute(queries.JOURNAL_LATEST, self._params(limit))
                items += [JournalRecord.from_row(r) for r in await cur.fetchall()]
            if self._event_statuses and limit:
                cur = await conn.execute(queries.EVENTS_CHANGED_LATEST, self._params(limit))
                items += [EventRecord.from_row(r) for r in await cur.fetchall()]
        items = _ordered(items)[-limit:] if limit else []
        self._marks = [(time.monotonic(), top)]
        self._advance(items, now)
        return items

    async def poll(self) -> list[TailItem]:
        """Items written since the last call (or since :meth:`latest`), oldest first."""
        items: list[TailItem] = []
        async with self._db.connection() as conn:
            now, top = await _clock(conn)
            if self._journal:
                low = self._journal_floor()
                while True:
                    params = {**self._params(PAGE), "after": low}
                    rows = await (await conn.execute(queries.JOURNAL_AFTER, params)).fetchall()
                    items += [
                        JournalRecord.from_row(r) for r in rows if r["id"] not in self._seen_journal
                    ]
                    if len(rows) < PAGE:
                        break
                    low = rows[-1]["id"]
            if self._event_statuses:
                after, after_id = self._changed_after, 0
                while True:  # keyset pages on (updated_at, id): ties cannot stall it
                    params = {**self._params(PAGE), "after": after, "after_id": after_id}
                    rows = await (
                        await conn.execute(queries.EVENTS_CHANGED_AFTER, params)
                    ).fetchall()
                    items += [
                        e
                        for e in map(EventRecord.from_row, rows)
                        if (e.id, e.status, e.updated_at) not in self._seen_events
                    ]
                    if len(rows) < PAGE:
                        break
                    after, after_id = rows[-1]["updated_at"], rows[-1]["id"]
        items = _ordered(items)
        self._marks.append((time.monotonic(), top))
        self._advance(items, now)
        return items

    async def follow(
        self, lines: int | None, *, recheck: float = 30.0, min_interval: float = 0.25
    ) -> AsyncGenerator[list[TailItem], None]:
        """Yield the latest items once LISTEN is up (possibly an empty list: the caller may now
        say it is following), then each batch of new items as notifications arrive."""
        wake = asyncio.Event()
        listener = NotificationListener(
            self._db,
            [queries.JOURNAL_CHANNEL, queries.EVENTS_CHANNEL],
            lambda _channel, _payload: wake.set(),
            on_reconnect=wake.set,  # notifications were lost while away: look now
        )
        task = asyncio.create_task(listener.run(), name="tail-listener")
        try:
            if not await listener.wait_ready(within=10.0):
                raise StorageUnavailable(
                    f"cannot LISTEN for journal rows: {listener.status.last_error or 'timeout'}"
                )
            yield await self.latest(lines)
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(recheck):
                        await wake.wait()
                wake.clear()
                try:
                    batch = await self.poll()
                except StorageUnavailable:  # a blip: the listener reconnects and wakes us,
                    batch = []  # and the cursors lose nothing meanwhile
                if batch:
                    yield batch
                await asyncio.sleep(min_interval)  # coalesce bursts of notifications
        finally:
            await cancel_and_wait([task])

    # -- cursors --------------------------------------------------------------------------------

    def _params(self, limit: int) -> dict[str, Any]:
        return {
            "unit": self._flt.unit,
            "call": self._flt.call,
            "since": self._flt.since,
            "status": self._journal_status,
            "statuses": self._event_statuses,
            "limit": limit,
        }

    def _journal_floor(self) -> int:
        """The table's max id as of the newest mark at least ``OVERLAP`` seconds old."""
        cutoff = time.monotonic() - OVERLAP
        while len(self._marks) > 1 and self._marks[1][0] <= cutoff:
            self._marks.pop(0)
        return self._marks[0][1]

    def _advance(self, items: Sequence[TailItem], now: datetime) -> None:
        for item in items:
            if isinstance(item, JournalRecord):
                self._seen_journal.add(item.id)
            else:
                self._seen_events[(item.id, item.status, item.updated_at)] = item.updated_at
        self._changed_after = now - timedelta(seconds=OVERLAP)
        floor = self._marks[0][1]
        self._seen_journal = {i for i in self._seen_journal if i > floor}
        self._seen_events = {k: v for k, v in self._seen_events.items() if v >= self._changed_after}


async def _clock(conn: Conn) -> tuple[datetime, int]:
    """The database's now() and the journal's highest committed id, read *before* the rows."""
    row = await (await conn.execute(queries.JOURNAL_CLOCK)).fetchone()
    assert row is not None
    return row["now"], row["max_id"] or 0


def _ordered(items: list[TailItem]) -> list[TailItem]:
    return sorted(items, key=lambda i: (item_time(i), isinstance(i, EventRecord), i.id))
