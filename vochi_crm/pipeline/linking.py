"""Answers that happen on another call's channel: follow-me and forwarding.

With follow-me the PBX does not ring the managers on the customer's own channel: it dials each of
them on a new channel (a new ``UniqueId``), and the leg that is picked up is bridged with the
customer *on that leg's id*. The customer's call (the one RetailCRM knows, by its ``UniqueId``)
then ends with a hangup that carries no ``CallStatus``, no extension and no bridge of its own, and
would reach the call history as "unknown", nobody's call (scenario ``followme_call``).

The link: a ``bridge`` of another call of the same unit, between this call's first event and its
hangup, whose one side is the customer's number. Its other side is the extension that answered —
or, for a leg forwarded to a mobile, nobody we can name, but the call *was* answered.

Pure, like the rest of :mod:`vochi_crm.pipeline`: the worker reads the candidate bridges from the
queue table and folds them in with :func:`link_answer` before mapping the hangup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vochi_crm.pipeline import payload as p
from vochi_crm.pipeline.callstate import CallState

LINKABLE_EVENTS = frozenset({"hangup", "download"})
MAX_LEGS = 50
"""Bridges with the customer looked at for one call (one per leg that picked up)."""


@dataclass(frozen=True)
class Leg:
    """A ``bridge`` event of another call, as stored."""

    payload: Mapping[str, Any]
    received_at: datetime | None
    """On the same clock as :attr:`CallState.first_seen_at` (the PBX's wall clock)."""


def customer_to_link(
    event_type: str, payload: Mapping[str, Any], state: CallState
) -> str | None:
    """The customer's number to look for on other legs, or ``None`` when nothing is to be linked:
    only the end of an incoming call whose own events never said it was answered."""
    if event_type not in LINKABLE_EVENTS or state.answered or state.direction == "out":
        return None
    if p.call_type(payload) in (1, 2) or p.call_status(payload) is not None:
        return None  # outgoing/internal, or the hangup itself says what happened
    raw = p.text(payload, "Phone")
    if p.is_internal(raw):
        return None
    return p.phone_digits(raw) or state.phone


def link_answer(state: CallState, customer: str, legs: Iterable[Leg]) -> CallState:
    """``state`` answered by the first leg that bridged ``customer`` with somebody (in arrival
    order); unchanged when no leg did."""
    for leg in legs:
        sides = (p.text(leg.payload, "CallerIDNum"), p.text(leg.payload, "ConnectedLineNum"))
        for mine, other in (sides, sides[::-1]):
            if p.is_internal(mine) or p.phone_digits(mine) != customer:
                continue
            if other is None or p.phone_digits(other) == customer:
                continue  # the customer alone: nobody answered on this leg
            return state.evolve(
                answered=True,
                answered_by=other if p.is_internal(other) else state.answered_by,
                answered_at=state.answered_at or leg.received_at,
            )
    return state
