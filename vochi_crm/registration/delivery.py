"""Sending the module to RetailCRM: one attempt (shared with ``vochi-crm register``) and the
dispatcher's handling of a queued ``register_module``/``delete_module`` event.

A queued module event carries no module. :meth:`ModuleDelivery.handle` reads the unit's config
*from the database* (not the daemon's cache, which may not have heard the NOTIFY yet) when it is
delivered and derives both the action and the body from it: enabled → register, configured but
disabled → deactivate. So events may be retried, coalesced or delivered late and RetailCRM still
ends with the current mapping. Failures follow the call events' policy
(:mod:`vochi_crm.pipeline.policy`) with the same account client, token bucket and breaker;
a registration is history-like: it never expires, it is retried until ``max_age``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vochi_crm.config_service import ConfigService
from vochi_crm.delivery.accounts import Account, Accounts
from vochi_crm.delivery.metrics import DeliveryMetrics
from vochi_crm.delivery.store import ClaimedEvent, EventResult, JournalEntry
from vochi_crm.delivery.worker import error_class
from vochi_crm.errors import NotFound
from vochi_crm.pipeline.policy import DeliverNow, Pause, RetryAt, RetryPolicy, decide_after_failure
from vochi_crm.registration.module import (
    DELETE,
    MODULE_CALL_ID,
    REGISTER,
    Kind,
    ModuleSite,
    action_for,
    build_module,
    journal_request,
)
from vochi_crm.retailcrm import CrmResult, RetailCrmClient, RetailCrmError
from vochi_crm.retailcrm_config import ConfigChange, RetailCrmConfig
from vochi_crm.settings import DeliverySettings
from vochi_crm.units import Unit, UnitService

log = logging.getLogger(__name__)
MAX_RATE_WAIT = 5.0


@dataclass(frozen=True)
class ModuleAttempt:
    """One ``integration-modules/{code}/edit`` call and its journal row."""

    action: Kind
    module: dict[str, Any]
    result: CrmResult | None
    error: RetailCrmError | None
    journal: JournalEntry

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def info(self) -> dict[str, Any]:
        """RetailCRM's ``info`` (e.g. ``notExistUsersIds``: mapped users it does not know)."""
        info = self.result.data.get("info") if self.result is not None else None
        return info if isinstance(info, dict) else {}


async def send_module(
    client: RetailCrmClient, unit: str, config: RetailCrmConfig, site: ModuleSite, action: Kind
) -> ModuleAttempt:
    """Post the whole module for ``config`` (``active`` per ``action``); never raises a
    RetailCRM error — it is returned, journaled like a success."""
    module = build_module(unit, config, site, active=action == REGISTER)
    result: CrmResult | None = None
    error: RetailCrmError | None = None
    try:
        result = await client.integration_module_edit(site.code, module)
    except RetailCrmError as exc:
        error = exc
    exchange = result.exchange if result is not None else error.exchange if error else None
    response: Any = exchange.response if exchange is not None else None
    if error is not None:
        response = {"status": error.status, "body": response, "reason": error.reason}
    entry = JournalEntry(
        unit=unit,
        event_type=action,
        request=journal_request(config.api_url, module),
        response=response,
        ok=error is None,
        error=error.message if error is not None else None,
        call=MODULE_CALL_ID,
        phone=None,
        extension=None,
        elapsed_ms=exchange.elapsed_ms if exchange is not None else 0.0,
    )
    log.info(  # failures are warned about by whoever gives up on them (the worker, the CLI)
        "%s for unit %s: %s",
        action,
        unit,
        "ok" if error is None else error.message,
        extra={"action": action, "unit": unit, "outcome": "ok" if error is None else error.kind},
    )
    return ModuleAttempt(action, module, result, error, entry)


def not_sendable(
    unit: str,
    config: RetailCrmConfig,
    site: ModuleSite,
    why: str = "the unit's RetailCRM address and key were deleted",
) -> JournalEntry:
    """The journal row for a deactivation that cannot be sent to the account in ``config``:
    we no longer hold its address and key (the config was deleted, or moved to another account)."""
    return JournalEntry(
        unit=unit,
        event_type=DELETE,
        request={"domain": config.api_url, "module": {"code": site.code, "active": False}},
        response=None,
        ok=False,
        error=(
            f"cannot deactivate the RetailCRM module: {why}; deactivate '{site.code}' in "
            f"RetailCRM at {config.api_url} (Settings → Integration) by hand"
        ),
        call=MODULE_CALL_ID,
        phone=None,
        extension=None,
        elapsed_ms=0.0,
    )


