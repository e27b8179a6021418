"""``vochi-crm register UNIT``: (de)register the unit's module now, synchronously.

The same builder and the same single attempt as the queued path
(:func:`~vochi_crm.registration.delivery.send_module`), journaled the same way; only the retry
policy differs — a person is waiting, so one attempt within the client's timeout and a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vochi_crm.config_service import ConfigService
from vochi_crm.db.database import Database
from vochi_crm.delivery.store import JournalEntry
from vochi_crm.journal_writer import write_journal
from vochi_crm.registration.delivery import ensure_client_id, send_module
from vochi_crm.registration.module import REGISTER, Kind, ModuleSite, action_for, masked_module
from vochi_crm.registration.problems import NotConfigured, hint_for
from vochi_crm.retailcrm import RetailCrmClient
from vochi_crm.units import UnitService


@dataclass(frozen=True)
class RegistrationOutcome:
    unit: str
    action: Kind
    ok: bool
    module: dict[str, Any]
    """As sent, secrets masked."""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None
    hint: str | None = None
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "enterprise_number": self.unit,
            "action": self.action,
            "ok": self.ok,
            "active": self.action == REGISTER,
            "module": self.module,
            "warnings": self.warnings,
            "error": self.error,
            "reason": self.reason,
            "hint": self.hint,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


class RegistrationService:
    def __init__(
        self,
        db: Database,
        units: UnitService,
        configs: ConfigService,
        site: ModuleSite,
        *,
        timeout: float,
    ) -> None:
        self._db = db
        self._units = units
        self._configs = configs
        self._site = site
        self._timeout = timeout

    async def register_now(self, number: str) -> RegistrationOutcome:
        """Register (enabled) or deactivate (disabled) the unit's module from its current config.

        Raises ``NotFound`` for an unknown unit and :class:`NotConfigured` for a unit without a
        RetailCRM address and key; RetailCRM's refusal is an outcome, not an exception.
        """
        unit = await self._units.get(number)
        if action_for(unit.retailcrm) is None:
            raise NotConfigured.for_unit(number)
        unit = await ensure_client_id(self._configs, unit)
        config = unit.retailcrm
        action = action_for(config)
        assert action is not None
        assert config.api_url is not None
        assert config.api_key is not None
        async with RetailCrmClient(config.api_url, config.api_key, timeout=self._timeout) as crm:
            attempt = await send_module(crm, unit.number, config, self._site, action)
        await self._journal(attempt.journal)
        warnings = []
        unknown = attempt.info.get("notExistUsersIds")
        if unknown:
            warnings.append(
                f"RetailCRM has no users {unknown}: fix the mapping (vochi-crm config map/unmap "
                f"{number})"
            )
        if not config.user_mappings and action == REGISTER:
            warnings.append(f"no extension is mapped yet: vochi-crm config map {number} 151=16")
        error = attempt.error
        return RegistrationOutcome(
            unit=number,
            action=action,
            ok=error is None,
            module=masked_module(attempt.module),
            warnings=warnings,
            error=error.message if error is not None else None,
            reason=error.reason if error is not None else None,
            hint=hint_for(error, number, method=f"/api/integration-modules/{self._site.code}/edit")
            if error is not None
            else None,
            elapsed_ms=attempt.journal.elapsed_ms,
        )

    async def _journal(self, entry: JournalEntry) -> None:
        await write_journal(self._db, [entry])
