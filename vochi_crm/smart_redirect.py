"""Smart redirect: "who is this caller's manager?" within a strict budget, and optionally move the
call there (DESIGN §4, reference A9/B7).

``POST /api/smart-redirect`` → :meth:`SmartRedirect.handle`: validate; the unit from the config
cache; RetailCRM's ``telephony/manager`` answer for the phone from a short-TTL per-unit cache or
from RetailCRM within the unit's deadline (default 1,500 ms); :func:`decide` turns it into an
extension of the unit's **own mapping** (never anything else), else the configured fallback. The
answer is returned at once; the ``manager_lookup`` journal row and, when a ``channel`` is given and
the unit has ``redirect_enabled``, the SSH ``channel redirect`` happen in the background.

A lookup that misses the deadline keeps running (bounded by the RetailCRM client timeout) and
fills the cache for the next call from that number; concurrent lookups of one phone share one
request (the cache's single flight). A circuit breaker per RetailCRM account answers the fallback
at once while the account is failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vochi_crm import asterisk
from vochi_crm.cache import SnapshotCache
from vochi_crm.delivery.accounts import account_key
from vochi_crm.delivery.store import JournalEntry
from vochi_crm.journal_writer import JournalWriter
from vochi_crm.pipeline.breaker import CircuitBreaker
from vochi_crm.pipeline.policy import ErrorClass
from vochi_crm.redirect_decision import (
    MAX_BODY_BYTES,
    Decision,
    LookupRefused,
    ManagerInfo,
    RedirectRequest,
    decide,
    failure_reason,
    manager_info,
    parse_request,
)
from vochi_crm.retailcrm import RetailCrmClient, RetailCrmError
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.settings import Settings
from vochi_crm.ssh.pbx import PbxRunner
from vochi_crm.units import Unit

__all__ = [
    "MAX_BODY_BYTES",
    "Decision",
    "LookupRefused",
    "ManagerInfo",
    "RedirectRequest",
    "SmartRedirect",
    "decide",
    "failure_reason",
    "manager_info",
    "parse_request",
]
log = logging.getLogger(__name__)
UnitResolver = Callable[[str | None, str | None], Awaitable[Unit]]


@dataclass(frozen=True, slots=True)
class _Failed:
    """A lookup that failed, as the cache's load returns it: a load outliving a caller whose
    deadline passed must not leave an exception nobody retrieves. Never served: whoever reads
    it drops it, so the next call asks RetailCRM again."""

    error: RetailCrmError | LookupRefused


Cached = ManagerInfo | _Failed


# -- the use-case --------------------------------------------------------------------------------


@dataclass
class _Account:
    client: RetailCrmClient
    breaker: CircuitBreaker


class SmartRedirect:
    def __init__(
        self,
        settings: Settings,
        resolve_unit: UnitResolver,
        journal: JournalWriter,
        pbx: PbxRunner | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings.smart_redirect
        self._crm_timeout = settings.delivery.retailcrm_timeout_seconds
        self._resolve = resolve_unit
        self._journal = journal
        self._pbx = pbx
        self._clock = clock
        self._caches: dict[str, SnapshotCache[str, Cached]] = {}
        self._accounts: dict[str, _Account] = {}
        self._by_config: dict[int, tuple[RetailCrmConfig, _Account]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sources: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.redirects: Counter[str] = Counter()

    async def handle(self, request: RedirectRequest) -> dict[str, Any]:
        started = time.perf_counter()
        unit = await self._resolve(request.enterprise_number, request.token)
        decision = await self._decide(unit, request.phone)
        elapsed_ms = round((time.perf_counter() - started) * 1000.0, 3)
        redirect = self._schedule_redirect(unit, request, decision)
        self.sources[decision.source] += 1
        self.reasons[decision.reason] += 1
        answer = {
            "extension": decision.extension,
            "manager_id": decision.manager_id,
            "customer_name": decision.customer_name,
            "source": decision.source,
            "reason": decision.reason,
            "elapsed_ms": elapsed_ms,
            "crm_ms": None if decision.crm_ms is None else round(decision.crm_ms, 3),
            "redirect": redirect,
        }
        failed = decision.reason.startswith("crm_")  # RetailCRM did not answer usefully
        self._journal.write(
            JournalEntry(
                unit=unit.number,
                event_type="manager_lookup",
                request={
                    "phone": request.phone,
                    "uniqueId": request.unique_id,
                    "channel": request.channel,
                    "trunk": request.trunk,
                },
                response=answer,
                ok=not failed,
                error=decision.reason if failed else None,
                call=request.unique_id,
                phone=request.phone,
                extension=decision.extension,
                elapsed_ms=elapsed_ms,
            )
        )
        return answer

    def forget(self, number: str | None) -> None:
        """A unit's config changed (``None``: maybe every unit's): drop its cached answers."""
        if number is None:
            caches, self._caches = list(self._caches.values()), {}
        else:
            cache = self._caches.pop(number, None)
            caches = [cache] if cache is not None else []
        for cache in caches:
            cache.invalidate_all()

    async def run_sweeper(self) -> None:
        """Bound the caches' memory: every 10 TTLs, forget every unit's answers."""
        while True:
            await asyncio.sleep(max(10 * self._settings.cache_ttl_seconds, 60.0))
            self.forget(None)

    def stats(self) -> dict[str, Any]:
        hits = sum(c.metrics.hits for c in self._caches.values())
        misses = sum(c.metrics.misses for c in self._caches.values())
        return {
            "sources": dict(self.sources),
            "reasons": dict(self.reasons),
            "redirects": dict(self.redirects),
            "cache": {"units": len(self._caches), "hits": hits, "misses": misses},
            "breakers": {
                key.split("#")[0]: account.breaker.snapshot(self._clock())
                for key, account in self._accounts.items()
            },
        }

    async def aclose(self, grace: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for account in self._accounts.values():
            await account.client.aclose()
        self._accounts.clear()

    async def wait_background(self, within: float = 10.0) -> None:
        """Wait for scheduled redirects to finish (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    # -- internals --------------------------------------------------------------------------------

    async def _decide(self, unit: Unit, phone: str) -> Decision:
        config = unit.retailcrm
        mapping, fallback = config.user_mappings, config.fallback_extension
        if not unit.active:
            return decide(None, mapping, fallback, failure="unit_inactive")
        if not (config.enabled and config.configured):
            return decide(None, mapping, fallback, failure="integration_disabled")
        key = phone.lstrip("+")  # one entry per number however written: RetailCRM matches digits
        cache = self._cache(unit)
        if cache is not None:
            hit = cache.peek(key)
            if isinstance(hit, ManagerInfo):
                cache.metrics.hits += 1  # the hot path: no timer, no task
                return decide(hit, mapping, fallback, cached=True)
            if hit is not None:
                cache.invalidate(key)  # a failure that arrived after its caller gave up
        deadline = (config.lookup_deadline_ms or self._settings.deadline_ms) / 1000.0
        try:
            async with asyncio.timeout(deadline):
                info = await self._lookup(cache, config, key)
        except (TimeoutError, LookupRefused, RetailCrmError) as exc:
            return decide(None, mapping, fallback, failure=failure_reason(exc))
        return decide(info, mapping, fallback)

    def _cache(self, unit: Unit) -> SnapshotCache[str, Cached] | None:
        """The unit's phone → answer cache (``None`` when caching is off)."""
        ttl = self._settings.cache_ttl_seconds
        if ttl <= 0:
            return None
        cache = self._caches.get(unit.number)
        if cache is None:
            config = unit.retailcrm

            async def load_one(key: str) -> Cached:
                try:
                    return await self._fetch(config, key)
                except (RetailCrmError, LookupRefused) as exc:
                    return _Failed(exc)

            async def load_all() -> dict[str, Cached]:
                return {}

            cache = SnapshotCache(load_one, load_all, ttl=ttl, refresh_every=ttl, clock=self._clock)
            self._caches[unit.number] = cache
        return cache

    async def _lookup(
        self, cache: SnapshotCache[str, Cached] | None, config: RetailCrmConfig, key: str
    ) -> ManagerInfo:
        if cache is None:
            return await self._fetch(config, key)
        # single flight; the load goes on when our deadline passes (the cache shields it) and
        # fills the cache for the next call from this number
        value = await cache.get(key)
        if isinstance(value, _Failed):
            cache.invalidate(key)
            raise value.error
        return value

    async def _fetch(self, config: RetailCrmConfig, phone: str) -> ManagerInfo:
        account = self._account(config)
        if not account.breaker.allow(self._clock()):
            raise LookupRefused
        try:
            result = await account.client.manager(
                phone, details=True, ignore_status=self._settings.ignore_status
            )
        except RetailCrmError as exc:
            account.breaker.record(self._clock(), ErrorClass(exc.kind))
            raise
        except BaseException:  # cancelled (shutdown): no verdict, but free a half-open probe
            account.breaker.record(self._clock(), ErrorClass.UNIT_MUST_ACT)
            raise
        account.breaker.record_success(self._clock())
        return manager_info(result.data, crm_ms=result.elapsed_ms)

    def _account(self, config: RetailCrmConfig) -> _Account:
        known = self._by_config.get(id(config))
        if known is not None and known[0] is config:
            return known[1]  # the common case: a unit config seen before (no key digest)
        key = account_key(config)
        account = self._accounts.get(key)
        if account is None:
            assert config.api_url is not None
            assert config.api_key is not None
            client = RetailCrmClient(config.api_url, config.api_key, timeout=self._crm_timeout)
            account = self._accounts[key] = _Account(client, CircuitBreaker())
        if len(self._by_config) >= 4096:
            self._by_config.clear()  # bounded; configs replaced by changes fall out here
        self._by_config[id(config)] = (config, account)
        return account

    def _schedule_redirect(self, unit: Unit, request: RedirectRequest, decision: Decision) -> str:
        if request.channel is None:
            return "not_requested"
        if not unit.retailcrm.redirect_enabled:
            return "disabled"
        if decision.extension is None:
            return "no_extension"
        if self._pbx is None:
            return "no_ssh"
        context = unit.retailcrm.redirect_context or asterisk.DEFAULT_REDIRECT_CONTEXT
        command = asterisk.redirect(request.channel, context, decision.extension)
        task = asyncio.create_task(
            self._redirect(self._pbx, unit, request, command, decision.extension),
            name=f"redirect-{unit.number}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return "scheduled"

    async def _redirect(
        self,
        pbx: PbxRunner,
        unit: Unit,
        request: RedirectRequest,
        command: asterisk.CliCommand,
        extension: str,
    ) -> None:
        outcome = await pbx.run(unit, command)
        self.redirects["ok" if outcome.ok else outcome.reason] += 1
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "channel redirect on unit %s: %s (%s)",
            unit.number,
            outcome.reason,
            outcome.message,
            extra={"action": "channel_redirect", "unit": unit.number, "reason": outcome.reason},
        )
        self._journal.write(
            JournalEntry(
                unit=unit.number,
                event_type="channel_redirect",
                request={
                    "channel": request.channel,
                    "command": command.cli,
                    "phone": request.phone,
                },
                response=outcome.as_dict(),
                ok=outcome.ok,
                error=None if outcome.ok else f"{outcome.reason}: {outcome.message}",
                call=request.unique_id,
                phone=request.phone,
                extension=extension,
                elapsed_ms=outcome.elapsed_ms,
            )
        )
