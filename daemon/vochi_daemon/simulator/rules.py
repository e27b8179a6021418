"""RetailCRM's validation rules for the telephony entities, as pure functions (reference A6–A10).

Each ``validate_*`` returns ``{field: message}`` — empty when the entity is acceptable — in the
shape RetailCRM puts under ``errors`` next to ``errorMsg: "Errors in the entity format"``. Messages
follow RetailCRM's (Symfony) wording where the reference quotes it; the field paths of list items
(``calls[0].result``) are the simulator's choice: the reference does not show RetailCRM's.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

EVENT_TYPES = ("in", "out", "hangup")
#: call/event uses "no answered" (with -ed); calls/upload uses "no answer" — not interchangeable.
HANGUP_STATUSES = ("answered", "busy", "cancel", "failed", "no answered")
CALL_TYPES = ("in", "out")
CALL_RESULTS = ("answered", "busy", "failed", "no answer", "not allowed", "unknown")
USER_STATUSES = ("free", "busy", "dinner", "break")
#: "up to 50 calls" per upload (reference A8, unconfirmed against the docs; enforced here).
MAX_UPLOAD = 50
PAGE_LIMITS = (20, 50, 100)
_TAIL = 9

BLANK = "This value should not be blank."
CHOICE = "The value you selected is not a valid choice."
DATETIME = "This value is not a valid datetime (expected Y-m-d H:i:s)."
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def type_error(kind: str) -> str:
    return f"This value should be of type {kind}."


def validate_event(event: Any) -> dict[str, str]:
    """``telephony/call/event``'s ``event`` (reference A7)."""
    if not isinstance(event, dict):
        return {"event": type_error("object")}
    errors: dict[str, str] = {}
    _require_text(event, "phone", errors)
    if event.get("type") not in EVENT_TYPES:
        errors["type"] = CHOICE if event.get("type") not in (None, "") else BLANK
    codes, user_ids = event.get("codes"), event.get("userIds")
    if codes is not None and not _list_of(codes, (str, int)):
        errors["codes"] = type_error("array of strings")
    if user_ids is not None and not _list_of(user_ids, (int,)):
        errors["userIds"] = type_error("array of integers")
    if not codes and not user_ids and "codes" not in errors and "userIds" not in errors:
        errors["codes"] = "Either codes or userIds must be given."
    status = event.get("hangupStatus")
    if status is not None and status not in HANGUP_STATUSES:
        errors["hangupStatus"] = CHOICE
    elif status is None and event.get("type") == "hangup":
        errors["hangupStatus"] = BLANK
    for name in ("callExternalId", "externalPhone", "site"):
        if event.get(name) is not None and not isinstance(event[name], str | int):
            errors[name] = type_error("string")
    if event.get("webAnalyticsData") is not None and not isinstance(
        event["webAnalyticsData"], dict
    ):
        errors["webAnalyticsData"] = type_error("object")
    return errors


def validate_calls(calls: Any) -> dict[str, str]:
    """``telephony/calls/upload``'s ``calls`` (reference A8); the whole batch or nothing."""
    if not isinstance(calls, list):
        return {"calls": type_error("array")}
    if not calls:
        return {"calls": BLANK}
    if len(calls) > MAX_UPLOAD:
        return {"calls": f"This collection should contain {MAX_UPLOAD} elements or less."}
    errors: dict[str, str] = {}
    for index, call in enumerate(calls):
        prefix = f"calls[{index}]"
        if not isinstance(call, dict):
            errors[prefix] = type_error("object")
            continue
        errors.update({f"{prefix}.{k}": v for k, v in _call_errors(call).items()})
    return errors


