"""Journal rows written in the background: the request that produced one never waits for it.

Smart redirect, click-to-call and the status callback answer in milliseconds; their
``integration_logs`` rows (``manager_lookup``, ``channel_redirect``, ``make_call``,
``user_status``) go through one :class:`JournalWriter`: :meth:`~JournalWriter.write` only queues,
one task inserts what has queued in one transaction and sends ``NOTIFY retailcrm_journal`` once per
batch. Unlike the ingest writer nobody waits for these rows, so the writer lingers a little
(``linger`` seconds, 0.2 by default) to gather a bigger batch: at a few hundred requests per second
that is one commit where there would be dozens, CPU the answers' event loop keeps. The queue is
bounded: while the database is down, rows beyond it are dropped and counted rather than growing
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from vochi_crm.aio import cancel_and_wait, cancelling
from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.delivery.store import JournalEntry, journal_params

log = logging.getLogger(__name__)
MAX_QUEUE = 10_000
MAX_BATCH = 500


async def write_journal(db: Database, entries: Sequence[JournalEntry]) -> None:
    """Insert ``entries`` in one transaction and wake journal followers once."""
    if not entries:
        return
    async with db.transaction() as conn, conn.cursor() as cur:
        await cur.executemany(queries.JOURNAL_INSERT, [journal_params(e) for e in entries])
        await cur.execute(queries.JOURNAL_NOTIFY)


class JournalWriter:
    def __init__(self, db: Database, *, max_queue: int = MAX_QUEUE, linger: float = 0.2) -> None:
        self._db = db
        self._linger = linger
        self._queue: asyncio.Queue[JournalEntry] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="journal-writer")

    def write(self, entry: JournalEntry) -> None:
        """Queue one row; never blocks, never raises."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self._idle.clear()

    async def drain(self, within: float = 5.0) -> None:
        """Wait until everything queued so far is written (or given up on)."""
        async with asyncio.timeout(within):
            await self._idle.wait()

    async def stop(self, grace: float = 2.0) -> None:
        """Write what is queued (bounded by ``grace`` seconds), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.drain(grace)
        await cancel_and_wait([self._task])
        self._task = None

    def stats(self) -> dict[str, int]:
        return {
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "queued": self._queue.qsize(),
        }

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger > 0 and self._queue.qsize() < MAX_BATCH:
                await asyncio.sleep(self._linger)
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await write_journal(self._db, batch)
                self.written += len(batch)
            except Exception as exc:  # the journal is best effort; the calls themselves went on
                if cancelling():  # a stop request the driver turned into an error
                    raise asyncio.CancelledError from exc
                self.failed += len(batch)
                log.error(
                    "%d journal rows not written: %s",
                    len(batch),
                    exc,
                    extra={"action": "journal_write_error"},
                )
            if self._queue.empty():
                self._idle.set()
