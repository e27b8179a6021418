"""Units (the platform's ``enterprises``): the read model every use-case shares; standalone add."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import FieldError, InvalidInput, NotFound
from vochi_crm.retailcrm_config import RetailCrmConfig, read_stored
from vochi_crm.secretbox import SecretBox, SecretUnreadable, is_sealed

log = logging.getLogger(__name__)
_warned_unreadable: set[str] = set()

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
    api_key_unreadable: bool = False
    """The stored API key is encrypted with a key this process does not have (``retailcrm.api_key``
    is then ``None``; see :mod:`vochi_crm.secretbox`)."""

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


def unit_from_row(row: Mapping[str, Any], box: SecretBox | None = None) -> Unit:
    """A unit from a row. With ``box`` an encrypted API key is decrypted (a plaintext one from
    older rows reads as is) and a key that cannot be decrypted reads as ``None``, flagged. Without
    ``box`` nothing is decrypted: enough for existence and "is it configured" checks; everything
    that talks to RetailCRM reads units through :class:`UnitService` (built with the box)."""
    stored = row["retailcrm"] if isinstance(row["retailcrm"], Mapping) else None
    config = read_stored(stored)
    unreadable = False
    if box is not None and config.api_key is not None and is_sealed(config.api_key):
        try:
            config = replace(config, api_key=box.open(config.api_key, row["number"]))
        except SecretUnreadable as exc:
            config, unreadable = replace(config, api_key=None), True
            if row["number"] not in _warned_unreadable:
                _warned_unreadable.add(row["number"])
                log.warning("%s", exc.message, extra={"action": "secret_unreadable"})
    return Unit(
        number=row["number"],
        name=row["name"] or "",
        token=row["name2"],
        host=row["ip"] or row["host"],
        ssh_port=row["ssh_port"],
        ssh_user=row["ssh_user"],
        active=bool(row["active"]),
        retailcrm=config,
        stored_retailcrm=stored,
        api_key_unreadable=unreadable,
    )


async def fetch_unit(conn: Conn, number: str, box: SecretBox | None = None) -> Unit:
    cur = await conn.execute(queries.UNIT_GET, {"number": number})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"unit {number!r} does not exist")
    return unit_from_row(row, box)


class UnitService:
    def __init__(self, db: Database, box: SecretBox | None = None) -> None:
        self._db = db
        self._box = box

    async def list(self) -> list[Unit]:
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.UNITS_LIST)
            return [unit_from_row(row, self._box) for row in await cur.fetchall()]

    async def get(self, number: str) -> Unit:
        async with self._db.connection() as conn:
            return await fetch_unit(conn, number, self._box)

    async def by_token(self, token: str) -> Unit | None:
        """The unit whose Asterisk ``Token`` (``enterprises.name2``) this is."""
        async with self._db.connection() as conn:
            cur = await conn.execute(queries.UNIT_BY_TOKEN, {"token": token})
            row = await cur.fetchone()
            return None if row is None else unit_from_row(row, self._box)

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
            return await fetch_unit(conn, number, self._box)
