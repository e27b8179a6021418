"""Migrations on a database that already has the platform's tables: nothing of theirs changes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from vochi_crm.db.migrations import available, migrate

pytestmark = pytest.mark.anyio

PLATFORM_SCHEMA = """
CREATE TABLE enterprises (
    id SERIAL PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    name TEXT,
    bot_token TEXT,
    chat_id TEXT,
    ip TEXT,
    secret TEXT,
    host TEXT,
    created_at TIMESTAMP DEFAULT now(),
    name2 TEXT,
    active BOOLEAN DEFAULT TRUE,
    is_enabled BOOLEAN DEFAULT TRUE,
    scheme_count INTEGER,
    custom_domain TEXT
);
INSERT INTO enterprises (number, name, bot_token, ip, secret, name2, scheme_count, custom_domain)
VALUES ('0367', 'Pilot', 'bot:xyz', '10.1.1.1', 's3cr3t', '375290000000', 3, 'pilot.example'),
       ('0100', 'Other', NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE integration_logs (
    id SERIAL PRIMARY KEY,
    enterprise_number TEXT NOT NULL,
    integration_type VARCHAR(50) NOT NULL,
    event_type VARCHAR(50) NOT NULL,
    request_data JSONB,
    response_data JSONB,
    status VARCHAR(20) NOT NULL,
    error_message TEXT,
    created_at TIMESTAMPTZ DEFAULT now(),
    legacy_column TEXT
);
INSERT INTO integration_logs (enterprise_number, integration_type, event_type, request_data,
                              status, legacy_column)
VALUES ('0367', 'uon', 'call_event:dial', '{"a": 1}', 'success', 'keep me');
CREATE TABLE user_internal_phones (
    id SERIAL PRIMARY KEY, enterprise_number TEXT, phone_number TEXT
);
INSERT INTO user_internal_phones (enterprise_number, phone_number) VALUES ('0367', '151');
"""


async def _snapshot(conn: psycopg.AsyncConnection[dict[str, Any]]) -> dict[str, Any]:
    columns = await (
        await conn.execute(
            "SELECT table_name, column_name, data_type, column_default, is_nullable "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name IN ('enterprises', 'integration_logs', 'user_internal_phones') "
            "ORDER BY table_name, column_name"
        )
    ).fetchall()
    rows = {}
    for table in ("enterprises", "integration_logs", "user_internal_phones"):
        cur = await conn.execute(f"SELECT * FROM {table} ORDER BY 1")
        rows[table] = await cur.fetchall()
    return {"columns": columns, "rows": rows}


async def _connect(url: str) -> psycopg.AsyncConnection[dict[str, Any]]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


async def test_migrations_keep_the_platform_tables_intact(empty_database_url: str) -> None:
    conn = await _connect(empty_database_url)
    async with conn:
        await conn.execute(PLATFORM_SCHEMA.encode())
        before = await _snapshot(conn)

        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in available()]
        after = await _snapshot(conn)

        # every platform column is still there with the same type/default/nullability
        old = {(c["table_name"], c["column_name"]): c for c in before["columns"]}
        new = {(c["table_name"], c["column_name"]): c for c in after["columns"]}
        for key, column in old.items():
            assert new[key] == column, key
        added = sorted(set(new) - set(old))
        assert added == [
            ("enterprises", "integrations_config"),
            ("integration_logs", "call_unique_id"),
            ("integration_logs", "internal_extension"),
            ("integration_logs", "phone_number"),
            ("integration_logs", "response_time_ms"),
            ("integration_logs", "updated_at"),
        ]
        # every row unchanged in the columns it had
        for table, rows in before["rows"].items():
            for old_row, new_row in zip(rows, after["rows"][table], strict=True):
                assert {k: new_row[k] for k in old_row} == old_row

        # our own tables exist
        tables = await (
            await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).fetchall()
        assert {"retailcrm_events", "vochi_pbx", "vochi_schema_migrations"} <= {
            t["tablename"] for t in tables
        }

        # idempotent: a second run applies nothing and changes nothing
        assert await migrate(conn) == []
        assert await _snapshot(conn) == after


async def test_migrations_create_the_platform_tables_where_missing(
    empty_database_url: str,
) -> None:
    conn = await _connect(empty_database_url)
    async with conn:
        await migrate(conn)
        cols = await (
            await conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'enterprises' ORDER BY column_name"
            )
        ).fetchall()
        assert [c["column_name"] for c in cols] == [
            "active",
            "host",
            "integrations_config",
            "ip",
            "name",
            "name2",
            "number",
            "secret",
        ]


async def test_concurrent_migrations_apply_once(empty_database_url: str) -> None:
    import asyncio

    conns = [await _connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(len(r) for r in results) == [0, 0, len(available())]
