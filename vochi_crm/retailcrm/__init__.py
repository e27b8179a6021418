"""RetailCRM API v5: the async client, its error classes and the pure answer classifier.

``RetailCrmClient`` (one per RetailCRM account) → ``CrmResult`` or one of ``RetailCrmTransient``,
``RetailCrmPermanent``, ``RetailCrmUnitMustAct``; every call leaves an ``Exchange`` to journal.
"""

from __future__ import annotations

from vochi_crm.retailcrm.classify import classify, parse_retry_after
from vochi_crm.retailcrm.client import CrmResult, RetailCrmClient, normalise_base_url
from vochi_crm.retailcrm.errors import (
    RetailCrmError,
    RetailCrmPermanent,
    RetailCrmTransient,
    RetailCrmUnitMustAct,
)
from vochi_crm.retailcrm.exchange import Exchange, mask_payload

__all__ = [
    "CrmResult",
    "Exchange",
    "RetailCrmClient",
    "RetailCrmError",
    "RetailCrmPermanent",
    "RetailCrmTransient",
    "RetailCrmUnitMustAct",
    "classify",
    "mask_payload",
    "normalise_base_url",
    "parse_retry_after",
]
