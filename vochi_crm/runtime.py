"""The composition root: one :class:`Runtime` per process, built from one :class:`Settings`.

It resolves the database (the given URL, or the embedded cluster), opens the pool, optionally
migrates, and hands the use-cases to whichever front-end opened it. In daemon mode it also runs the
config cache with its LISTEN/NOTIFY invalidation and periodic refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from vochi_crm.aio import cancel_and_wait
from vochi_crm.cache import SnapshotCache
from vochi_crm.click_to_call import Callbacks
from vochi_crm.config_service import ConfigService
from vochi_crm.connection_check import ConnectionCheck, ConnectionReport
from vochi_crm.db import queries
from vochi_crm.db.database import Database
from vochi_crm.db.embedded import EmbeddedPostgres, default_data_dir
from vochi_crm.db.listener import NotificationListener
from vochi_crm.db.migrations import Migration, migrate
from vochi_crm.delivery.dispatcher import Dispatcher
from vochi_crm.errors import NotFound, StorageUnavailable
from vochi_crm.events import IncomingEvent
from vochi_crm.ingest import Ingest, unknown_unit
from vochi_crm.journal_writer import JournalWriter
from vochi_crm.registration.delivery import ModuleDelivery
from vochi_crm.registration.hook import ModuleRegistrar
from vochi_crm.registration.module import ModuleSite
from vochi_crm.registration.service import RegistrationOutcome, RegistrationService
from vochi_crm.secretbox import SecretBox
from vochi_crm.settings import Settings
from vochi_crm.smart_redirect import SmartRedirect
from vochi_crm.ssh import PbxRunner, SshPool
from vochi_crm.units import Unit, UnitService

log = logging.getLogger(__name__)
Notice = Callable[[str], None]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    units: UnitService
    configs: ConfigService
    embedded: EmbeddedPostgres | None = None
    config_cache: SnapshotCache[str, Unit | None] | None = None
    token_cache: SnapshotCache[str, Unit | None] | None = None
    listener: NotificationListener | None = None
    ingest: Ingest | None = None
    dispatcher: Dispatcher | None = None
    ssh: SshPool | None = None
    journal_writer: JournalWriter | None = None
    smart_redirect: SmartRedirect | None = None
    callbacks: Callbacks | None = None
    started_at: float = field(default_factory=time.time)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def migrate(self) -> list[Migration]:
        async with self.db.connection() as conn:
            await conn.set_autocommit(True)
            try:
                return await migrate(conn)
            finally:
                await conn.set_autocommit(False)

    async def ping(self) -> bool:
        try:
            async with self.db.connection() as conn:
                await conn.execute(queries.PING)
            return True
        except StorageUnavailable:
            return False

    async def register_module(self, number: str) -> RegistrationOutcome:
        """Register (or deactivate) the unit's RetailCRM module now (``vochi-crm register``)."""
        service = RegistrationService(
            self.db,
            self.units,
            self.configs,
            ModuleSite.from_settings(self.settings),
            timeout=self.settings.delivery.retailcrm_timeout_seconds,
        )
        return await service.register_now(number)

    async def test_connection(self, number: str) -> ConnectionReport:
        """Check the unit's RetailCRM address, key, permissions, users and module (bounded)."""
        check = ConnectionCheck(
            self.units,
            ModuleSite.from_settings(self.settings),
            timeout=self.settings.delivery.retailcrm_timeout_seconds,
            deadline=self.settings.retailcrm.check_deadline_seconds,
        )
        return await check.run(number)

    async def stats(self) -> dict[str, Any]:
        """Everything ``/stats`` shows; secrets never appear in it."""
        ingest = self.ingest
        return {
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "config_cache": self.config_cache.stats() if self.config_cache else None,
            "listener": self.listener.status.__dict__ if self.listener else None,
            "ingest": {
                "accepted": ingest.accepted,
                "duplicates": ingest.duplicates,
                "batches": ingest.batches,
            }
            if ingest
            else None,
            "delivery": await self.dispatcher.stats() if self.dispatcher else None,
            "smart_redirect": self.smart_redirect.stats() if self.smart_redirect else None,
            "ssh": self.ssh.stats() if self.ssh else None,
            "journal_writer": self.journal_writer.stats() if self.journal_writer else None,
        }

    async def cached_unit(self, number: str) -> Unit:
        """A unit's config through the cache (daemon mode), straight from the database otherwise."""
        unit = await self._cached(self.config_cache, number, self._unit_or_none)
        if unit is None:
            raise NotFound(f"unit {number!r} does not exist")
        return unit

    async def unit_for_event(self, event: IncomingEvent) -> Unit:
        """The unit an event belongs to, by number or by Asterisk token, through the caches."""
        unit: Unit | None
        if event.enterprise_number is not None:
            unit = await self._cached(
                self.config_cache, event.enterprise_number, self._unit_or_none
            )
        else:
            assert event.token is not None
            unit = await self._cached(self.token_cache, event.token, self.units.by_token)
        if unit is None:
            raise unknown_unit(event)
        return unit

    async def _unit_or_none(self, number: str) -> Unit | None:
        try:
            return await self.units.get(number)
        except NotFound:
            return None

    @staticmethod
    async def _cached(
        cache: SnapshotCache[str, Unit | None] | None,
        key: str,
        load: Callable[[str], Awaitable[Unit | None]],
    ) -> Unit | None:
        return await (cache.get(key) if cache is not None else load(key))

    # -- daemon-mode services -------------------------------------------------------------------

    async def start_cache(self) -> None:
        settings = self.settings.cache

        async def load_all() -> dict[str, Unit | None]:
            return {u.number: u for u in await self.units.list()}

        async def load_all_tokens() -> dict[str, Unit | None]:
            return {u.token: u for u in await self.units.list() if u.token}

        def snapshot_cache(
            load_one: Callable[[str], Awaitable[Unit | None]],
            load: Callable[[], Awaitable[dict[str, Unit | None]]],
        ) -> SnapshotCache[str, Unit | None]:
            return SnapshotCache(
                load_one,
                load,
                ttl=settings.ttl_seconds,
                refresh_every=settings.refresh_seconds,
                jitter=settings.jitter,
            )

        cache = snapshot_cache(self._unit_or_none, load_all)
        tokens = snapshot_cache(self.units.by_token, load_all_tokens)

        def forget(number: str) -> None:
            cache.invalidate(number)
            tokens.invalidate_all()  # token entries are keyed by token, not by number
            if self.dispatcher is not None:
                self._spawn(self.dispatcher.unit_changed(number), f"unit-changed-{number}")
            self._forget_pbx(number)

        def forget_everything() -> None:
            cache.invalidate_all()
            tokens.invalidate_all()
            self._forget_pbx(None)

        async def on_notify(channel: str, payload: dict[str, Any]) -> None:
            number = payload.get("enterprise_number")
            if payload.get("integration_type") not in (None, "retailcrm"):
                return  # another CRM's key changed; ours did not
            if isinstance(number, str):
                forget(number)
            else:
                forget_everything()

        self.configs.on_committed = forget
        self.config_cache = cache
        self.token_cache = tokens
        self.listener = NotificationListener(
            self.db,
            [queries.CONFIG_CHANNEL],
            on_notify,
            on_reconnect=forget_everything,
            purpose="config-listener",
        )
        self._tasks.append(asyncio.create_task(self.listener.run(), name="config-listener"))
        self._tasks.append(asyncio.create_task(cache.run_refresher(), name="config-refresher"))
        self._tasks.append(asyncio.create_task(tokens.run_refresher(), name="token-refresher"))
        await self.listener.wait_ready(within=self.settings.database.connect_timeout_seconds)

    def start_ingest(self) -> None:
        self.ingest = Ingest(self.db)
        self.ingest.start()

    def start_delivery(self) -> None:
        if not self.settings.delivery.enabled:
            log.info(
                "delivery is off on this instance (VOCHI_DELIVERY__ENABLED=false): events are "
                "stored here and delivered by another instance",
                extra={"action": "delivery_disabled"},
            )
            return
        self.dispatcher = Dispatcher(self.db, self.settings.delivery, self._unit_or_none_cached)
        self.dispatcher.worker.modules = ModuleDelivery(
            self.units,
            self.configs,
            self.dispatcher.accounts,
            self.dispatcher.metrics,
            self.settings.delivery,
            ModuleSite.from_settings(self.settings),
        )
        self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="dispatcher"))

    def start_pbx(self) -> None:
        """Smart redirect and RetailCRM's callbacks, over the SSH pool to the units' PBXes."""
        self.ssh = SshPool(self.settings.ssh)
        self.journal_writer = JournalWriter(self.db)
        self.journal_writer.start()
        pbx = PbxRunner(self.ssh)
        journal = self.journal_writer
        self.smart_redirect = SmartRedirect(self.settings, self.resolve_unit, journal, pbx)
        self.callbacks = Callbacks(self.settings, self.units.list, self.cached_unit, journal, pbx)
        self._tasks.append(asyncio.create_task(self.ssh.run_janitor(), name="ssh-janitor"))
        sweeper = self.smart_redirect.run_sweeper()
        self._tasks.append(asyncio.create_task(sweeper, name="smart-redirect-sweeper"))

    async def resolve_unit(self, number: str | None, token: str | None) -> Unit:
        """A unit by number, else by Asterisk token, through the caches (NotFound if none)."""
        if number is not None:
            return await self.cached_unit(number)
        unit = await self._cached(self.token_cache, token or "", self.units.by_token)
        if unit is None:
            raise NotFound(f"no unit has the token {token!r}")
        return unit

    def _forget_pbx(self, number: str | None) -> None:
        for service in (self.smart_redirect, self.callbacks):
            if service is not None:
                service.forget(number)

    async def _close_pbx(self) -> None:
        for service in (self.smart_redirect, self.callbacks):
            if service is not None:
                await service.aclose()  # lets running redirects/originates finish (bounded)
        if self.journal_writer is not None:
            await self.journal_writer.stop()
        if self.ssh is not None:
            await self.ssh.aclose()

    async def _unit_or_none_cached(self, number: str) -> Unit | None:
        return await self._cached(self.config_cache, number, self._unit_or_none)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        # the coroutine itself, not a wrapper awaiting it: a task cancelled before its first step
        # (at shutdown) then closes it instead of leaving it "never awaited"
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        if self.ingest is not None:
            await self.ingest.stop()
        await self._close_pbx()
        await cancel_and_wait([*self._tasks, *self._background])
        self._tasks.clear()
        await self.db.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.release)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, migrate: bool = False, daemon: bool = False, notice: Notice | None = None
) -> AsyncIterator[Runtime]:
    """Open everything ``settings`` describes; close it all on exit, whatever happens."""
    embedded: EmbeddedPostgres | None = None
    if settings.database_url is not None:
        conninfo = settings.database_url.get_secret_value()
    else:
        embedded = EmbeddedPostgres(settings.data_dir or default_data_dir())
        conninfo = await asyncio.to_thread(embedded.acquire)
        if notice is not None:
            how = "started" if embedded.started_here else "using the running"
            notice(
                f"No VOCHI_DATABASE_URL: {how} embedded PostgreSQL in {embedded.base_dir} "
                "(set VOCHI_DATABASE_URL to use the platform database)."
            )
    db = Database(
        conninfo,
        min_size=settings.database.pool_min_size if daemon else 1,
        max_size=settings.database.pool_max_size if daemon else 2,
        timeout=settings.database.connect_timeout_seconds,
    )
    box = SecretBox.from_settings(settings)
    if daemon and not box.enabled:
        log.warning(
            "VOCHI_SECRET_KEY is not set: RetailCRM API keys are stored in plaintext "
            "(set it, then run vochi-crm secrets rotate to encrypt the stored ones)",
            extra={"action": "secrets_plaintext"},
        )
    configs = ConfigService(db, ModuleRegistrar(ModuleSite.from_settings(settings)), box)
    runtime = Runtime(settings, db, UnitService(db, box), configs, embedded=embedded)
    try:
        await db.open()
        if migrate:
            await runtime.migrate()
        if daemon:
            await runtime.start_cache()
            runtime.start_ingest()
            runtime.start_delivery()
            runtime.start_pbx()
        yield runtime
    finally:
        await runtime.aclose()
