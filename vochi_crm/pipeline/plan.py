"""What the mapping produces: planned RetailCRM requests, skip reasons, and the plan itself.

The request types carry exactly the JSON RetailCRM must receive plus the method path and the
``integration_logs.event_type`` name the shared journal expects (``call_event:in|out|hangup``,
``calls_upload``, reference B2), so the worker does no mapping of its own. ``form()`` renders the
form-encoded body (one JSON string per entity field, reference A2); building it is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from vochi_crm.pipeline.callstate import CallState

API_PREFIX = "/api/v5"
ASTERISK_EVENT_TYPES = (
    "start",
    "dial",
    "new_callerid",
    "bridge",
    "bridge_create",
    "bridge_leave",
    "bridge_destroy",
    "hangup",
    "download",
)
"""Every webhook the PBX sends (reference B3), in the order a call produces them."""


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class CallEventRequest:
    """``POST /api/v5/telephony/call/event`` with ``event=<json>`` (reference A7)."""

    event: dict[str, Any]

    http_method: ClassVar[str] = "POST"
    path: ClassVar[str] = f"{API_PREFIX}/telephony/call/event"

    @property
    def log_event_type(self) -> str:
        """The shared journal's name for this request: ``call_event:in|out|hangup``."""
        return f"call_event:{self.event.get('type', '')}"

    def form(self) -> dict[str, str]:
        return {"event": _compact_json(self.event)}


@dataclass(frozen=True)
class CallsUploadRequest:
    """``POST /api/v5/telephony/calls/upload`` with ``calls=<json array>`` (reference A8)."""

    calls: list[dict[str, Any]]

    http_method: ClassVar[str] = "POST"
    path: ClassVar[str] = f"{API_PREFIX}/telephony/calls/upload"
    log_event_type: ClassVar[str] = "calls_upload"

    def form(self) -> dict[str, str]:
        return {"calls": _compact_json(self.calls)}


PlannedRequest = CallEventRequest | CallsUploadRequest


class UnmappableEvent(ValueError):
    """The event can never be mapped; ``field`` names the payload field at fault.

    Raised only when an event that must produce a request lacks what every request needs, so the
    worker marks it ``failed`` at once: retrying the same bytes cannot succeed.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SkipCode(StrEnum):
    """Why an event (or part of it) produces no RetailCRM request. Stable: used in logs/metrics."""

    NO_REQUEST_FOR_EVENT = "no_request_for_event"
    """start/new_callerid/bridge*: RetailCRM has no matching call; the state may still change."""
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NO_UNIQUE_ID = "no_unique_id"
    INTERNAL_CALL = "internal_call"
    CALL_ALREADY_ENDED = "call_already_ended"
    NO_INTERNAL_EXTENSION = "no_internal_extension"
    ALREADY_NOTIFIED = "already_notified"
    NO_CALLING_EXTENSION = "no_calling_extension"
    NOBODY_TO_NOTIFY = "nobody_to_notify"
    ANONYMOUS_CALLER = "anonymous_caller"
    """An incoming call with a hidden number: RetailCRM takes no call without a phone."""


@dataclass(frozen=True)
class Skip:
    """A skipped event or part of one: a stable ``code`` and a sentence for the journal."""

    code: SkipCode
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class Plan:
    """The mapping's answer for one event.

    ``requests`` are sent in order (a hangup's ``call/event`` before its ``calls/upload``).
    ``state`` replaces the call's stored state *whether or not anything is sent* (a bridge sends
    nothing but records who answered). ``skip`` is set exactly when ``requests`` is empty;
    ``partial`` lists parts that were left out of a non-empty plan (e.g. a hangup pop-up with
    nobody to address).
    """

    requests: tuple[PlannedRequest, ...]
    state: CallState
    skip: Skip | None = None
    partial: tuple[Skip, ...] = field(default=())

    @property
    def skip_reason(self) -> str | None:
        return None if self.skip is None else str(self.skip)
