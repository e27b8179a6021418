"""Follow-me linking (vochi_crm.pipeline.linking): which hangups look for another leg, and which
leg answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from vochi_crm.pipeline.callstate import CallState
from vochi_crm.pipeline.linking import Leg, customer_to_link, link_answer

CUSTOMER = "375291110001"
T0 = datetime(2025, 9, 13, 15, 7, 29)
RINGING = CallState(direction="in", phone=CUSTOMER, first_seen_at=T0)


def hangup(**extra: Any) -> dict[str, Any]:
    return {"UniqueId": "1.70", "Phone": CUSTOMER, "Cause": "Normal Clearing", **extra}


def leg(caller: str | None, connected: str | None, second: int = 3) -> Leg:
    payload = {"UniqueId": "1.71", "CallerIDNum": caller, "ConnectedLineNum": connected}
    return Leg(payload, T0.replace(second=T0.second + second))


@pytest.mark.parametrize("kind", ["hangup", "download"])
def test_the_end_of_an_unanswered_incoming_call_looks_for_its_customer(kind: str) -> None:
    assert customer_to_link(kind, hangup(), RINGING) == CUSTOMER
    assert customer_to_link(kind, hangup(Phone="+375 29 111-00-01"), CallState()) == CUSTOMER
    # the number from the call's earlier events when the hangup has none
    assert customer_to_link(kind, {"UniqueId": "1.70"}, RINGING) == CUSTOMER


@pytest.mark.parametrize(
    ("kind", "payload", "state"),
    [
        ("dial", hangup(), RINGING),
        ("bridge", hangup(), RINGING),
        ("hangup", hangup(), RINGING.evolve(answered=True)),  # its own bridge said it
        ("hangup", hangup(), RINGING.evolve(direction="out")),
        ("hangup", hangup(CallType=1), CallState()),
        ("hangup", hangup(CallType="2"), CallState()),
        ("hangup", hangup(CallStatus="0"), RINGING),  # the hangup says what happened
        ("hangup", hangup(Phone="151"), RINGING),  # internal
        ("hangup", {"UniqueId": "1.70"}, CallState()),  # no number anywhere
    ],
)
def test_nothing_to_link(kind: str, payload: dict[str, Any], state: CallState) -> None:
    assert customer_to_link(kind, payload, state) is None


def test_the_first_leg_that_bridged_the_customer_answers() -> None:
    legs = [
        leg("375290000009", "152", 1),  # another customer
        leg("151", "152", 2),  # extension to extension
        leg(CUSTOMER, CUSTOMER, 2),  # the customer alone
        leg(CUSTOMER, None, 2),
        leg(CUSTOMER, "151", 3),
        leg(CUSTOMER, "152", 4),
    ]
    linked = link_answer(RINGING, CUSTOMER, legs)
    assert linked.answered and linked.answered_by == "151"
    assert linked.answered_at == T0.replace(second=T0.second + 3)
    assert (linked.phone, linked.first_seen_at) == (RINGING.phone, RINGING.first_seen_at)


def test_either_side_of_the_bridge_may_be_the_customer() -> None:
    linked = link_answer(RINGING, CUSTOMER, [leg("152", "+" + CUSTOMER)])
    assert linked.answered_by == "152"


def test_a_leg_forwarded_to_a_mobile_answers_without_an_extension() -> None:
    linked = link_answer(RINGING, CUSTOMER, [leg(CUSTOMER, "375293330003")])
    assert linked.answered and linked.answered_by is None


def test_no_matching_leg_leaves_the_state_alone() -> None:
    assert link_answer(RINGING, CUSTOMER, []) is RINGING
    assert link_answer(RINGING, CUSTOMER, [leg("375290000009", "151")]) is RINGING


def test_an_earlier_answer_time_is_kept() -> None:
    earlier = RINGING.evolve(answered_at=T0)
    assert link_answer(earlier, CUSTOMER, [leg(CUSTOMER, "151")]).answered_at == T0
