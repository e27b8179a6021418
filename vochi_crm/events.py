"""Validation of one incoming call event (``POST /api/events``), pure and cheap.

The hot path parses the body once with the stdlib and checks only what storage and delivery rely
on; every problem found is named (``payload.CallType``), nothing is coerced silently except the
documented ``CallType`` as int or string.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vochi_crm.errors import FieldError, InvalidInput
from vochi_crm.pipeline.plan import ASTERISK_EVENT_TYPES

MAX_BODY_BYTES = 64 * 1024
EVENT_TYPES = ASTERISK_EVENT_TYPES
QUEUED_TYPES = frozenset({"start", "dial", "bridge", "hangup", "download"})
"""The event types the mapping uses; the others are answered at once and not stored."""
ONE_PER_CALL = frozenset({"start", "hangup", "download"})
"""A call has one of each of these; dial and bridge may repeat (follow-me, transfers)."""
_VOLATILE = ("DateReceived",)
_STRING_FIELDS = (
    "Phone",
    "Trunk",
    "StartTime",
    "EndTime",
    "Channel",
    "CallerIDNum",
    "ConnectedLineNum",
    "Token",
)


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    enterprise_number: str | None
    token: str | None
    event_type: str
    unique_id: str
    payload: dict[str, Any]

    @property
    def queued(self) -> bool:
        return self.event_type in QUEUED_TYPES and bool(self.unique_id)

    @property
    def dedup_key(self) -> str:
        """'' for one-per-call events; a payload digest for repeatable ones, so a retransmission
        is a duplicate while a second bridge of a transfer is not."""
        if self.event_type in ONE_PER_CALL:
            return ""
        stable = {k: v for k, v in self.payload.items() if k not in _VOLATILE}
        canonical = json.dumps(stable, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def parse_event(body: bytes) -> IncomingEvent:
    """Parse and validate a request body; :class:`InvalidInput` names every bad field."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.one("body", f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidInput.one("body", "must be a JSON object")
    errors: list[FieldError] = []

    number = _optional_str(data, "enterprise_number", errors)
    token = _optional_str(data, "token", errors)

    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        errors.append(
            FieldError("event_type", f"{event_type!r} is not one of {', '.join(EVENT_TYPES)}")
        )

    payload = data.get("payload")
    unique_id = ""
    if not isinstance(payload, dict):
        errors.append(FieldError("payload", "must be a JSON object (the Asterisk event)"))
    else:
        unique_id = _check_payload(payload, event_type, errors)
        if number is None and token is None:  # the Asterisk payload names its unit too
            token = _optional_str(payload, "Token", [])
    if (
        number is None
        and token is None
        and not any(e.field in ("enterprise_number", "token") for e in errors)
    ):
        errors.append(FieldError("enterprise_number", "enterprise_number or token is required"))
    if errors:
        raise InvalidInput(errors)
    assert isinstance(event_type, str)
    assert isinstance(payload, dict)
    return IncomingEvent(number, token, event_type, unique_id, payload)


def _check_payload(payload: dict[str, Any], event_type: object, errors: list[FieldError]) -> str:
    unique_id = payload.get("UniqueId")
    if unique_id is None:
        errors.append(FieldError("payload.UniqueId", "is required"))
        unique_id = ""
    elif not isinstance(unique_id, str):
        errors.append(FieldError("payload.UniqueId", "must be a string"))
        unique_id = ""
    elif not unique_id.strip() and event_type in QUEUED_TYPES:
        errors.append(FieldError("payload.UniqueId", "must not be empty"))
    elif len(unique_id) > 150:
        errors.append(FieldError("payload.UniqueId", "is longer than 150 characters"))
    call_type = payload.get("CallType")
    if call_type is not None and not (
        (isinstance(call_type, int) and not isinstance(call_type, bool) and 0 <= call_type <= 2)
        or (isinstance(call_type, str) and call_type.strip() in ("0", "1", "2"))
    ):
        errors.append(FieldError("payload.CallType", f"{call_type!r} is not 0, 1 or 2"))
    status = payload.get("CallStatus")
    if status is not None and not (
        (isinstance(status, int) and not isinstance(status, bool))
        or (isinstance(status, str) and status.strip().lstrip("-").isdigit())
    ):
        errors.append(FieldError("payload.CallStatus", f"{status!r} is not a status number"))
    extensions = payload.get("Extensions")
    if extensions is not None and not (
        isinstance(extensions, list) and all(isinstance(e, str) for e in extensions)
    ):
        errors.append(FieldError("payload.Extensions", "must be a list of strings"))
    for name in _STRING_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(FieldError(f"payload.{name}", "must be a string"))
    return unique_id.strip() if isinstance(unique_id, str) else ""


def _optional_str(data: dict[str, Any], key: str, errors: list[FieldError]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        errors.append(FieldError(key, "must be a non-empty string"))
        return None
    return value.strip()