def _call_errors(call: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    date = call.get("date")
    if date in (None, ""):
        errors["date"] = BLANK
    elif not isinstance(date, str) or not _valid_datetime(date):
        errors["date"] = DATETIME
    if call.get("type") not in CALL_TYPES:
        errors["type"] = BLANK if call.get("type") in (None, "") else CHOICE
    _require_text(call, "phone", errors)
    if call.get("result") is not None and call["result"] not in CALL_RESULTS:
        errors["result"] = CHOICE
    for name in ("duration", "durationWaiting"):
        value = call.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            errors[name] = "This value should be a non-negative integer."
    if call.get("userId") is not None and (
        isinstance(call["userId"], bool) or not isinstance(call["userId"], int)
    ):
        errors["userId"] = type_error("integer")
    for name in ("code", "externalId", "externalPhone", "site", "clientId"):
        if call.get(name) is not None and not isinstance(call[name], str | int):
            errors[name] = type_error("string")
    if call.get("recordUrl") is not None and not _is_url(call["recordUrl"]):
        errors["recordUrl"] = "This value is not a valid URL."
    return errors


def validate_module(
    code: str, incoming: Any, existing: dict[str, Any] | None
) -> tuple[dict[str, str], dict[str, Any]]:
    """``integration-modules/{code}/edit`` → (errors, the module as it would be stored).

    Top-level fields merge into the stored module; each block under ``integrations`` is
    replaced whole — which is why a client must always send the full ``additionalCodes``.
    """
    if not isinstance(incoming, dict):
        return {"integrationModule": type_error("object")}, {}
    errors: dict[str, str] = {}
    if incoming.get("code") not in (None, code):
        errors["code"] = f'This value should be equal to "{code}".'
    prefix = incoming.get("integrationCode")
    if isinstance(prefix, str) and prefix and not code.startswith(prefix):
        errors["code"] = "Code prefix must match integrationCode"
    if incoming.get("actions"):
        errors["actions"] = CHOICE
    merged = {
        "code": code,
        "integrationCode": code,
        "active": True,
        "freeze": False,
        "native": False,
        **(existing or {}),
    }
    merged.update(
        {k: v for k, v in incoming.items() if k not in ("integrations", "freeze", "native")}
    )
    merged["code"] = code
    integrations = dict(merged.get("integrations") or {})
    new_blocks = incoming.get("integrations")
    if new_blocks is not None and not isinstance(new_blocks, dict):
        errors["integrations"] = type_error("object")
    elif new_blocks:
        integrations.update(new_blocks)
    merged["integrations"] = integrations
    for name in ("name", "baseUrl"):
        if not isinstance(merged.get(name), str) or not merged[name].strip():
            errors[name] = BLANK
    logo = merged.get("logo")
    if logo is not None and (
        not isinstance(logo, str) or not logo.split("?")[0].lower().endswith(".svg")
    ):
        errors["logo"] = "Logo image must be svg"
    if isinstance(integrations.get("telephony"), dict):
        errors.update(_telephony_errors(integrations["telephony"]))
    elif "telephony" in integrations:
        errors["integrations.telephony"] = type_error("object")
    return errors, merged


def _telephony_errors(block: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    prefix = "integrations.telephony"
    for name in ("makeCallUrl", "changeUserStatusUrl"):
        if block.get(name) is not None and not _is_url(block[name]):
            errors[f"{prefix}.{name}"] = "This value is not a valid URL."
    for name in (
        "allowEdit",
        "inputEventSupported",
        "outputEventSupported",
        "hangupEventSupported",
    ):
        if block.get(name) is not None and not isinstance(block[name], bool):
            errors[f"{prefix}.{name}"] = type_error("bool")
    codes = block.get("additionalCodes")
    if codes is not None and not isinstance(codes, list):
        errors[f"{prefix}.additionalCodes"] = type_error("array")
    for index, item in enumerate(codes if isinstance(codes, list) else []):
        path = f"{prefix}.additionalCodes[{index}]"
        if not isinstance(item, dict):
            errors[path] = type_error("object")
            continue
        user_id = item.get("userId")  # ints and digit strings both accepted (reference A6)
        if isinstance(user_id, bool) or not (
            isinstance(user_id, int) or (isinstance(user_id, str) and user_id.isdigit())
        ):
            errors[f"{path}.userId"] = type_error("integer")
        if item.get("code") in (None, "") or not isinstance(item.get("code"), str | int):
            errors[f"{path}.code"] = BLANK
    phones = block.get("externalPhones")
    if phones is not None and not isinstance(phones, list):
        errors[f"{prefix}.externalPhones"] = type_error("array")
    return errors


def phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def phones_match(a: str, b: str) -> bool:
    """Same number in another notation: the last nine digits agree (``+375 29 123-45-67`` ~
    ``80291234567``), or all digits for short numbers. The simulator's stand-in for RetailCRM's
    fuzzy phone search, whose exact rules are unknown."""
    da, db = phone_digits(a), phone_digits(b)
    if not da or not db:
        return False
    if len(da) >= _TAIL and len(db) >= _TAIL:
        return da[-_TAIL:] == db[-_TAIL:]
    return da == db


def find_customer(customers: list[dict[str, Any]], phone: str) -> dict[str, Any] | None:
    for customer in customers:
        for entry in customer.get("phones") or []:
            number = entry.get("number") if isinstance(entry, dict) else None
            if isinstance(number, str) and phones_match(number, phone):
                return customer
    return None


def parse_flag(value: str | None, default: bool) -> bool | None:
    """``1``/``0`` (what PHP sends), also ``true``/``false``; ``None`` for anything else."""
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    return None


def _require_text(entity: dict[str, Any], name: str, errors: dict[str, str]) -> None:
    value = entity.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[name] = BLANK
    elif not isinstance(value, str | int) or isinstance(value, bool):
        errors[name] = type_error("string")


def _list_of(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, kinds) and not isinstance(v, bool) for v in value
    )


def _valid_datetime(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # account-local wall time: no zone
    except ValueError:
        return False
    return True


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and " " not in value
