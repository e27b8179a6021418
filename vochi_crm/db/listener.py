"""LISTEN on PostgreSQL channels over a dedicated connection, and come back after losing it.

After a reconnect ``on_reconnect`` runs: notifications sent while we were away are lost, so the
owner (the config cache) must assume everything changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from vochi_crm.aio import cancelling
from vochi_crm.db.database import Database
from vochi_crm.errors import StorageUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


@dataclass
class ListenerStatus:
    connected: bool = False
    reconnects: int = 0
    notifications: int = 0
    last_error: str | None = None


class NotificationListener:
    def __init__(
        self,
        db: Database,
        channels: Sequence[str],
        handler: Handler,
        *,
        on_reconnect: Callable[[], Awaitable[None] | None] | None = None,
        purpose: str = "listener",
        retry_delay: float = 0.5,
        max_retry_delay: float = 5.0,
    ) -> None:
        self._db = db
        self._channels = tuple(channels)
        self._purpose = purpose
        self._handler = handler
        self._on_reconnect = on_reconnect
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self.status = ListenerStatus()
        self._ready = asyncio.Event()

    async def wait_ready(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff."""
        delay = self._retry_delay
        first = True
        while True:
            try:
                conn = await self._db.direct(self._purpose)
            except StorageUnavailable as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc
                self._lost(str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
                continue
            try:
                for channel in self._channels:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self.status.connected = True
                self.status.last_error = None
                delay = self._retry_delay
                if not first:
                    self.status.reconnects += 1
                    log.info("listener reconnected", extra={"action": "listener_reconnected"})
                    if self._on_reconnect is not None:
                        await _call(self._on_reconnect())
                first = False
                self._ready.set()
                async for note in conn.notifies():
                    self.status.notifications += 1
                    await self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                if cancelling():
                    raise asyncio.CancelledError from exc
                self._lost(str(exc).strip() or type(exc).__name__)
                await asyncio.sleep(delay)
            finally:
                await conn.close()

    async def _dispatch(self, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {"raw": payload}
        if not isinstance(data, dict):
            data = {"raw": data}
        try:
            await _call(self._handler(channel, data))
        except Exception:  # a bad handler must not kill the listener
            log.exception("notification handler failed", extra={"action": "listener_handler_error"})

    def _lost(self, reason: str) -> None:
        if self.status.connected:
            log.warning("listener connection lost: %s", reason, extra={"action": "listener_lost"})
        self.status.connected = False
        self.status.last_error = reason


async def _call(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result
