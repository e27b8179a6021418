"""Smart redirect's pure parts: the request, RetailCRM's answer, and the decision.

:func:`decide` turns what RetailCRM said about a phone into an extension of the unit's **own**
mapping (never anything else) or the fallback, with the reason; :func:`parse_request` validates a
``POST /api/smart-redirect`` body, naming every bad field. No I/O here; the use-case is
:mod:`vochi_crm.smart_redirect`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vochi_crm import asterisk
from vochi_crm.errors import FieldError, InvalidInput
from vochi_crm.retailcrm import RetailCrmError
from vochi_crm.units import UNIT_NUMBER

MAX_BODY_BYTES = 8 * 1024
UNIQUE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
TRUNK = re.compile(r"^[A-Za-z0-9_.@:+-]{1,64}$")
Source = Literal["cache", "crm", "fallback"]


class LookupRefused(Exception):
    """The account's breaker is open: RetailCRM is not asked."""


@dataclass(frozen=True, slots=True)
class RedirectRequest:
    enterprise_number: str | None
    token: str | None
    phone: str
    unique_id: str | None = None
    channel: str | None = None
    trunk: str | None = None


def parse_request(body: bytes) -> RedirectRequest:
    """Validate a request body; :class:`InvalidInput` names every bad field."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.one("body", f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInput.one("body", "must be a JSON object")
    errors: list[FieldError] = []

    def text(name: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        errors.append(FieldError(name, f"is not {what}"))
        return None

    number = text("enterprise_number", UNIT_NUMBER, "a unit number (e.g. 0367)")
    token = text("token", UNIT_NUMBER, "a token (letters, digits, - and _)")
    if (
        number is None
        and token is None
        and not any(f.field in ("enterprise_number", "token") for f in errors)
    ):
        errors.append(FieldError("enterprise_number", "enterprise_number or token is required"))
    phone = ""
    try:
        phone = asterisk.normalise_phone(data.get("phone"))
    except InvalidInput as exc:
        errors.extend(exc.fields)
    unique_id = text("unique_id", UNIQUE_ID, "an Asterisk UniqueId (e.g. 1757765248.123)")
    trunk = text("trunk", TRUNK, "a trunk name")
    channel = None
    if data.get("channel") not in (None, ""):
        try:
            channel = asterisk.validate_channel(data["channel"])
        except InvalidInput as exc:
            errors.extend(exc.fields)
    if errors:
        raise InvalidInput(errors)
    return RedirectRequest(number, token, phone, unique_id, channel, trunk)


@dataclass(frozen=True, slots=True)
class ManagerInfo:
    """What RetailCRM said about one phone (this is what the cache keeps)."""

    manager_id: int | None
    manager_code: str | None
    customer_name: str | None
    crm_ms: float | None = field(default=None, compare=False)
    """How long RetailCRM took to answer (our client's measure: request sent → answer read)."""


def manager_info(data: Mapping[str, Any], crm_ms: float | None = None) -> ManagerInfo:
    """Read a ``telephony/manager`` answer defensively (reference A9: no ``manager`` when nobody
    is responsible; the original also saw ``data.manager``)."""
    manager = data.get("manager")
    if not isinstance(manager, Mapping) and isinstance(data.get("data"), Mapping):
        manager = data["data"].get("manager")
    manager = manager if isinstance(manager, Mapping) else {}
    raw_id = manager.get("id")
    manager_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if isinstance(raw_id, str) and raw_id.isdigit():
        manager_id = int(raw_id)
    code = manager.get("code")
    code_text = str(code).strip() if isinstance(code, str | int) and code is not True else ""
    customer = data.get("customer")
    return ManagerInfo(
        manager_id=manager_id if manager_id and manager_id > 0 else None,
        manager_code=code_text or None,
        customer_name=customer_name(customer) if isinstance(customer, Mapping) else None,
        crm_ms=crm_ms,
    )


def customer_name(customer: Mapping[str, Any]) -> str | None:
    """``Last First Patronymic`` (the platform's order), one line, at most 100 characters."""
    parts = [customer.get(k) for k in ("lastName", "firstName", "patronymic")]
    name = " ".join(" ".join(str(p).split()) for p in parts if isinstance(p, str) and p.strip())
    return name[:100] or None


@dataclass(frozen=True, slots=True)
class Decision:
    extension: str | None
    manager_id: int | None
    customer_name: str | None
    source: Source
    reason: str
    crm_ms: float | None = field(default=None, compare=False)
    """RetailCRM's own time in this answer (``None``: not asked, or the answer was cached)."""


def decide(
    info: ManagerInfo | None,
    mapping: Mapping[str, int],
    fallback_extension: str | None,
    *,
    cached: bool = False,
    failure: str | None = None,
) -> Decision:
    """The extension to ring, from the unit's own mapping only.

    The manager's telephony code when our mapping has it for that manager (``manager_code``);
    else the extension our mapping gives the manager's user id (``manager_mapping``); else the
    fallback extension if it is mapped, or none — with the reason: ``no_manager``,
    ``manager_not_mapped``, or the lookup ``failure`` (``crm_timeout``, …). A code RetailCRM
    knows but our mapping gives to another user is not used: our mapping is the source of truth
    (it is what we register in RetailCRM).
    """
    if info is None:
        return _fallback(None, None, mapping, fallback_extension, failure or "crm_unavailable")
    decision = _from_answer(info, mapping, fallback_extension, cached)
    return decision if cached else replace(decision, crm_ms=info.crm_ms)


def _from_answer(
    info: ManagerInfo, mapping: Mapping[str, int], fallback_extension: str | None, cached: bool
) -> Decision:
    manager_id, code = info.manager_id, info.manager_code
    if code is not None and code in mapping and manager_id in (None, mapping[code]):
        return Decision(code, manager_id, info.customer_name, _source(cached), "manager_code")
    if manager_id is not None:
        own = sorted((e for e, user in mapping.items() if user == manager_id), key=_ext_order)
        if own:
            return Decision(
                own[0], manager_id, info.customer_name, _source(cached), "manager_mapping"
            )
        return _fallback(
            manager_id, info.customer_name, mapping, fallback_extension, "manager_not_mapped"
        )
    return _fallback(None, info.customer_name, mapping, fallback_extension, "no_manager")


def _fallback(
    manager_id: int | None,
    name: str | None,
    mapping: Mapping[str, int],
    fallback_extension: str | None,
    reason: str,
) -> Decision:
    extension = fallback_extension if fallback_extension in mapping else None
    return Decision(extension, manager_id, name, "fallback", reason)


def _source(cached: bool) -> Source:
    return "cache" if cached else "crm"


def _ext_order(ext: str) -> tuple[int, str]:
    return (len(ext), ext)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "crm_timeout"
    if isinstance(exc, LookupRefused):
        return "crm_breaker_open"
    if isinstance(exc, RetailCrmError):
        return f"crm_{exc.kind}:{exc.reason}"
    return "crm_error"
