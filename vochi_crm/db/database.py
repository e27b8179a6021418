"""The PostgreSQL boundary: a connection pool whose driver errors become the core's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from vochi_crm.errors import StorageUnavailable
from vochi_crm.masking import mask_dsn

Conn = AsyncConnection[dict[str, Any]]


class Database:
    """One pool for the process; :meth:`connection` hands out connections with dict rows."""

    def __init__(
        self, conninfo: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0
    ) -> None:
        self.conninfo = conninfo
        self._timeout = timeout
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            connection_class=AsyncConnection[dict[str, Any]],
            kwargs={"row_factory": dict_row, "application_name": "vochi-crm"},
        )

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            await self._pool.close()
            raise StorageUnavailable(
                f"cannot connect to PostgreSQL at {mask_dsn(self.conninfo)}: {_reason(exc)}"
            ) from None

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; driver failures surface as :class:`StorageUnavailable`."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StorageUnavailable("no database connection available in time") from None
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"database error: {_reason(exc)}") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def direct(self, purpose: str) -> Conn:
        """A dedicated, autocommit connection outside the pool (listeners, long-lived watchers),
        named ``vochi-crm-<purpose>`` in ``pg_stat_activity``."""
        try:
            return await AsyncConnection.connect(
                self.conninfo,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self._timeout)),
                application_name=f"vochi-crm-{purpose}",
            )
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot connect to PostgreSQL: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return mask_dsn(text[0]) if text else type(exc).__name__
