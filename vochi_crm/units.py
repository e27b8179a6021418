"""Units (the platform's ``enterprises``): the read model every use-case shares; standalone add."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import FieldError, InvalidInput, NotFound
from vochi_crm.retailcrm_config import RetailCrmConfig, read_stored

UNIT_NUMBER = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
HOSTNAME = re.compile(r"^[0-9A-Za-z.:-]{1,253}$")


@dataclass(frozen=True)
class Unit:
    number: str
    name: str
    token: str | None
    host: str | None
    ssh_port: int
    ssh_user: str
    active: bool
    retailcrm: RetailCrmConfig
    stored_retailcrm: Mapping[str, Any] | None = field(repr=False)
    """The raw stored object, as read: the write path compares against it (compare-and-swap)."""

    def public(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "token": self.token,
            "host": self.host,
            "ssh_port": self.ssh_port,
            "active": self.active,
            "retailcrm": self.retailcrm.public(),
        }


def unit_from_row(row: Mapping[str, Any]) -> Unit:
    stored = row["retailcrm"] if isinstance(row["retailcrm"], Mapping) else None
    return Unit(
        number=row["number"],
        name=row["name"] or "",
        token=row["name2"],
        host=row["ip"] or row["host"],
        ssh_port=row["ssh_port"],
        ssh_user=row["ssh_user"],
        active=bool(row["active"]),
        retailcrm=read_stored(stored),
        stored_retailcrm=stored,
    )


async def fetch_unit(conn: Conn, number: str) -> Unit:
    cur = await conn.execute(queries.UNIT_GET, {"number": number})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"unit {number!r} does not exist")
    return unit_from_row(row)


class UnitService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self) -> list[Unit]:
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.UNITS_LIST)
            return [unit_from_row(row) for row in await cur.fetchall()]

    async def get(self, number: str) -> Unit:
        async with self._db.connection() as conn:
            return await fetch_unit(conn, number)

    async def by_token(self, token: str) -> Unit | None:
        """The unit whose Asterisk ``Token`` (``enterprises.name2``) this is."""
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.UNIT_BY_TOKEN, {"token": token})
            row = await cur.fetchone()
            return None if row is None else unit_from_row(row)

    async def add(
        self,
        number: str,
        name: str,
        *,
        token: str | None = None,
        host: str | None = None,
        ssh_port: int = 5059,
    ) -> Unit:
        errors: list[FieldError] = []
        if not UNIT_NUMBER.match(number):
            errors.append(FieldError("number", f"{number!r} is not a unit number (e.g. 0367)"))
        if not name.strip():
            errors.append(FieldError("name", "must not be empty"))
        if token is not None and not UNIT_NUMBER.match(token):
            errors.append(
                FieldError("token", f"{token!r} is not a token (letters, digits, - and _)")
            )
        if host is not None and not HOSTNAME.match(host):
            errors.append(FieldError("host", f"{host!r} is not a host name or address"))
        if not 1 <= ssh_port <= 65535:
            errors.append(FieldError("ssh_port", f"{ssh_port} is not a TCP port"))
        if errors:
            raise InvalidInput(errors)
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                queries.UNIT_INSERT,
                {"number": number, "name": name.strip(), "name2": token, "ip": host},
            )
            if await cur.fetchone() is None:
                raise InvalidInput.one("number", f"unit {number} already exists")
            await conn.execute(queries.UNIT_PBX_UPSERT, {"number": number, "ssh_port": ssh_port})
            return await fetch_unit(conn, number)
