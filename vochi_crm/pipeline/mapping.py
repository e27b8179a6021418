"""Asterisk call events → the RetailCRM requests they call for (reference A15, DESIGN §4 Delivery).

A pure fold over the events of one call (one ``UniqueId``)::

    plan = plan_event(event_type, payload, user_map, state, received_at=...)
    # send plan.requests in order, store plan.state for the next event of the same UniqueId

Rules:

* ``dial`` CallType 0 → ``call/event`` ``in`` to the ringing internal extensions (``codes``; the
  mapped ones also as ``userIds``); CallType 1 → ``out`` from the calling extension. A dial after
  the hangup sends nothing (the pop-up would be stale); a dial after a bridge (events out of order)
  pops up only for the extension that answered.
* ``bridge`` sends nothing: it records that the call was answered, and by which extension.
* ``hangup`` → ``call/event`` ``hangup`` (to everybody who got a pop-up, plus the handler), then
  ``calls/upload``; ``download`` (recovery of a missed hangup) → ``calls/upload`` only. Outcome,
  handler and upload fields: :mod:`vochi_crm.pipeline.history`.
* ``start``, ``new_callerid``, ``bridge_create|leave|destroy`` send nothing (start feeds the state).
* Internal calls are skipped: the other side (``Phone``) is an extension (2–5 digits), or CallType
  is 2 with no external number at all. A CallType 2 hangup *with* an external ``Phone`` is the
  external leg of a transferred call and is mapped as a real call (direction from the state, else
  ``in``). An outgoing leg with no extension anywhere is a follow-me/forwarding leg of another
  call, not somebody's call: skipped.
* An incoming call whose ``Phone`` is there but holds no digits ("anonymous", "<unknown>", empty)
  is a hidden caller id: skipped (``anonymous_caller``), since RetailCRM takes no call without a
  number. A ``Phone`` missing from the payload altogether is a broken event: unmappable.
* ``call/event`` needs ``codes`` or ``userIds``; with nobody to address the pop-up part is left out.

Error split: odd or incomplete input never raises; it yields a :class:`Plan` with a ``skip``
(nothing to send) or ``partial`` (a part left out). :class:`UnmappableEvent` (a ``ValueError``
naming the field) is raised only when an event that must produce a request lacks what every
request needs — no ``UniqueId``, no external phone for a non-internal dial/hangup/download, no time
at all for an upload, a payload that is not an object — so the worker marks it ``failed`` at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vochi_crm.pipeline import payload as p
from vochi_crm.pipeline.callstate import CallState, Direction
from vochi_crm.pipeline.history import (
    HANGUP_STATUS,
    handling_extension,
    outcome,
    upload_record,
)
from vochi_crm.pipeline.plan import (
    ASTERISK_EVENT_TYPES,
    CallEventRequest,
    CallsUploadRequest,
    Plan,
    PlannedRequest,
    Skip,
    SkipCode,
    UnmappableEvent,
)

EVENT_TYPES = frozenset(ASTERISK_EVENT_TYPES)

LIVE_EVENT_TYPES = frozenset({"dial"})
"""Events whose only product is a ring pop-up: worthless late, so they expire after a TTL."""


def normalize_event_type(event_type: object) -> str:
    return event_type.strip().lower() if isinstance(event_type, str) else ""


def is_live(event_type: str, payload: Mapping[str, Any] | None = None) -> bool:
    """Whether the event is a live ring event (expires after the TTL) rather than history.

    Only ``dial`` is live: its only product is the pop-up, useless once the phone stopped ringing.
    Everything else never expires: hangups and downloads are call history, and start/bridge only
    feed the call state the hangup needs (the worker must fold them even when late). A dial
    replayed by the recovery service (``origin: "download"``) is history too.
    """
    if normalize_event_type(event_type) not in LIVE_EVENT_TYPES:
        return False
    return not (isinstance(payload, Mapping) and payload.get("origin") == "download")


@dataclass(frozen=True)
class _Context:
    user_map: Mapping[str, int]
    trunk_phones: Mapping[str, str]
    received_at: datetime | None


def plan_event(
    event_type: str,
    payload: Mapping[str, Any],
    user_map: Mapping[str, int],
    state: CallState | None = None,
    *,
    received_at: datetime | None = None,
    trunk_phones: Mapping[str, str] | None = None,
) -> Plan:
    """Map one Asterisk event of a call to the RetailCRM requests it calls for.

    ``user_map``: the unit's extension → RetailCRM user id. ``state``: what earlier events of the
    same ``UniqueId`` told us (``None`` for the first). ``received_at``: when the event reached
    us, as a naive wall-clock time in the PBX's timezone (the zone of ``StartTime``); it times
    ``durationWaiting`` and is the last-resort ``date``. ``trunk_phones``: line id (``Trunk``) →
    the company number (DID) to report as ``externalPhone``.

    Raises :class:`UnmappableEvent` only as the module docstring describes.
    """
    current = state if state is not None else CallState()
    kind = normalize_event_type(event_type)
    if kind not in EVENT_TYPES:
        return _skip(current, SkipCode.UNKNOWN_EVENT_TYPE, f"unknown event type {event_type!r}")
    if not isinstance(payload, Mapping):
        raise UnmappableEvent("payload", "must be a JSON object")
    ctx = _Context(_clean_user_map(user_map), trunk_phones or {}, received_at)
    return _HANDLERS[kind](kind, payload, current, ctx)


# ------------------------------------------------------------------------------------- handlers


def _on_start(kind: str, payload: Mapping[str, Any], state: CallState, ctx: _Context) -> Plan:
    """The call entered the PBX: remember the number, direction, line and when it started."""
    new = _seen(state, payload, ctx)
    raw_phone = p.text(payload, "Phone")
    call_type = p.call_type(payload)
    if not p.is_internal(raw_phone) and call_type in (0, 1):
        phone = p.phone_digits(raw_phone)
        if phone is not None:
            new = new.evolve(phone=phone, direction=_direction(call_type, new))
    return _skip(new, SkipCode.NO_REQUEST_FOR_EVENT, "start: the ring pop-up is sent on dial")


def _on_dial(kind: str, payload: Mapping[str, Any], state: CallState, ctx: _Context) -> Plan:
    if state.ended:
        return _skip(state, SkipCode.CALL_ALREADY_ENDED, "dial after the hangup: stale pop-up")
    unique_id = _require_unique_id(payload)
    new = _seen(state, payload, ctx)
    call_type = p.call_type(payload)
    raw_phone = p.text(payload, "Phone")
    if p.is_internal(raw_phone):
        return _skip(new, SkipCode.INTERNAL_CALL, f"dial to extension {raw_phone}")
    phone = p.phone_digits(raw_phone) or state.phone
    if phone is None:
        return _no_phone("dial", payload, call_type, new)
    direction = _direction(call_type, state)
    new = new.evolve(phone=phone, direction=direction)
    trunk = new.trunk

    if direction == "out":
        caller = p.first(
            p.extensions(payload),
            p.internal_field(payload, "CallerIDNum"),
            p.channel_extension(payload),
        )
        if caller is None:
            return _skip(new, SkipCode.NO_CALLING_EXTENSION, "outgoing dial names no extension")
        new = new.evolve(calling_extension=new.calling_extension or caller)
        if caller in state.notified:
            return _skip(new, SkipCode.ALREADY_NOTIFIED, f"{caller} already got the pop-up")
        new = new.evolve(notified=(*state.notified, caller))
        return _plan(new, _call_event("out", phone, (caller,), unique_id, trunk, ctx))

    ringing = p.extensions(payload)
    new = new.evolve(ringing=p.unique((*state.ringing, *ringing)))
    # A bridge already arrived (events out of order): the call is answered, so only the
    # extension that answered still wants the call card; the others stopped ringing.
    targets = (state.answered_by,) if state.answered_by else ringing
    if not targets:
        return _skip(new, SkipCode.NO_INTERNAL_EXTENSION, "no internal extension rings")
    fresh = tuple(t for t in targets if t not in state.notified)
    if not fresh:
        return _skip(new, SkipCode.ALREADY_NOTIFIED, "every ringing extension got the pop-up")
    new = new.evolve(notified=(*state.notified, *fresh))
    return _plan(new, _call_event("in", phone, fresh, unique_id, trunk, ctx))


def _on_bridge(kind: str, payload: Mapping[str, Any], state: CallState, ctx: _Context) -> Plan:
    """Two channels talk: record that the call was answered and the extension on our side."""
    if p.text(payload, "UniqueId") is None:
        return _skip(state, SkipCode.NO_UNIQUE_ID, "bridge without UniqueId")
    if state.ended:
        return _skip(state, SkipCode.CALL_ALREADY_ENDED, "bridge after the hangup")
    caller = p.text(payload, "CallerIDNum")
    connected = p.text(payload, "ConnectedLineNum")
    if p.is_internal(caller) and p.is_internal(connected):
        # An extension-to-extension leg (consultation, internal call): says nothing about
        # who answered the customer.
        return _skip(state, SkipCode.INTERNAL_CALL, f"bridge between {caller} and {connected}")
    ours = p.first(
        connected if p.is_internal(connected) else None,
        caller if p.is_internal(caller) else None,
        p.channel_extension(payload),
    )
    new = state.evolve(
        answered=True,
        answered_by=ours or state.answered_by,
        answered_at=state.answered_at or ctx.received_at,
    )
    detail = f"bridge: answered by {ours}" if ours else "bridge: answered"
    return _skip(new, SkipCode.NO_REQUEST_FOR_EVENT, detail)


def _on_nothing(kind: str, payload: Mapping[str, Any], state: CallState, ctx: _Context) -> Plan:
    return _skip(state, SkipCode.NO_REQUEST_FOR_EVENT, f"{kind}: nothing to send")


def _on_end(kind: str, payload: Mapping[str, Any], state: CallState, ctx: _Context) -> Plan:
    """``hangup`` (pop-up close + history) and ``download`` (history only)."""
    unique_id = _require_unique_id(payload)
    new = state.evolve(ended=True)
    call_type = p.call_type(payload)
    raw_phone = p.text(payload, "Phone")
    if p.is_internal(raw_phone):
        return _skip(new, SkipCode.INTERNAL_CALL, f"the other side is extension {raw_phone}")
    phone = p.phone_digits(raw_phone) or state.phone
    if phone is None:
        return _no_phone(kind, payload, call_type, new)
    direction = _direction(call_type, state)
    result = outcome(payload, state)
    hangup_exts = p.extensions(payload)
    handler = handling_extension(direction, result, payload, state, hangup_exts)
    if direction == "out" and handler is None:
        return _skip(
            new,
            SkipCode.NO_CALLING_EXTENSION,
            "outgoing leg with no extension: a follow-me/forwarding leg of another call",
        )
    trunk = p.text(payload, "Trunk") or state.trunk
    upload = upload_record(
        unique_id=unique_id,
        phone=phone,
        direction=direction,
        result=result,
        handler=handler,
        payload=payload,
        state=state,
        user_map=ctx.user_map,
        external_phone=_external_phone(trunk, ctx),
        received_at=ctx.received_at,
    )

    requests: list[PlannedRequest] = []
    partial: list[Skip] = []
    if kind == "hangup":
        handler_codes = (handler,) if handler else ()
        codes = p.unique((*state.notified, *hangup_exts, *handler_codes))
        if codes:
            event = _call_event("hangup", phone, codes, unique_id, trunk, ctx)
            if result in HANGUP_STATUS:
                event["hangupStatus"] = HANGUP_STATUS[result]
            requests.append(CallEventRequest(event))
        else:
            # RetailCRM requires codes or userIds; with nobody to address, only history is sent.
            partial.append(Skip(SkipCode.NOBODY_TO_NOTIFY, "hangup pop-up: no extension known"))
    requests.append(CallsUploadRequest([upload]))
    return Plan(tuple(requests), new, None, tuple(partial))


_Handler = Callable[[str, Mapping[str, Any], CallState, _Context], Plan]
_HANDLERS: Mapping[str, _Handler] = {
    "start": _on_start,
    "dial": _on_dial,
    "new_callerid": _on_nothing,
    "bridge": _on_bridge,
    "bridge_create": _on_nothing,
    "bridge_leave": _on_nothing,
    "bridge_destroy": _on_nothing,
    "hangup": _on_end,
    "download": _on_end,
}


# -------------------------------------------------------------------------------------- helpers


def _call_event(
    event_type: str,
    phone: str,
    codes: tuple[str, ...],
    unique_id: str,
    trunk: str | None,
    ctx: _Context,
) -> dict[str, Any]:
    event: dict[str, Any] = {"phone": phone, "type": event_type, "codes": list(codes)}
    user_ids = list(dict.fromkeys(ctx.user_map[c] for c in codes if c in ctx.user_map))
    if user_ids:
        event["userIds"] = user_ids
    event["callExternalId"] = unique_id
    external_phone = _external_phone(trunk, ctx)
    if external_phone is not None:
        event["externalPhone"] = external_phone
    return event


def _external_phone(trunk: str | None, ctx: _Context) -> str | None:
    return ctx.trunk_phones.get(trunk) if trunk else None


def _direction(call_type: int | None, state: CallState) -> Direction:
    if call_type == 0:
        return "in"
    if call_type == 1:
        return "out"
    # CallType 2 on an external leg (transfers) or no CallType: trust what the call said earlier.
    return state.direction or "in"


def _seen(state: CallState, payload: Mapping[str, Any], ctx: _Context) -> CallState:
    return state.evolve(
        first_seen_at=state.first_seen_at or ctx.received_at,
        trunk=state.trunk or p.text(payload, "Trunk"),
    )


def _require_unique_id(payload: Mapping[str, Any]) -> str:
    unique_id = p.text(payload, "UniqueId")
    if unique_id is None:
        raise UnmappableEvent("UniqueId", "required to tie the call's records together")
    return unique_id


def _clean_user_map(user_map: Mapping[str, int]) -> dict[str, int]:
    """Only well-formed entries: a bad value must never put a wrong user id on a call."""
    clean: dict[str, int] = {}
    if not isinstance(user_map, Mapping):
        return clean
    for ext, user in user_map.items():
        if not isinstance(ext, str) or not p.is_internal(ext):
            continue
        if isinstance(user, bool):
            continue
        if isinstance(user, int) and user > 0:
            clean[ext.strip()] = user
        elif isinstance(user, str) and user.strip().isdigit() and int(user) > 0:
            clean[ext.strip()] = int(user)
    return clean


def _plan(state: CallState, event: dict[str, Any]) -> Plan:
    return Plan((CallEventRequest(event),), state)


def _no_phone(
    kind: str, payload: Mapping[str, Any], call_type: int | None, state: CallState
) -> Plan:
    """No external number in the event nor earlier in the call."""
    if call_type == 2:
        return _skip(state, SkipCode.INTERNAL_CALL, "CallType 2 with no external number")
    if call_type == 0 and "Phone" in payload:
        # a hidden caller id ("anonymous", "<unknown>", empty): RetailCRM needs a number for both
        # the pop-up and the history, so there is nothing to send — and nothing a replay can fix
        shown = p.text(payload, "Phone") or "empty"
        return _skip(state, SkipCode.ANONYMOUS_CALLER, f"the caller's number is hidden ({shown})")
    raise UnmappableEvent("Phone", f"a {kind} needs the external party's number")


def _skip(state: CallState, code: SkipCode, detail: str) -> Plan:
    return Plan((), state, Skip(code, detail))
