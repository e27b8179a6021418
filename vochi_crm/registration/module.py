"""The integration module we register in RetailCRM, and when to (re-)register it — pure, no I/O.

RetailCRM replaces the whole telephony block on every ``integration-modules/{code}/edit``
(reference A6), and the original wiped accounts' extension mappings by re-posting an empty
``additionalCodes`` (B9). So the module is always built whole, from one config, by one function:
:func:`build_module`. The queue carries no module at all — the worker calls this with the config
current at delivery time, so a late retry can never post a stale mapping.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from typing import Any, Final, Literal
from urllib.parse import quote

from vochi_crm.retailcrm.exchange import mask_payload
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.settings import Settings

Kind = Literal["register_module", "delete_module"]
REGISTER: Final[Kind] = "register_module"
DELETE: Final[Kind] = "delete_module"
MODULE_EVENTS = frozenset({REGISTER, DELETE})
"""``retailcrm_events.event_type`` values of module (de)registrations (and their journal names)."""
MODULE_CALL_ID = "__module__"
"""``call_unique_id`` of module events: one "call" per unit, so its registrations run in order."""
LOGO_PATH = "/static/vochi-logo.svg"
CLIENT_ID_BYTES = 24


@dataclass(frozen=True)
class ModuleSite:
    """Where RetailCRM finds us: the parts of the module that come from Settings, not the unit."""

    code: str
    name: str
    public_base_url: str
    logo_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModuleSite:
        return cls(
            code=settings.retailcrm.module_code,
            name=settings.retailcrm.module_name,
            public_base_url=settings.public_base_url,
            logo_url=settings.retailcrm.logo_url,
        )

    @property
    def logo(self) -> str:
        return self.logo_url or self.public_base_url.rstrip("/") + LOGO_PATH


def build_module(
    unit_number: str, config: RetailCrmConfig, site: ModuleSite, *, active: bool
) -> dict[str, Any]:
    """The complete ``integrationModule`` body (reference A6) for one unit.

    ``additionalCodes`` lists *every* mapped extension, every time; a deactivation sends the same
    body with ``active: false`` (RetailCRM keeps the codes for a later re-activation). The
    ``accountUrl`` carries no token: the admin-link JWT comes with the admin UI.
    """
    base = site.public_base_url.rstrip("/")
    module: dict[str, Any] = {
        "code": site.code,
        "active": active,
        "name": site.name,
        "logo": site.logo,
        "baseUrl": base,
        "accountUrl": f"{base}/retailcrm-admin/?enterprise_number={quote(unit_number, safe='')}",
        "integrations": {
            "telephony": {
                "makeCallUrl": f"{base}/retailcrm/make-call",
                "changeUserStatusUrl": f"{base}/retailcrm/status",
                "allowEdit": False,
                "inputEventSupported": True,
                "outputEventSupported": True,
                "hangupEventSupported": True,
                "additionalCodes": additional_codes(config),
                "externalPhones": [],
            }
        },
    }
    if config.client_id:
        module["clientId"] = config.client_id
    return module


def additional_codes(config: RetailCrmConfig) -> list[dict[str, Any]]:
    """One ``{userId, code}`` per mapped extension, in extension order (stable digests/diffs)."""
    return [
        {"userId": user_id, "code": ext}
        for ext, user_id in sorted(config.user_mappings.items(), key=lambda i: (len(i[0]), i[0]))
    ]


def masked_module(module: dict[str, Any]) -> dict[str, Any]:
    """The module as it may be journaled or printed: ``clientId`` and URL tokens masked to the
    last 4 characters (the client's own rule for ``integrationModule``)."""
    masked: dict[str, Any] = mask_payload({"integrationModule": module})["integrationModule"]
    return masked


def journal_request(domain: str | None, module: dict[str, Any]) -> dict[str, Any]:
    """``request_data`` of a ``register_module``/``delete_module`` journal row (reference B2)."""
    return {"domain": domain, "module": masked_module(module)}


def action_for(config: RetailCrmConfig) -> Kind | None:
    """What delivering a module event does *now*: register when the integration is enabled,
    deactivate when it is configured but disabled, nothing possible without credentials."""
    if not config.configured:
        return None
    return REGISTER if config.enabled else DELETE


def change_kind(before: RetailCrmConfig | None, after: RetailCrmConfig | None) -> Kind | None:
    """Which module event a committed config write calls for (``None``: none).

    * enabled (and configured) after the write, and it was not before, or the address, key or
      mapping changed → ``register_module``;
    * enabled before, not after (disabled, or the config deleted) → ``delete_module``;
    * a ``client_id`` that appears where there was none is *not* a reason: that is the
      registration generating it, and reacting would loop. Replacing one ``client_id`` by another
      (an operator rotating it) is, or RetailCRM would keep calling us with the old one;
    * anything else → nothing.
    """
    was = before if before is not None else RetailCrmConfig()
    now = after if after is not None else RetailCrmConfig()
    was_on = was.enabled and was.configured
    now_on = now.enabled and now.configured
    if now_on:
        rotated = bool(was.client_id) and was.client_id != now.client_id
        if not was_on or rotated or _registered_fields(was) != _registered_fields(now):
            return REGISTER
        return None
    return DELETE if was_on else None


def _registered_fields(config: RetailCrmConfig) -> tuple[object, ...]:
    return (config.api_url, config.api_key, dict(config.user_mappings))


def content_digest(kind: Kind, unit_number: str, config: RetailCrmConfig, site: ModuleSite) -> str:
    """A digest of what is being (de)registered where: the queue's dedup prefix. The API key
    enters only as its own digest; nothing here can be reversed into a secret."""
    key = hashlib.sha256((config.api_key or "").encode()).hexdigest()[:16]
    canonical = json.dumps(
        {
            "kind": kind,
            "url": config.api_url,
            "key": key,
            "module": build_module(unit_number, config, site, active=kind == REGISTER),
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def new_client_id() -> str:
    """An unguessable per-unit ``clientId`` (the original used the enterprise number, B9)."""
    return secrets.token_urlsafe(CLIENT_ID_BYTES)


def with_client_id(config: RetailCrmConfig) -> RetailCrmConfig:
    """``config`` with a ``clientId`` generated if an enabled integration has none yet; an
    existing one is never replaced (RetailCRM stores it, callbacks authenticate with it)."""
    if config.client_id or not (config.enabled and config.configured):
        return config
    return replace(config, client_id=new_client_id())
