"""Registration's part in every config write: a ``clientId`` before, a queued module event after.

:class:`ModuleRegistrar` is the :class:`~vochi_crm.config_service.WriteHook` the runtime plugs into
``ConfigService``. It runs inside the write's transaction, so the queued ``register_module`` /
``delete_module`` row commits (or rolls back) with the config itself — a save can neither lose its
registration nor register something that was never saved — and the save never waits for RetailCRM:
the daemon's dispatcher delivers the row (woken by ``NOTIFY retailcrm_events_ready``), retrying it
by the same policy as call events.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

from vochi_crm.db import queries
from vochi_crm.db.database import Conn
from vochi_crm.delivery.store import journal_params
from vochi_crm.registration.delivery import not_sendable
from vochi_crm.registration.module import (
    MODULE_CALL_ID,
    ModuleSite,
    change_kind,
    content_digest,
    with_client_id,
)
from vochi_crm.retailcrm_config import RetailCrmConfig

log = logging.getLogger(__name__)


class ModuleRegistrar:
    def __init__(self, site: ModuleSite) -> None:
        self.site = site

    def prepare(self, before: RetailCrmConfig, after: RetailCrmConfig) -> RetailCrmConfig:
        """Generate the unit's ``clientId`` in the write that enables the integration (or in any
        later write of an enabled config that still lacks one, e.g. from the original platform).

        A move to another RetailCRM account (``api_url`` changed, the ``clientId`` not set in the
        same write) gets a new one: the old account keeps our module and its ``clientId`` — we
        hold no key to reach it any more — and that id must stop starting calls on the PBX.
        """
        moved = bool(before.api_url) and after.api_url != before.api_url
        if moved and before.client_id and after.client_id == before.client_id:
            log.info(
                "RetailCRM account changed: a new clientId replaces the one the old account holds",
                extra={"action": "client_id_rotated"},
            )
            after = replace(after, client_id=None)
        return with_client_id(after)

    async def written(
        self,
        conn: Conn,
        number: str,
        before: RetailCrmConfig | None,
        after: RetailCrmConfig | None,
    ) -> None:
        """Queue the module event this write calls for (``after`` is ``None``: config deleted).
        A move to another account leaves our module in the old one: that is journaled, with what
        to do, in the same transaction."""
        if after is not None and _left_account(before, after):
            assert before is not None
            why = f"the unit moved to another RetailCRM account ({after.api_url})"
            entry = not_sendable(number, before, self.site, why)
            await conn.execute(queries.JOURNAL_INSERT, journal_params(entry))
            await conn.execute(queries.JOURNAL_NOTIFY)
        kind = change_kind(before, after)
        if kind is None:
            return
        basis = after if after is not None else before
        assert basis is not None  # change_kind found a change, so one side exists
        digest = content_digest(kind, number, basis, self.site)
        cur = await conn.execute(
            queries.MODULE_EVENT_QUEUE,
            {
                "unit": number,
                "call": MODULE_CALL_ID,
                "event_type": kind,
                "digest": digest,
                "dedup_key": f"{digest}.{secrets.token_hex(4)}",
            },
        )
        row = await cur.fetchone()
        if row is None:
            log.info(
                "%s for unit %s already queued", kind, number, extra={"action": f"{kind}_dedup"}
            )
            return
        await conn.execute(queries.EVENTS_NOTIFY)
        log.info(
            "%s queued for unit %s (event %s)",
            kind,
            number,
            row["id"],
            extra={"action": f"{kind}_queued", "unit": number},
        )


def _left_account(before: RetailCrmConfig | None, after: RetailCrmConfig) -> bool:
    """The write moved an enabled integration away from the account that has our module."""
    return (
        before is not None
        and before.enabled
        and before.configured
        and after.api_url != before.api_url
    )
