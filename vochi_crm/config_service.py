"""Use-cases on a unit's RetailCRM config, shared by the CLI, the daemon's API and the console.

Every write changes only ``integrations_config -> 'retailcrm'``, in one statement that succeeds only
if nobody changed our key since it was read (compare-and-swap, retried), and sends
``NOTIFY integration_config_changed`` in the same transaction, so listeners hear it after COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import Conflict, FieldError, InvalidInput, NotFound
from vochi_crm.retailcrm_config import (
    ConfigChange,
    RetailCrmConfig,
    apply_change,
    change_from_values,
    to_stored,
)
from vochi_crm.secretbox import SecretBox
from vochi_crm.units import Unit, fetch_unit, unit_from_row

EXPORT_FORMAT = "vochi-crm-config/1"
_CAS_ATTEMPTS = 8
_SECRET_KEYS = ("api_key", "client_id")


@dataclass(frozen=True)
class ImportRecord:
    number: str
    change: ConfigChange


class WriteHook(Protocol):
    """What a use-case may add to every config write (the module registration does: a
    ``clientId`` before the write, a queued ``register_module`` row in the same transaction)."""

    def prepare(self, before: RetailCrmConfig, after: RetailCrmConfig) -> RetailCrmConfig: ...

    async def written(
        self, conn: Conn, number: str, before: RetailCrmConfig, after: RetailCrmConfig | None
    ) -> None: ...


class ConfigService:
    def __init__(
        self, db: Database, write_hook: WriteHook | None = None, box: SecretBox | None = None
    ) -> None:
        self._db = db
        self._box = box if box is not None else SecretBox(None)
        """Seals the API key on every write (plaintext when no VOCHI_SECRET_KEY is set)."""
        self.write_hook = write_hook
        """Runs inside every write's transaction (``after`` is ``None`` for a delete)."""
        self.on_committed: Callable[[str], None] | None = None
        """Called with the unit number after a write commits: this process's own caches forget
        the unit at once (read-your-writes); other processes hear the NOTIFY."""

    def _committed(self, *numbers: str) -> None:
        if self.on_committed is not None:
            for number in numbers:
                self.on_committed(number)

    async def get(self, number: str) -> Unit:
        async with self._db.connection() as conn:
            return await fetch_unit(conn, number, self._box)

    async def update(self, number: str, change: ConfigChange) -> Unit:
        async with self._db.transaction() as conn:
            unit = await self._update(conn, number, change)
        self._committed(number)
        return unit

    async def delete(self, number: str) -> None:
        """Remove our key entirely (the platform's "delete integration")."""
        async with self._db.transaction() as conn:
            before = await fetch_unit(conn, number, self._box)  # NotFound for an unknown unit
            cur = await conn.execute(queries.CONFIG_DELETE, {"number": number})
            if await cur.fetchone() is not None and self.write_hook is not None:
                await self.write_hook.written(conn, number, before.retailcrm, None)
            await _notify(conn, number)
        self._committed(number)

    async def export(
        self, numbers: Sequence[str] = (), *, include_secrets: bool = False
    ) -> dict[str, Any]:
        async with self._db.connection() as conn:
            if numbers:
                units = [await fetch_unit(conn, n, self._box) for n in numbers]
            else:
                cur = await conn.execute(queries.UNITS_LIST)
                units = [unit_from_row(row, self._box) for row in await cur.fetchall()]
        records = []
        for unit in units:
            if unit.stored_retailcrm is None:
                continue
            body: dict[str, Any] = {
                "enabled": unit.retailcrm.enabled,
                "api_url": unit.retailcrm.api_url,
                "user_mappings": dict(sorted(unit.retailcrm.user_mappings.items())),
                **unit.retailcrm.pbx_settings(),
            }
            if include_secrets:
                body.update({k: getattr(unit.retailcrm, k) for k in _SECRET_KEYS})
            records.append({"enterprise_number": unit.number, "retailcrm": _drop_none(body)})
        return {"format": EXPORT_FORMAT, "units": records}

    async def import_(self, document: object) -> list[str]:
        """Validate every record, then write them all in one transaction (all or nothing)."""
        records = parse_import(document)
        async with self._db.transaction() as conn:
            missing = []
            for record in records:
                try:
                    await fetch_unit(conn, record.number)
                except NotFound:
                    missing.append(record.number)
            if missing:
                raise InvalidInput(
                    [FieldError("enterprise_number", f"unit {n!r} does not exist") for n in missing]
                )
            for record in records:
                await self._update(conn, record.number, record.change)
        self._committed(*(r.number for r in records))
        return [r.number for r in records]

    async def _update(self, conn: Conn, number: str, change: ConfigChange) -> Unit:
        for _ in range(_CAS_ATTEMPTS):
            async with conn.transaction():
                unit = await fetch_unit(conn, number, self._box)
                config = apply_change(unit.retailcrm, change)
                if self.write_hook is not None:
                    config = self.write_hook.prepare(unit.retailcrm, config)
                if config.client_id and config.client_id != unit.retailcrm.client_id:
                    await self._require_unique_client_id(conn, number, config.client_id)
                stored = self._box.seal_stored(
                    to_stored(config, unit.stored_retailcrm), unit.stored_retailcrm, number
                )
                cur = await conn.execute(
                    queries.CONFIG_WRITE,
                    {
                        "number": number,
                        "new": json.dumps(stored),
                        "old": None
                        if unit.stored_retailcrm is None
                        else json.dumps(unit.stored_retailcrm),
                    },
                )
                if await cur.fetchone() is not None:
                    await _notify(conn, number)
                    written = await fetch_unit(conn, number, self._box)
                    if self.write_hook is not None:
                        await self.write_hook.written(
                            conn, number, unit.retailcrm, written.retailcrm
                        )
                    return written
        raise Conflict(f"the config of unit {number} kept changing under us; try again")

    async def _require_unique_client_id(self, conn: Conn, number: str, client_id: str) -> None:
        """The ``clientId`` is how RetailCRM's callbacks name a unit (make-call starts calls on its
        PBX): two units must never share one. Keys may be sealed, so compare after opening."""
        cur = await conn.execute(queries.UNITS_LIST)
        for row in await cur.fetchall():
            other = unit_from_row(row, self._box)
            if other.number != number and other.retailcrm.client_id == client_id:
                raise InvalidInput.one(
                    "client_id", f"is already the clientId of unit {other.number}; use another"
                )


