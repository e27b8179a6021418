"""RetailCRM's callbacks: click-to-call (``makeCallUrl``) and user status (``changeUserStatusUrl``),
reference A13/B6.

RetailCRM is the caller, so the only credential is ``clientId``: the unguessable per-unit secret our
registration generated (never the unit number, the original's pitfall B9.2). It is compared in
constant time against every unit that has one (from a cached index, refreshed on config changes),
and a unit whose integration is not enabled does not authenticate.

make-call: the extension is ``code`` when our mapping has it, else the mapping of ``userId``
(none → 400, nothing executed); the phone is validated; then ``channel originate
Local/<ext>@<originate_context> application Dial Local/<phone>@<outbound_context>`` runs on the
unit's PBX over SSH. The answer waits for the PBX at most
``smart_redirect.click_to_call_wait_seconds`` (2 s): a refusal reaches RetailCRM as a 502 the user
sees; a slower PBX gets a 202 and the originate finishes in the background. Either way it is
journaled as ``make_call``. Status changes are validated and journaled as ``user_status``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vochi_crm import asterisk
from vochi_crm.cache import SnapshotCache
from vochi_crm.delivery.store import JournalEntry
from vochi_crm.errors import FieldError, InvalidInput, NotFound, VochiError
from vochi_crm.journal_writer import JournalWriter
from vochi_crm.retailcrm.client import USER_STATUSES
from vochi_crm.retailcrm_config import EXTENSION, validate_user_id
from vochi_crm.settings import Settings
from vochi_crm.ssh.pbx import PbxOutcome, PbxRunner
from vochi_crm.units import Unit

log = logging.getLogger(__name__)
_INDEX_KEY = "client-ids"
ClientIndex = tuple[tuple[bytes, str], ...]


class CallbackRefused(VochiError):
    """Missing or unknown ``clientId`` (or the unit's integration is off)."""

    http_status = 403
    exit_code = 1
    title = "Forbidden"


class NoExtension(VochiError):
    """Neither ``code`` nor ``userId`` gives an extension of the unit's mapping."""

    http_status = 400
    exit_code = 2
    title = "No extension"


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    status: int
    body: dict[str, Any]


def resolve_extension(mapping: Mapping[str, int], code: str, user_id: str) -> str:
    """The manager's extension: ``code`` if our mapping has it, else ``userId``'s mapping."""
    code, user_id = code.strip(), user_id.strip()
    if code and EXTENSION.fullmatch(code) and code in mapping:
        return code
    if user_id:
        uid = validate_user_id(user_id, "userId")
        own = sorted((e for e, u in mapping.items() if u == uid), key=lambda e: (len(e), e))
        if own:
            return own[0]
        raise NoExtension(f"No extension configured for user {uid}")
    if code:
        raise NoExtension(f"extension {code[:20]!r} is not mapped for this unit")
    raise NoExtension("neither code nor userId names a mapped extension")


class Callbacks:
    def __init__(
        self,
        settings: Settings,
        list_units: Callable[[], Awaitable[list[Unit]]],
        unit_by_number: Callable[[str], Awaitable[Unit]],
        journal: JournalWriter,
        pbx: PbxRunner | None,
    ) -> None:
        self._wait = settings.smart_redirect.click_to_call_wait_seconds
        self._list_units = list_units
        self._unit = unit_by_number
        self._journal = journal
        self._pbx = pbx
        self._index: SnapshotCache[str, ClientIndex] = SnapshotCache(
            self._load_index,
            self._load_all,
            ttl=settings.cache.ttl_seconds,
            refresh_every=settings.cache.refresh_seconds,
            jitter=settings.cache.jitter,
        )
        self._tasks: set[asyncio.Task[PbxOutcome]] = set()

    # -- authentication -----------------------------------------------------------------------

    async def authenticate(self, client_id: str | None) -> Unit:
        if not client_id:
            raise CallbackRefused("clientId is missing")
        given = client_id.encode()
        matches: list[str] = []
        for secret, number in await self._index.get(_INDEX_KEY):
            # every entry is compared, whatever matched before: the time does not depend on it
            if hmac.compare_digest(secret, given):
                matches.append(number)
        if not matches:
            raise CallbackRefused("unknown clientId")
        if len(matches) > 1:  # config writes refuse this; rows written around them may not
            log.error(
                "one clientId is set on units %s: make-call refused until it is made unique",
                ", ".join(matches),
                extra={"action": "make_call"},
            )
            raise CallbackRefused("the clientId is not unique")
        match = matches[0]
        try:
            unit = await self._unit(match)
        except NotFound:
            raise CallbackRefused("unknown clientId") from None
        config = unit.retailcrm
        if not hmac.compare_digest((config.client_id or "").encode(), given):
            raise CallbackRefused("unknown clientId")  # the index was older than the unit
        if not (unit.active and config.enabled):
            raise CallbackRefused("the RetailCRM integration is not enabled for this unit")
        return unit

    def forget(self, number: str | None) -> None:
        """A unit's config changed: its clientId may have appeared, changed or gone."""
        self._index.invalidate(_INDEX_KEY)

    async def _load_index(self, key: str) -> ClientIndex:
        return tuple(
            (u.retailcrm.client_id.encode(), u.number)
            for u in await self._list_units()
            if u.retailcrm.client_id
        )

    async def _load_all(self) -> dict[str, ClientIndex]:
        return {_INDEX_KEY: await self._load_index(_INDEX_KEY)}

    # -- make-call ------------------------------------------------------------------------------

    async def make_call(self, params: Mapping[str, str]) -> CallbackAnswer:
        unit = await self.authenticate(params.get("clientId"))
        code, user_id = params.get("code", ""), params.get("userId", "")
        request = {
            "code": code[:20],
            "userId": user_id[:20],
            "phone": params.get("phone", "")[:40],
            "externalPhone": params.get("externalPhone", "")[:40] or None,
        }
        try:
            phone = asterisk.normalise_phone(params.get("phone"))
            extension = resolve_extension(unit.retailcrm.user_mappings, code, user_id)
        except (InvalidInput, NoExtension) as exc:
            self._journal_call(unit, request, None, None, error=exc.message)
            raise
        config = unit.retailcrm
        command = asterisk.originate(
            extension,
            phone,
            originate_context=config.originate_context or asterisk.DEFAULT_ORIGINATE_CONTEXT,
            outbound_context=config.outbound_context or asterisk.DEFAULT_OUTBOUND_CONTEXT,
        )
        if self._pbx is None:
            raise VochiError("SSH to the PBXes is not running in this process")
        task = asyncio.create_task(
            self._originate(self._pbx, unit, command, request, phone, extension),
            name=f"originate-{unit.number}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout(self._wait):
                outcome = await asyncio.shield(task)
        except TimeoutError:
            return CallbackAnswer(
                202, {"success": True, "status": "in_progress", "extension": extension}
            )
        if outcome.ok:
            return CallbackAnswer(
                200, {"success": True, "status": "originated", "extension": extension}
            )
        return CallbackAnswer(
            502,
            {
                "success": False,
                "error": "The PBX did not start the call",
                "reason": outcome.reason,
                "detail": outcome.message,
            },
        )

    async def _originate(
        self,
        pbx: PbxRunner,
        unit: Unit,
        command: asterisk.CliCommand,
        request: dict[str, Any],
        phone: str,
        extension: str,
    ) -> PbxOutcome:
        outcome = await pbx.run(unit, command)
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "make-call on unit %s: %s (%s)",
            unit.number,
            outcome.reason,
            outcome.message,
            extra={"action": "make_call", "unit": unit.number, "reason": outcome.reason},
        )
        self._journal_call(
            unit,
            {**request, "command": command.cli},
            outcome,
            extension,
            phone=phone,
            error=None if outcome.ok else f"{outcome.reason}: {outcome.message}",
        )
        return outcome

    def _journal_call(
        self,
        unit: Unit,
        request: dict[str, Any],
        outcome: PbxOutcome | None,
        extension: str | None,
        *,
        phone: str | None = None,
        error: str | None,
    ) -> None:
        self._journal.write(
            JournalEntry(
                unit=unit.number,
                event_type="make_call",
                request=request,
                response=outcome.as_dict() if outcome is not None else {"refused": error},
                ok=error is None,
                error=error,
                call=None,
                phone=phone or request.get("phone") or None,
                extension=extension,
                elapsed_ms=outcome.elapsed_ms if outcome is not None else 0.0,
            )
        )

    # -- status ---------------------------------------------------------------------------------

    async def user_status(self, params: Mapping[str, str]) -> CallbackAnswer:
        started = time.perf_counter()
        unit = await self.authenticate(params.get("clientId"))
        errors: list[FieldError] = []
        user_id: int | None = None
        try:
            user_id = validate_user_id(params.get("userId", ""), "userId")
        except InvalidInput as exc:
            errors.extend(exc.fields)
        status = params.get("status", "")
        if status not in USER_STATUSES:
            errors.extend(
                InvalidInput.one("status", f"must be one of {', '.join(USER_STATUSES)}").fields
            )
        code = params.get("code", "").strip()
        if code and not EXTENSION.fullmatch(code):
            errors.extend(InvalidInput.one("code", "is not an extension (2 to 5 digits)").fields)
        if errors:
            raise InvalidInput(errors)
        mapped = sorted(e for e, u in unit.retailcrm.user_mappings.items() if u == user_id)
        self._journal.write(
            JournalEntry(
                unit=unit.number,
                event_type="user_status",
                request={"userId": user_id, "code": code or None, "status": status},
                response={"mapped_extensions": mapped},
                ok=True,
                error=None,
                call=None,
                phone=None,
                extension=code or (mapped[0] if mapped else None),
                elapsed_ms=(time.perf_counter() - started) * 1000.0,
            )
        )
        return CallbackAnswer(200, {"success": True})

    async def aclose(self, grace: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
