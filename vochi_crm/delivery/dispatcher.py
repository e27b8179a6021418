"""The delivery loop. One daemon instance at a time delivers: the holder of a PostgreSQL advisory
lock (DESIGN §8: per-account rate limits and breakers must hold across instances, so they live in
one process). The others wait to take over; a dead leader's session ends, its lock is freed, and its
claimed events come back when their lease expires.

The leader claims due events (``FOR UPDATE SKIP LOCKED``, at most one per call: per-call order),
runs each in its own task up to ``in_flight`` at once, and a writer commits finished events in
batches. It wakes on ``NOTIFY retailcrm_events_ready`` (one per ingest batch), after each commit
(the next event of those calls may now be due) and at least every ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from vochi_crm.aio import cancel_and_wait, cancelling
from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.db.listener import NotificationListener
from vochi_crm.delivery.accounts import Accounts
from vochi_crm.delivery.metrics import DeliveryMetrics
from vochi_crm.delivery.store import ClaimedEvent, DeliveryStore, EventResult
from vochi_crm.delivery.worker import EventWorker
from vochi_crm.errors import StorageUnavailable
from vochi_crm.settings import DeliverySettings
from vochi_crm.units import Unit

log = logging.getLogger(__name__)
UnitLookup = Callable[[str], Awaitable[Unit | None]]
_LOCK_RETRY = 2.0
_FLUSH_MAX = 500
_DRAIN_SECONDS = 5.0


class Dispatcher:
    def __init__(self, db: Database, settings: DeliverySettings, lookup: UnitLookup) -> None:
        self._db = db
        self._settings = settings
        self._lookup = lookup
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.store = DeliveryStore(db, self.worker_id)
        self.metrics = DeliveryMetrics()
        self.accounts = Accounts(settings)
        self.worker = EventWorker(self.accounts, self.metrics, settings)
        self.worker.legs = self.store.linked_legs
        self.leader = False
        self._wake = asyncio.Event()
        self._results: asyncio.Queue[EventResult] = asyncio.Queue()
        self._running: dict[asyncio.Task[None], int] = {}
        """In-flight deliveries → their event ids (leases are renewed for these)."""

    # -- public -----------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def unit_changed(self, unit: str) -> None:
        """A unit's config changed: it may work again; its postponed events become due."""
        self.worker.resume_unit(unit)
        if self.leader:
            with contextlib.suppress(StorageUnavailable):
                await self.store.wake_unit(unit)
            self.wake()

    async def run(self) -> None:
        """Compete for leadership and deliver while leader, until cancelled."""
        try:
            while True:
                if cancelling():  # a stop request the driver turned into an error
                    raise asyncio.CancelledError
                lock = await self._acquire_leadership()
                if lock is None:
                    await asyncio.sleep(_LOCK_RETRY)
                    continue
                try:
                    self.leader = True
                    log.info("delivery leader", extra={"action": "dispatcher_leader"})
                    await self._lead(lock)
                except (psycopg.Error, StorageUnavailable) as exc:
                    if cancelling():
                        raise asyncio.CancelledError from exc
                    log.warning("delivery stopped: %s", exc, extra={"action": "dispatcher_lost"})
                finally:
                    self.leader = False
                    await self._stop_running()
                    with contextlib.suppress(psycopg.Error):
                        await lock.close()
                await asyncio.sleep(_LOCK_RETRY)
        finally:
            await self.accounts.aclose()

    async def stats(self) -> dict[str, Any]:
        depth: list[dict[str, Any]] = []
        with contextlib.suppress(StorageUnavailable):
            depth = await self.store.queue_depth()
        return {
            "leader": self.leader,
            "worker_id": self.worker_id,
            "in_flight": len(self._running),
            "queue": depth,
            **self.metrics.as_dict(),
            "accounts": self.accounts.snapshot(time.monotonic()),
            "alerts": [alert.as_dict() for alert in self.accounts.paused.values()],
        }

    # -- leadership -------------------------------------------------------------------------------

    async def _acquire_leadership(self) -> psycopg.AsyncConnection[Any] | None:
        try:
            conn = await self._db.direct("dispatcher")
        except StorageUnavailable:
            return None
        try:
            row = await (await conn.execute(queries.DISPATCHER_LOCK)).fetchone()
        except psycopg.Error:
            await conn.close()
            return None
        if row is None or not row["held"]:
            await conn.close()
            return None
        return conn

    async def _lead(self, lock: psycopg.AsyncConnection[Any]) -> None:
        wakeups = NotificationListener(
            self._db,
            [queries.EVENTS_CHANNEL],
            lambda _channel, _payload: self.wake(),
            purpose="wakeups",
        )
        helpers = [
            asyncio.create_task(wakeups.run(), name="delivery-wakeups"),
            asyncio.create_task(self._flush_forever(), name="delivery-writer"),
            asyncio.create_task(self._reclaim_forever(), name="delivery-reclaimer"),
        ]
        try:
            await self.store.reclaim_expired_leases()
            keepalive = time.monotonic()
            self.wake()
            while True:
                for task in helpers:
                    if task.done():
                        task.result()  # a helper died: surface its error, lose leadership
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # races with the wake-up, and the dispatcher would then never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
                if time.monotonic() - keepalive > _LOCK_RETRY:
                    await lock.execute(queries.PING)  # raises when the lock's session is gone
                    keepalive = time.monotonic()
                free = self._settings.in_flight - len(self._running)
                if free <= 0:
                    continue
                claimed = await self.store.claim(free, self._settings.lease_seconds)
                for event in claimed:
                    self._start(event)
                if len(claimed) == free:
                    self.wake()
        finally:
            await cancel_and_wait(helpers)

    # -- work -------------------------------------------------------------------------------------

    def _start(self, event: ClaimedEvent) -> None:
        task = asyncio.create_task(self._handle(event), name=f"deliver-{event.id}")
        self._running[task] = event.id
        task.add_done_callback(lambda done: self._running.pop(done, None))

    async def _handle(self, event: ClaimedEvent) -> None:
        try:
            unit = await self._lookup(event.unit)
            result = await self.worker.handle(event, unit)
        except StorageUnavailable as exc:
            # nothing was sent or nothing can be recorded: the lease brings the event back
            log.warning(
                "delivery of event %s postponed: %s", event.id, exc,
                extra={"action": "delivery_postponed"},
            )
            return
        except Exception as exc:  # a bug must not kill the dispatcher; the event stays visible
            log.exception(
                "delivery of event %s crashed", event.id, extra={"action": "delivery_crash"}
            )
            result = EventResult(
                event,
                "failed",
                event.attempts,
                event.progress,
                last_error=f"internal error: {type(exc).__name__}",
            )
        self.metrics.outcome(event.unit, result.status if result.status != "pending" else "retried")
        self._results.put_nowait(result)

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._results.get()]
            while len(batch) < _FLUSH_MAX and not self._results.empty():
                batch.append(self._results.get_nowait())
            await self.store.finish(batch)
            self.wake()

    async def _reclaim_forever(self) -> None:
        """Renew our leases, and take back events whose owner died (its lease ran out)."""
        while True:
            await asyncio.sleep(max(self._settings.lease_seconds / 4, 1.0))
            await self.store.extend_leases(
                list(self._running.values()), self._settings.lease_seconds
            )
            reclaimed = await self.store.reclaim_expired_leases()
            if reclaimed:
                log.warning(
                    "%d expired leases reclaimed", reclaimed, extra={"action": "lease_reclaimed"}
                )
                self.wake()

    async def _stop_running(self) -> None:
        """Let running deliveries finish (briefly), then commit what finished: an event whose
        request RetailCRM already has should not be sent again after the lease expires."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=_DRAIN_SECONDS)
        await cancel_and_wait(list(self._running))
        self._running.clear()
        done = []
        while not self._results.empty():
            done.append(self._results.get_nowait())
        with contextlib.suppress(StorageUnavailable, psycopg.Error):
            await self.store.finish(done)  # what is not written comes back with its lease
