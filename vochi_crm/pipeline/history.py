"""The end of a call: its outcome, who handled it, and its ``calls/upload`` record (reference A8).

Outcome: ``CallStatus`` 2, or an earlier answering bridge, means answered — a blind transfer to a
busy extension ends with ``CallStatus`` 0 although the customer talked to the first extension
(scenario 2-19). Otherwise a busy ``Cause`` means busy, any other ``CallStatus`` means not answered,
and with neither (only synthetic payloads carry no ``CallStatus``) the outcome is unknown.
RetailCRM's enums differ between the two methods: event ``hangupStatus`` ``"no answered"``, upload
``result`` ``"no answer"``; ``missed`` is invalid and ``failed`` is never used for a plain
unanswered call (the original's bug, B9.5).

Upload fields and the choices made:

* ``date`` = ``StartTime``; fallbacks for synthetic or damaged payloads: the call's first event
  time from the state, ``EndTime``, ``DateReceived``, then ``received_at``.
* ``duration`` = ``EndTime − StartTime`` when answered (as the original and A15: it includes the
  ring time), else the span between the times we received the first event and the hangup; ``0``
  when not answered or busy; left out when the outcome is unknown.
* ``durationWaiting`` = answering bridge − first event, both as received (one clock); only when
  answered and both are known.
* ``userId`` (else ``code``) of the extension that handled the call: the answering extension from
  the state, else the single extension of the hangup's ``Extensions`` (with none, of the ringing
  set). An unmapped extension gives ``code`` only, never somebody else's ``userId``; an unanswered
  call that rang several extensions gives nobody. Outgoing calls belong to the extension on our side
  of the bridge, else the calling one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from vochi_crm.pipeline import payload as p
from vochi_crm.pipeline.callstate import CallState, Direction
from vochi_crm.pipeline.plan import UnmappableEvent


class Outcome(StrEnum):
    ANSWERED = "answered"
    NOT_ANSWERED = "not_answered"
    BUSY = "busy"
    UNKNOWN = "unknown"


HANGUP_STATUS: Mapping[Outcome, str] = {
    Outcome.ANSWERED: "answered",
    Outcome.NOT_ANSWERED: "no answered",
    Outcome.BUSY: "busy",
}
"""``call/event`` ``hangupStatus`` per outcome; unknown sends none (the field is optional)."""

UPLOAD_RESULT: Mapping[Outcome, str] = {
    Outcome.ANSWERED: "answered",
    Outcome.NOT_ANSWERED: "no answer",
    Outcome.BUSY: "busy",
    Outcome.UNKNOWN: "unknown",
}
"""``calls/upload`` ``result`` per outcome."""


def outcome(payload: Mapping[str, Any], state: CallState) -> Outcome:
    status = p.call_status(payload)
    if status == 2 or state.answered:
        return Outcome.ANSWERED
    cause = p.cause(payload)
    if cause == "busy":
        return Outcome.BUSY
    if status is not None or cause == "no_answer":
        return Outcome.NOT_ANSWERED
    return Outcome.UNKNOWN


def handling_extension(
    direction: Direction,
    result: Outcome,
    payload: Mapping[str, Any],
    state: CallState,
    hangup_exts: tuple[str, ...],
) -> str | None:
    """The extension the call belongs to, or ``None`` when it cannot be told without guessing."""
    if direction == "out":
        return p.first(
            state.answered_by,
            state.calling_extension,
            hangup_exts,
            p.internal_field(payload, "CallerIDNum"),
            p.channel_extension(payload),
        )
    if result is Outcome.ANSWERED and state.answered_by:
        return state.answered_by
    candidates = hangup_exts or state.ringing
    return candidates[0] if len(candidates) == 1 else None


def upload_record(
    *,
    unique_id: str,
    phone: str,
    direction: Direction,
    result: Outcome,
    handler: str | None,
    payload: Mapping[str, Any],
    state: CallState,
    user_map: Mapping[str, int],
    external_phone: str | None,
    received_at: datetime | None,
) -> dict[str, Any]:
    """One ``calls/upload`` item (see the module docstring for every field's source)."""
    start = p.timestamp(payload, "StartTime")
    end = p.timestamp(payload, "EndTime")
    candidates = (start, state.first_seen_at, end, p.timestamp(payload, "DateReceived"))
    date = next((c for c in candidates if c is not None), received_at)
    if date is None:
        raise UnmappableEvent("StartTime", "no usable time for the call history record")
    call: dict[str, Any] = {
        "date": p.format_datetime(date),
        "type": direction,
        "phone": phone,
        "result": UPLOAD_RESULT[result],
        "externalId": unique_id,
    }
    if result is Outcome.ANSWERED:
        duration = p.seconds_between(start, end)
        if duration is None:
            duration = p.seconds_between(state.first_seen_at, received_at)
        if duration is not None:
            call["duration"] = duration
        waiting = p.seconds_between(state.first_seen_at, state.answered_at)
        if waiting is not None:
            call["durationWaiting"] = waiting
    elif result is not Outcome.UNKNOWN:
        call["duration"] = 0
    if handler is not None:
        if handler in user_map:
            call["userId"] = user_map[handler]
        else:
            call["code"] = handler
    url = p.record_url(payload)
    if url is not None:
        call["recordUrl"] = url
    if external_phone is not None:
        call["externalPhone"] = external_phone
    return call