async def _notify(conn: Conn, number: str) -> None:
    payload = json.dumps({"enterprise_number": number, "integration_type": "retailcrm"})
    await conn.execute(
        queries.CONFIG_NOTIFY, {"channel": queries.CONFIG_CHANNEL, "payload": payload}
    )


def parse_import(document: object) -> list[ImportRecord]:
    """Validate an export document; every problem is reported with its record's position."""
    if not isinstance(document, Mapping) or not isinstance(document.get("units"), list):
        raise InvalidInput.one("units", f"expected a {EXPORT_FORMAT} document with a 'units' list")
    if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise InvalidInput.one("format", f"unsupported format {document.get('format')!r}")
    errors: list[FieldError] = []
    records: list[ImportRecord] = []
    seen: set[str] = set()
    for index, item in enumerate(document["units"]):
        where = f"units[{index}]"
        if not isinstance(item, Mapping):
            errors.append(FieldError(where, "must be an object"))
            continue
        number = item.get("enterprise_number")
        if not isinstance(number, str) or not number:
            errors.append(FieldError(f"{where}.enterprise_number", "missing"))
            continue
        if number in seen:
            errors.append(FieldError(f"{where}.enterprise_number", f"unit {number} appears twice"))
        seen.add(number)
        body = item.get("retailcrm")
        if not isinstance(body, Mapping):
            errors.append(FieldError(f"{where}.retailcrm", "must be an object"))
            continue
        try:
            change = change_from_values(_drop_none(body))
        except InvalidInput as exc:
            errors.extend(FieldError(f"{where}.retailcrm.{f.field}", f.message) for f in exc.fields)
            continue
        records.append(ImportRecord(number, change))
    if errors:
        raise InvalidInput(errors)
    return records


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def mapping_pairs(items: Iterable[str]) -> list[tuple[str, str]]:
    """``["151=16", …]`` → pairs; a malformed item is named in the error."""
    pairs, errors = [], []
    for item in items:
        ext, sep, user_id = item.partition("=")
        if not sep or not ext.strip() or not user_id.strip():
            errors.append(FieldError(item, "expected EXTENSION=USER_ID, e.g. 151=16"))
        else:
            pairs.append((ext.strip(), user_id.strip()))
    if errors:
        raise InvalidInput(errors)
    return pairs
