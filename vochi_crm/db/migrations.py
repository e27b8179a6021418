"""Versioned, idempotent migrations: ``NNNN_name.sql`` files applied in order under an advisory
lock.

Each file runs in one transaction with its version recorded, so a failed migration leaves nothing
behind; every statement is also written to be safe to re-run (``IF NOT EXISTS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from psycopg import AsyncConnection

from vochi_crm.db import queries


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = files("vochi_crm.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: AsyncConnection[dict[str, Any]]) -> list[Migration]:
    """Apply what is missing; return the migrations applied now (empty when up to date)."""
    applied_now: list[Migration] = []
    async with conn.transaction():
        await conn.execute(queries.MIGRATIONS_LOCK)
        await conn.execute(queries.MIGRATIONS_TABLE)
        cur = await conn.execute(queries.MIGRATIONS_APPLIED)
        done = {row["version"] for row in await cur.fetchall()}
        for migration in available():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    queries.MIGRATION_RECORD,
                    {"version": migration.version, "name": migration.name},
                )
            applied_now.append(migration)
    return applied_now