async def ensure_client_id(configs: ConfigService, unit: Unit) -> Unit:
    """An enabled config without a ``clientId`` (one written by the original platform) gets one
    now, through the compare-and-swap write — which does not queue another registration."""
    if unit.retailcrm.client_id or not unit.retailcrm.enabled:
        return unit
    return await configs.update(unit.number, ConfigChange())


class ModuleDelivery:
    """The dispatcher's handler of module events (``EventWorker`` delegates them here)."""

    def __init__(
        self,
        units: UnitService,
        configs: ConfigService,
        accounts: Accounts,
        metrics: DeliveryMetrics,
        settings: DeliverySettings,
        site: ModuleSite,
    ) -> None:
        self._units = units
        self._configs = configs
        self._accounts = accounts
        self._metrics = metrics
        self._settings = settings
        self._site = site
        self._policy = RetryPolicy(
            live_ttl=settings.ring_ttl_seconds, max_age=settings.max_age_hours * 3600
        )

    async def handle(self, event: ClaimedEvent) -> EventResult:
        try:
            unit = await self._units.get(event.unit)
        except NotFound:  # no journal row: the shared journal refers to existing units
            return _result(event, "failed", "the unit no longer exists")
        if action_for(unit.retailcrm) is None:
            entry = not_sendable(unit.number, unit.retailcrm, self._site)
            return _result(event, "failed", entry.error, journal=[entry])
        unit = await ensure_client_id(self._configs, unit)
        config = unit.retailcrm
        action = action_for(config)
        assert action is not None
        account = self._accounts.for_config(config)
        attempts, journal = event.attempts, list[JournalEntry]()
        while True:
            mono = time.monotonic()
            if not account.breaker.allow(mono):
                resume = datetime.now(UTC) + timedelta(
                    seconds=account.breaker.retry_at(mono) - mono
                )
                return _result(event, "pending", "circuit breaker open", attempts, resume, journal)
            await self._respect_rate_limit(account)
            attempt = await send_module(account.client, unit.number, config, self._site, action)
            attempts += 1
            journal.append(attempt.journal)
            self._metrics.request(unit.number, attempt.ok, attempt.journal.elapsed_ms)
            now = datetime.now(UTC)
            if attempt.error is None:
                account.breaker.record(time.monotonic(), None)
                self._metrics.last_success[unit.number] = now.isoformat()
                return _result(event, "delivered", None, attempts, None, journal)
            cls = error_class(attempt.error)
            account.breaker.record(time.monotonic(), cls)
            self._metrics.last_error[unit.number] = f"{now.isoformat()} {attempt.error.message}"
            decision = decide_after_failure(
                error=cls,
                attempts=attempts,
                created_at=event.received_at,
                now=now,
                live=False,
                rand=random.random,
                retry_after=attempt.error.retry_after,
                policy=self._policy,
            )
            if isinstance(decision, DeliverNow):
                await asyncio.sleep(decision.delay)
                continue
            error = f"{attempt.error.message} ({decision.reason})"
            log.warning(
                "%s for unit %s failed: %s",
                action,
                unit.number,
                error,
                extra={"action": f"{action}_failed", "unit": unit.number},
            )
            if isinstance(decision, RetryAt):
                return _result(event, "pending", error, attempts, decision.when, journal)
            if isinstance(decision, Pause):  # wait for a fix; the attempt does not count
                later = now + timedelta(seconds=self._settings.pause_recheck_seconds)
                return _result(event, "pending", error, attempts - 1, later, journal)
            return _result(event, "failed", error, attempts, None, journal)

    async def _respect_rate_limit(self, account: Account) -> None:
        path = f"/api/v5/integration-modules/{self._site.code}/edit"
        while (wait := account.limiter.try_acquire(time.monotonic(), path)) > 0:
            wait = min(wait, MAX_RATE_WAIT)
            self._metrics.rate_limit_waits += 1
            self._metrics.rate_limit_wait_seconds += wait
            await asyncio.sleep(wait)


def _result(
    event: ClaimedEvent,
    status: str,
    error: str | None,
    attempts: int | None = None,
    next_attempt_at: datetime | None = None,
    journal: Sequence[JournalEntry] = (),
) -> EventResult:
    return EventResult(
        event=event,
        status=status,
        attempts=event.attempts if attempts is None else attempts,
        progress=event.progress,
        next_attempt_at=next_attempt_at,
        last_error=error,
        journal=tuple(journal),
    )
