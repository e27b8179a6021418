"""Handling of one claimed event: map it, send its RetailCRM requests in order, decide its fate.

Everything that decides is pure and lives in :mod:`vochi_crm.pipeline` (mapping, retry policy,
breaker, token bucket); this module only sequences it around the HTTP calls. A plan's requests
already sent are remembered in ``progress``, so a retried hangup never re-sends its pop-up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from vochi_crm.delivery.accounts import Account, Accounts
from vochi_crm.delivery.metrics import DeliveryMetrics
from vochi_crm.delivery.store import ClaimedEvent, EventResult, JournalEntry
from vochi_crm.pipeline.callstate import CallState
from vochi_crm.pipeline.linking import Leg, customer_to_link, link_answer
from vochi_crm.pipeline.mapping import is_live, plan_event
from vochi_crm.pipeline.plan import CallEventRequest, PlannedRequest, UnmappableEvent
from vochi_crm.pipeline.policy import (
    DeliverNow,
    ErrorClass,
    Expire,
    Fail,
    Pause,
    RetryAt,
    RetryPolicy,
    decide_after_failure,
    decide_before_attempt,
)
from vochi_crm.registration.module import MODULE_EVENTS
from vochi_crm.retailcrm import CrmResult, RetailCrmError, RetailCrmTransient, RetailCrmUnitMustAct
from vochi_crm.settings import DeliverySettings
from vochi_crm.units import Unit

if TYPE_CHECKING:
    from vochi_crm.registration.delivery import ModuleDelivery

MAX_RATE_WAIT = 5.0
LegLookup = Callable[[str, str, str, datetime], Awaitable[list[Leg]]]
"""(unit, UniqueId, customer, until) → bridges of the unit's other calls with the customer
(DeliveryStore.linked_legs)."""


def error_class(exc: RetailCrmError) -> ErrorClass:
    if isinstance(exc, RetailCrmTransient):
        return ErrorClass.TRANSIENT
    if isinstance(exc, RetailCrmUnitMustAct):
        return ErrorClass.UNIT_MUST_ACT
    return ErrorClass.PERMANENT


class EventWorker:
    def __init__(
        self, accounts: Accounts, metrics: DeliveryMetrics, settings: DeliverySettings
    ) -> None:
        self._accounts = accounts
        self._metrics = metrics
        self._settings = settings
        self._policy = RetryPolicy(
            live_ttl=settings.ring_ttl_seconds, max_age=settings.max_age_hours * 3600
        )
        self._unit_slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.unit_concurrency)
        )
        self._next_probe: dict[str, float] = {}
        self.modules: ModuleDelivery | None = None
        """Handles register_module/delete_module events (set by the runtime)."""
        self.legs: LegLookup | None = None
        """Finds follow-me legs that answered a call (set by the dispatcher)."""

    async def handle(self, event: ClaimedEvent, unit: Unit | None) -> EventResult:
        if event.event_type in MODULE_EVENTS and self.modules is not None:
            # before the disabled check: a delete_module is delivered for a disabled unit
            return await self.modules.handle(event)
        now = datetime.now(UTC)
        if unit is None:
            return _end(event, "failed", "the unit no longer exists")
        config = unit.retailcrm
        if not (config.enabled and config.configured):
            return _end(event, "failed", "the RetailCRM integration is disabled for the unit")
        if unit.number in self._accounts.paused and not self._probe_due(unit.number):
            return self._postpone(event, self._next_probe[unit.number], "unit paused")

        state = CallState.from_dict(event.call_state)
        customer = customer_to_link(event.event_type, event.payload, state)
        if customer is not None and self.legs is not None:
            legs = await self.legs(unit.number, event.call_unique_id, customer, event.received_at)
            state = link_answer(state, customer, legs)
        try:
            plan = plan_event(
                event.event_type,
                event.payload,
                config.user_mappings,
                state,
                # the mapping wants the PBX's wall clock; the platform runs in its zone
                received_at=event.received_at.astimezone().replace(tzinfo=None),
            )
        except UnmappableEvent as exc:
            return _end(event, "failed", f"cannot be mapped: {exc}")
        saved = plan.state.to_dict()
        live = is_live(event.event_type, event.payload)
        before = decide_before_attempt(
            created_at=event.received_at, now=now, live=live, policy=self._policy
        )
        if isinstance(before, Expire):
            return _end(event, "expired", before.reason, call_state=saved)
        if not plan.requests:
            return _end(event, "skipped", plan.skip_reason, call_state=saved)

        account = self._accounts.for_config(config)
        attempts, progress = event.attempts, event.progress
        journal: list[JournalEntry] = []
        for request in plan.requests[progress:]:
            while True:
                mono = time.monotonic()
                if not account.breaker.allow(mono):
                    resume = now + timedelta(seconds=account.breaker.retry_at(mono) - mono)
                    return _end(
                        event,
                        "pending",
                        "circuit breaker open",
                        attempts=attempts,
                        progress=progress,
                        next_attempt_at=resume,
                        journal=journal,
                    )
                await self._respect_rate_limit(account, request.path)
                async with self._unit_slots[unit.number]:
                    outcome = await _send(account, request)
                journal.append(_journal_entry(unit.number, event, request, outcome))
                self._metrics.request(
                    unit.number, not isinstance(outcome, RetailCrmError), _elapsed(outcome)
                )
                if not isinstance(outcome, RetailCrmError):
                    account.breaker.record(time.monotonic(), None)
                    self._metrics.last_success[unit.number] = now.isoformat()
                    progress += 1
                    break
                attempts += 1  # failed attempts only: a sent pop-up must not eat the upload's
                cls = error_class(outcome)
                account.breaker.record(time.monotonic(), cls)
                self._metrics.last_error[unit.number] = f"{now.isoformat()} {outcome.message}"
                decision = decide_after_failure(
                    error=cls,
                    attempts=attempts,
                    created_at=event.received_at,
                    now=datetime.now(UTC),
                    live=live,
                    rand=random.random,
                    retry_after=outcome.retry_after,
                    policy=self._policy,
                )
                if isinstance(decision, DeliverNow):
                    await asyncio.sleep(decision.delay)
                    continue
                error = f"{outcome.message} ({decision.reason})"
                if isinstance(decision, RetryAt):
                    return _end(
                        event,
                        "pending",
                        error,
                        attempts=attempts,
                        progress=progress,
                        next_attempt_at=decision.when,
                        journal=journal,
                    )
                if isinstance(decision, Pause):
                    self._accounts.pause(unit.number, outcome.reason)
                    self._next_probe[unit.number] = (
                        time.monotonic() + self._settings.pause_recheck_seconds
                    )
                    return _end(
                        event,
                        "pending",
                        error,
                        attempts=attempts - 1,
                        progress=progress,
                        next_attempt_at=now
                        + timedelta(seconds=self._settings.pause_recheck_seconds),
                        journal=journal,
                    )
                assert isinstance(decision, Fail | Expire)
                status = "failed" if isinstance(decision, Fail) else "expired"
                return _end(
                    event,
                    status,
                    error,
                    attempts=attempts,
                    progress=progress,
                    call_state=saved,
                    journal=journal,
                )
        if self._accounts.resume(unit.number):
            self._next_probe.pop(unit.number, None)
        return _end(
            event,
            "delivered",
            None,
            attempts=attempts,
            progress=progress,
            call_state=saved,
            journal=journal,
        )

    def resume_unit(self, unit: str) -> None:
        self._accounts.resume(unit)
        self._next_probe.pop(unit, None)

    def _probe_due(self, unit: str) -> bool:
        """A paused unit lets one event through per recheck period, as a probe."""
        if time.monotonic() < self._next_probe.get(unit, 0.0):
            return False
        self._next_probe[unit] = time.monotonic() + self._settings.pause_recheck_seconds
        return True

    def _postpone(self, event: ClaimedEvent, at_monotonic: float, why: str) -> EventResult:
        delay = max(at_monotonic - time.monotonic(), 0.5)
        return _end(
            event,
            "pending",
            why,
            attempts=event.attempts,
            progress=event.progress,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
        )

    async def _respect_rate_limit(self, account: Account, path: str) -> None:
        while (wait := account.limiter.try_acquire(time.monotonic(), path)) > 0:
            wait = min(wait, MAX_RATE_WAIT)
            self._metrics.rate_limit_waits += 1
            self._metrics.rate_limit_wait_seconds += wait
            await asyncio.sleep(wait)


async def _send(account: Account, request: PlannedRequest) -> CrmResult | RetailCrmError:
    try:
        if isinstance(request, CallEventRequest):
            return await account.client.call_event(request.event)
        return await account.client.calls_upload(request.calls)
    except RetailCrmError as exc:
        return exc


def _elapsed(outcome: CrmResult | RetailCrmError) -> float:
    exchange = outcome.exchange
    return exchange.elapsed_ms if exchange is not None else 0.0


def _journal_entry(
    unit: str, event: ClaimedEvent, request: PlannedRequest, outcome: CrmResult | RetailCrmError
) -> JournalEntry:
    """The platform's shapes (reference B2): ``{"uniqueId", "payload"}`` for call events,
    ``{"uniqueId", "calls"}`` for uploads."""
    body: dict[str, Any]
    if isinstance(request, CallEventRequest):
        body = {"uniqueId": event.call_unique_id, "payload": request.event}
        codes = request.event.get("codes") or []
        extension = codes[0] if codes else None
        phone = request.event.get("phone")
    else:
        body = {"uniqueId": event.call_unique_id, "calls": request.calls}
        first = request.calls[0] if request.calls else {}
        extension = first.get("code")
        phone = first.get("phone")
    exchange = outcome.exchange
    response = exchange.response if exchange is not None else None
    if isinstance(outcome, RetailCrmError):
        response = {"status": outcome.status, "body": response, "reason": outcome.reason}
    return JournalEntry(
        unit=unit,
        event_type=request.log_event_type,
        request=body,
        response=response,
        ok=not isinstance(outcome, RetailCrmError),
        error=outcome.message if isinstance(outcome, RetailCrmError) else None,
        call=event.call_unique_id,
        phone=phone,
        extension=extension,
        elapsed_ms=_elapsed(outcome),
    )


def _end(
    event: ClaimedEvent,
    status: str,
    error: str | None,
    *,
    attempts: int | None = None,
    progress: int | None = None,
    next_attempt_at: datetime | None = None,
    call_state: dict[str, Any] | None = None,
    journal: list[JournalEntry] | None = None,
) -> EventResult:
    return EventResult(
        event=event,
        status=status,
        attempts=event.attempts if attempts is None else attempts,
        progress=event.progress if progress is None else progress,
        next_attempt_at=next_attempt_at,
        last_error=error,
        call_state=call_state,
        journal=tuple(journal or ()),
    )
