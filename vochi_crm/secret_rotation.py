"""``vochi-crm secrets rotate``: re-encrypt every unit's stored API key under the current key.

The procedure (docs/configuration.md, "Secrets at rest"):

1. ``vochi-crm secrets new-key`` → a new key;
2. every daemon and the CLI get ``VOCHI_SECRET_KEY=<new>`` and
   ``VOCHI_SECRET_KEY_PREVIOUS=<old>`` (they now read both and write with the new one);
3. ``vochi-crm secrets rotate`` re-encrypts what is still plaintext or under an old key;
4. once it reports nothing left (exit 0), ``VOCHI_SECRET_KEY_PREVIOUS`` can go.

The first encryption of an existing installation is the same run with no previous key: plaintext
keys are sealed. Each unit is rewritten in its own transaction with compare-and-swap on our config
key (a concurrent save wins and the unit is retried), and NOTIFY follows as for any config write.
A key no configured key opens is reported, never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vochi_crm.db import queries
from vochi_crm.db.database import Conn, Database
from vochi_crm.errors import InvalidInput
from vochi_crm.secretbox import FIELD, SecretBox, SecretUnreadable, is_sealed

_ATTEMPTS = 8


@dataclass
class RotationReport:
    current_key_id: str
    dry_run: bool
    rotated: list[str] = field(default_factory=list)
    """Units re-encrypted under the current key (in a dry run: that would be)."""
    were_plaintext: list[str] = field(default_factory=list)
    """Of those, the ones whose key was stored in plaintext."""
    already_current: list[str] = field(default_factory=list)
    without_key: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    """unit → why its key could not be decrypted (left untouched)."""
    conflicts: list[str] = field(default_factory=list)
    """Units whose config kept changing under us (run again)."""

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.conflicts

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "current_key_id": self.current_key_id,
            "rotated": len(self.rotated),
            "were_plaintext": len(self.were_plaintext),
            "already_current": len(self.already_current),
            "without_key": self.without_key,
            "unreadable": len(self.unreadable),
            "conflicts": len(self.conflicts),
            "units": {
                "rotated": self.rotated,
                "unreadable": self.unreadable,
                "conflicts": self.conflicts,
            },
        }


async def rotate_secrets(db: Database, box: SecretBox, *, dry_run: bool = False) -> RotationReport:
    """Seal every stored API key under ``box``'s current key (see the module docstring)."""
    if not box.enabled or box.current_kid is None:
        raise InvalidInput.one(
            "VOCHI_SECRET_KEY", "is not set: set it to the new key (the old one(s) go in "
            "VOCHI_SECRET_KEY_PREVIOUS) and run again"
        )
    report = RotationReport(box.current_kid, dry_run)
    async with db.connection() as conn:
        cur = await conn.execute(queries.UNITS_LIST)
        numbers = [row["number"] for row in await cur.fetchall()]
        await conn.rollback()
    for number in numbers:
        for _ in range(_ATTEMPTS):
            async with db.transaction() as conn:
                if await _rotate_one(conn, box, number, report):
                    break
        else:
            report.conflicts.append(number)
    return report


async def _rotate_one(conn: Conn, box: SecretBox, number: str, report: RotationReport) -> bool:
    """``True`` when the unit is settled (rotated, current, unreadable, keyless); ``False`` when
    a concurrent write won the compare-and-swap and the unit must be read again."""
    cur = await conn.execute(queries.UNIT_GET, {"number": number})
    row = await cur.fetchone()
    stored = row["retailcrm"] if row is not None else None
    raw = stored.get(FIELD) if isinstance(stored, Mapping) else None
    if not isinstance(stored, Mapping) or not isinstance(raw, str) or not raw:
        report.without_key += 1
        return True
    if not box.needs_rotation(raw):
        report.already_current.append(number)
        return True
    try:
        plaintext = box.open(raw, number)
    except SecretUnreadable as exc:
        report.unreadable[number] = exc.message
        return True
    if not report.dry_run:
        new = {**stored, FIELD: box.seal(plaintext, number)}
        cur = await conn.execute(
            queries.CONFIG_WRITE,
            {"number": number, "new": json.dumps(new), "old": json.dumps(stored)},
        )
        if await cur.fetchone() is None:
            return False
        payload = json.dumps({"enterprise_number": number, "integration_type": "retailcrm"})
        await conn.execute(
            queries.CONFIG_NOTIFY, {"channel": queries.CONFIG_CHANNEL, "payload": payload}
        )
    report.rotated.append(number)
    if not is_sealed(raw):
        report.were_plaintext.append(number)
    return True
