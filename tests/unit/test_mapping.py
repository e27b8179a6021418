"""Unit tests of the pure Asterisk → RetailCRM mapping (vochi_crm.pipeline.mapping and helpers)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vochi_crm.pipeline import (
    CallEventRequest,
    CallState,
    CallsUploadRequest,
    Plan,
    SkipCode,
    UnmappableEvent,
    is_live,
    plan_event,
)
from vochi_crm.pipeline import payload as p
from vochi_crm.pipeline.history import HANGUP_STATUS, UPLOAD_RESULT, Outcome

UM = {"150": 15, "151": 16, "152": 18}
UID = "1757765248.0"
PHONE = "375291110001"
T0 = datetime(2025, 9, 13, 15, 7, 29)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%d %H:%M:%S")


def dial_in(*exts: str, **extra: Any) -> dict[str, Any]:
    return {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "Extensions": list(exts), **extra}


def dial_out(ext: str = "151", **extra: Any) -> dict[str, Any]:
    return {"UniqueId": UID, "Phone": PHONE, "CallType": 1, "Extensions": [ext], **extra}


def hangup(status: Any = "2", *exts: str, call_type: Any = 0, **extra: Any) -> dict[str, Any]:
    body = {
        "UniqueId": UID,
        "Phone": PHONE,
        "CallType": call_type,
        "CallStatus": status,
        "StartTime": ts(0),
        "EndTime": ts(40),
        "Extensions": list(exts),
    }
    body.update(extra)
    return body


def bridge(caller: str, connected: str, **extra: Any) -> dict[str, Any]:
    return {"UniqueId": UID, "CallerIDNum": caller, "ConnectedLineNum": connected, **extra}


def run(
    events: list[tuple[str, Mapping[str, Any], float]],
    user_map: Mapping[str, int] = UM,
    **kw: Any,
) -> tuple[list[Plan], CallState]:
    """Replay (event_type, payload, received second) for one call; the plans and final state."""
    state: CallState | None = None
    plans = []
    for kind, body, second in events:
        plan = plan_event(kind, body, user_map, state, received_at=at(second), **kw)
        plans.append(plan)
        state = plan.state
    assert state is not None
    return plans, state


def events_of(plan: Plan) -> list[dict[str, Any]]:
    return [r.event for r in plan.requests if isinstance(r, CallEventRequest)]


def uploads_of(plan: Plan) -> list[dict[str, Any]]:
    return [c for r in plan.requests if isinstance(r, CallsUploadRequest) for c in r.calls]


# ------------------------------------------------------------------------------------ is_live


@pytest.mark.parametrize(
    ("kind", "body", "live"),
    [
        ("dial", {}, True),
        (" DIAL ", {}, True),
        ("dial", None, True),
        ("dial", {"origin": "download"}, False),
        ("hangup", {}, False),
        ("download", {}, False),
        ("start", {}, False),
        ("bridge", {}, False),
        ("new_callerid", {}, False),
        ("bridge_leave", {}, False),
        ("whatever", {}, False),
    ],
)
def test_is_live_only_for_ring_pop_ups(kind: str, body: Any, live: bool) -> None:
    assert is_live(kind, body) is live


# ------------------------------------------------------------------------ event types, errors


def test_unknown_event_type_is_a_skip_not_an_error() -> None:
    state = CallState(phone=PHONE)
    plan = plan_event("transfer", {"UniqueId": UID}, UM, state)
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.UNKNOWN_EVENT_TYPE
    assert plan.state == state
    assert plan_event(123, {}, UM).skip is not None  # type: ignore[arg-type]


def test_payload_that_is_not_an_object_is_unmappable() -> None:
    with pytest.raises(UnmappableEvent) as err:
        plan_event("hangup", ["not", "a", "dict"], UM)  # type: ignore[arg-type]
    assert err.value.field == "payload"
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith("payload:")


@pytest.mark.parametrize(
    "kind", ["start", "new_callerid", "bridge_create", "bridge_leave", "bridge_destroy"]
)
def test_events_without_a_retailcrm_call(kind: str) -> None:
    body = {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "Extensions": ["151"]}
    plan = plan_event(kind, body, UM)
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.NO_REQUEST_FOR_EVENT
    assert plan.skip_reason is not None and plan.skip_reason.startswith("no_request_for_event")


def test_start_records_phone_direction_trunk_and_first_time() -> None:
    plan = plan_event(
        "start",
        {"UniqueId": UID, "Phone": "+" + PHONE, "CallType": "0", "Trunk": "0001363"},
        UM,
        received_at=at(0),
    )
    assert plan.state == CallState(direction="in", phone=PHONE, trunk="0001363", first_seen_at=T0)


def test_start_of_an_internal_leg_records_no_phone() -> None:
    plan = plan_event("start", {"UniqueId": UID, "Phone": "151", "CallType": 1}, UM)
    assert plan.state.phone is None and plan.state.direction is None


# ---------------------------------------------------------------------------- incoming dial


def test_incoming_dial_pops_up_for_every_ringing_extension() -> None:
    plan = plan_event("dial", dial_in("150", "151", "152"), UM, received_at=at(1))
    assert plan.requests == (
        CallEventRequest(
            {
                "phone": PHONE,
                "type": "in",
                "codes": ["150", "151", "152"],
                "userIds": [15, 16, 18],
                "callExternalId": UID,
            }
        ),
    )
    assert plan.skip is None
    assert plan.state.ringing == ("150", "151", "152")
    assert plan.state.notified == ("150", "151", "152")
    assert plan.state.first_seen_at == at(1)
    assert plan.state.direction == "in"


def test_call_type_as_string_and_phone_with_plus_and_spaces() -> None:
    body = dial_in("151", CallType="0", Phone="+375 29 111-00-01")
    (event,) = events_of(plan_event("dial", body, UM))
    assert event["type"] == "in"
    assert event["phone"] == PHONE


def test_unmapped_extensions_get_codes_but_never_a_user_id() -> None:
    (event,) = events_of(plan_event("dial", dial_in("151", "153"), UM))
    assert event["codes"] == ["151", "153"]
    assert event["userIds"] == [16]
    (event,) = events_of(plan_event("dial", dial_in("153"), UM))
    assert event["codes"] == ["153"]
    assert "userIds" not in event


def test_empty_and_external_extensions_are_dropped() -> None:
    body = dial_in("", "151", "375293330003", "151", " 152 ")
    (event,) = events_of(plan_event("dial", body, UM))
    assert event["codes"] == ["151", "152"]


def test_extensions_as_bare_string_and_singular_extension() -> None:
    (event,) = events_of(plan_event("dial", {**dial_in(), "Extensions": "151"}, UM))
    assert event["codes"] == ["151"]
    (event,) = events_of(plan_event("dial", {**dial_in(), "Extension": "152"}, UM))
    assert event["codes"] == ["152"]
    (event,) = events_of(plan_event("dial", {**dial_in(), "Extensions": [151]}, UM))
    assert event["codes"] == ["151"]


def test_dial_with_no_internal_extension_is_skipped_but_remembered() -> None:
    plan = plan_event("dial", dial_in(""), UM, received_at=at(0))
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.NO_INTERNAL_EXTENSION
    assert plan.state.phone == PHONE and plan.state.direction == "in"


def test_external_phone_comes_from_the_trunk_mapping() -> None:
    body = dial_in("151", Trunk="0001363")
    (event,) = events_of(plan_event("dial", body, UM, trunk_phones={"0001363": "375172000000"}))
    assert event["externalPhone"] == "375172000000"
    (event,) = events_of(plan_event("dial", body, UM, trunk_phones={"other": "1"}))
    assert "externalPhone" not in event
    (event,) = events_of(plan_event("dial", body, UM))
    assert "externalPhone" not in event


def test_dial_after_the_hangup_produces_nothing() -> None:
    plans, _ = run([("hangup", hangup("0", "151"), 10), ("dial", dial_in("151"), 11)])
    assert plans[1].requests == ()
    assert plans[1].skip is not None and plans[1].skip.code is SkipCode.CALL_ALREADY_ENDED


def test_dial_after_the_bridge_pops_up_only_for_who_answered() -> None:
    plans, state = run(
        [("bridge", bridge(PHONE, "152"), 3), ("dial", dial_in("150", "151", "152"), 4)]
    )
    assert plans[0].requests == ()
    (event,) = events_of(plans[1])
    assert event["codes"] == ["152"] and event["userIds"] == [18]
    assert state.ringing == ("150", "151", "152")


def test_second_dial_only_notifies_new_extensions() -> None:
    plans, state = run(
        [
            ("dial", dial_in("150"), 0),
            ("dial", dial_in("150", "151"), 5),
            ("dial", dial_in("151"), 6),
        ]
    )
    assert events_of(plans[0])[0]["codes"] == ["150"]
    assert events_of(plans[1])[0]["codes"] == ["151"]
    assert plans[2].skip is not None and plans[2].skip.code is SkipCode.ALREADY_NOTIFIED
    assert state.first_seen_at == at(0)


def test_dial_uses_the_phone_from_start_when_it_has_none() -> None:
    plans, _ = run(
        [
            ("start", {"UniqueId": UID, "Phone": PHONE, "CallType": 0}, 0),
            ("dial", {"UniqueId": UID, "CallType": 0, "Extensions": ["151"]}, 1),
        ]
    )
    assert events_of(plans[1])[0]["phone"] == PHONE


def test_dial_without_any_phone_is_unmappable() -> None:
    with pytest.raises(UnmappableEvent) as err:
        plan_event("dial", {"UniqueId": UID, "CallType": 0, "Extensions": ["151"]}, UM)
    assert err.value.field == "Phone"


def test_dial_without_unique_id_is_unmappable() -> None:
    with pytest.raises(UnmappableEvent) as err:
        plan_event("dial", {**dial_in("151"), "UniqueId": ""}, UM)
    assert err.value.field == "UniqueId"


@pytest.mark.parametrize(
    "body",
    [
        {"UniqueId": UID, "Phone": "152", "CallType": 1, "Extension": "151"},
        {"UniqueId": UID, "Phone": "152", "CallType": 0, "Extensions": ["152"]},
        {"UniqueId": UID, "CallType": 2, "Extensions": ["151"]},
        {"UniqueId": UID, "CallType": "2", "Phone": "", "Extensions": ["151"]},
    ],
)
def test_internal_dials_are_skipped(body: dict[str, Any]) -> None:
    plan = plan_event("dial", body, UM)
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.INTERNAL_CALL


def test_call_type_2_dial_with_an_external_phone_is_a_real_call() -> None:
    (event,) = events_of(plan_event("dial", dial_in("151", CallType=2), UM))
    assert event["type"] == "in"


def test_user_map_ignores_malformed_entries() -> None:
    user_map: dict[str, Any] = {
        "150": True,
        "151": "16",
        "152": -3,
        "abc": 99,
        "375291110001": 77,
        "153": None,
    }
    body = dial_in("150", "151", "152", "153")
    (event,) = events_of(plan_event("dial", body, user_map))
    assert event["userIds"] == [16]


def test_shared_user_ids_are_not_repeated() -> None:
    (event,) = events_of(plan_event("dial", dial_in("150", "151"), {"150": 7, "151": 7}))
    assert event["userIds"] == [7]


# ---------------------------------------------------------------------------- outgoing dial


@pytest.mark.parametrize(
    "body",
    [
        {"Extensions": ["151"]},
        {"Extension": "151"},
        {"Extensions": [""], "CallerIDNum": "151"},
        {"Channel": "SIP/151-00000001"},
        {"Extensions": ["375293330003"], "Channel": "PJSIP/151-0000002a"},
    ],
)
def test_outgoing_dial_pops_up_for_the_calling_extension(body: dict[str, Any]) -> None:
    plan = plan_event("dial", {"UniqueId": UID, "Phone": PHONE, "CallType": 1, **body}, UM)
    assert plan.requests == (
        CallEventRequest(
            {
                "phone": PHONE,
                "type": "out",
                "codes": ["151"],
                "userIds": [16],
                "callExternalId": UID,
            }
        ),
    )
    assert plan.state.calling_extension == "151"
    assert plan.state.direction == "out"


def test_outgoing_dial_without_extension_is_skipped() -> None:
    plan = plan_event("dial", {"UniqueId": UID, "Phone": PHONE, "CallType": 1}, UM)
    assert plan.skip is not None and plan.skip.code is SkipCode.NO_CALLING_EXTENSION


def test_outgoing_dial_from_an_unmapped_extension_sends_the_code_only() -> None:
    (event,) = events_of(plan_event("dial", dial_out("159"), UM))
    assert event == {"phone": PHONE, "type": "out", "codes": ["159"], "callExternalId": UID}


def test_repeated_outgoing_dial_is_not_notified_twice() -> None:
    plans, _ = run([("dial", dial_out(), 0), ("dial", dial_out(), 1)])
    assert plans[1].skip is not None and plans[1].skip.code is SkipCode.ALREADY_NOTIFIED


# ------------------------------------------------------------------------------------ bridge


def test_bridge_records_the_answering_extension_of_an_incoming_call() -> None:
    plan = plan_event("bridge", bridge(PHONE, "151"), UM, received_at=at(5))
    assert plan.requests == ()
    assert plan.state.answered and plan.state.answered_by == "151"
    assert plan.state.answered_at == at(5)


def test_bridge_records_our_side_of_an_outgoing_call() -> None:
    plan = plan_event("bridge", bridge("151", "+" + PHONE), UM)
    assert plan.state.answered_by == "151"


def test_bridge_falls_back_to_the_channel_name() -> None:
    body = {"UniqueId": UID, "CallerIDNum": PHONE, "Channel": "SIP/152-0000000c"}
    assert plan_event("bridge", body, UM).state.answered_by == "152"
    trunk = {"UniqueId": UID, "CallerIDNum": PHONE, "Channel": "SIP/0001363-00000004"}
    plan = plan_event("bridge", trunk, UM)
    assert plan.state.answered and plan.state.answered_by is None


def test_bridge_between_two_extensions_changes_nothing() -> None:
    state = CallState(answered=True, answered_by="151")
    plan = plan_event("bridge", bridge("151", "152"), UM, state)
    assert plan.state == state
    assert plan.skip is not None and plan.skip.code is SkipCode.INTERNAL_CALL


def test_bridge_without_unique_id_is_skipped() -> None:
    plan = plan_event("bridge", {**bridge(PHONE, "151"), "UniqueId": ""}, UM)
    assert plan.skip is not None and plan.skip.code is SkipCode.NO_UNIQUE_ID
    assert plan.state == CallState()


def test_later_bridge_moves_the_handler_but_keeps_the_answer_time() -> None:
    _, state = run([("bridge", bridge(PHONE, "151"), 3), ("bridge", bridge(PHONE, "152"), 9)])
    assert state.answered_by == "152"
    assert state.answered_at == at(3)


def test_bridge_after_the_hangup_changes_nothing() -> None:
    plans, state = run([("hangup", hangup("0", "151"), 10), ("bridge", bridge(PHONE, "151"), 11)])
    assert plans[1].skip is not None and plans[1].skip.code is SkipCode.CALL_ALREADY_ENDED
    assert state.answered is False


# ------------------------------------------------------------------------------------ hangup


def test_answered_incoming_call_full_sequence() -> None:
    plans, state = run(
        [
            ("start", {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "Trunk": "0001363"}, 0),
            ("dial", dial_in("150", "151"), 1),
            ("bridge", bridge(PHONE, "151"), 6),
            ("hangup", hangup("2", "151", RecordUrl="https://bot.vochi.by/recordings/file/x"), 40),
        ],
        trunk_phones={"0001363": "375172000000"},
    )
    assert plans[3].requests == (
        CallEventRequest(
            {
                "phone": PHONE,
                "type": "hangup",
                "codes": ["150", "151"],
                "userIds": [15, 16],
                "callExternalId": UID,
                "hangupStatus": "answered",
                "externalPhone": "375172000000",
            }
        ),
        CallsUploadRequest(
            [
                {
                    "date": ts(0),
                    "type": "in",
                    "phone": PHONE,
                    "result": "answered",
                    "duration": 40,
                    "durationWaiting": 6,
                    "externalId": UID,
                    "userId": 16,
                    "recordUrl": "https://bot.vochi.by/recordings/file/x",
                    "externalPhone": "375172000000",
                }
            ]
        ),
    )
    assert state.ended


def test_unanswered_call_uses_the_two_different_enums() -> None:
    plans, _ = run([("dial", dial_in("151"), 0), ("hangup", hangup("0", "151"), 20)])
    (event,) = events_of(plans[1])
    (call,) = uploads_of(plans[1])
    assert event["hangupStatus"] == "no answered"
    assert call["result"] == "no answer"
    assert call["duration"] == 0
    assert "durationWaiting" not in call
    assert call["userId"] == 16  # the only extension that rang: its missed call


@pytest.mark.parametrize("status", [2, "2", " 2 "])
def test_call_status_forms(status: Any) -> None:
    (call,) = uploads_of(plan_event("hangup", hangup(status, "151"), UM))
    assert call["result"] == "answered"
    assert call["duration"] == 40


@pytest.mark.parametrize("cause", ["User busy", "busy", "17"])
def test_busy_cause(cause: str) -> None:
    plan = plan_event("hangup", hangup("0", "151", Cause=cause), UM)
    assert events_of(plan)[0]["hangupStatus"] == "busy"
    assert uploads_of(plan)[0]["result"] == "busy"


def test_no_status_and_no_bridge_is_an_unknown_outcome() -> None:
    body = {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "Extensions": ["151"]}
    plan = plan_event("hangup", {**body, "Cause": "Normal Clearing"}, UM, received_at=at(9))
    (event,) = events_of(plan)
    (call,) = uploads_of(plan)
    assert "hangupStatus" not in event
    assert call["result"] == "unknown"
    assert "duration" not in call
    assert call["date"] == ts(9)


def test_no_status_with_no_answer_cause_is_not_answered() -> None:
    body = {"UniqueId": UID, "Phone": PHONE, "Extensions": ["151"], "Cause": "No Answer"}
    assert uploads_of(plan_event("hangup", body, UM, received_at=at(1)))[0]["result"] == "no answer"


def test_no_status_after_a_bridge_is_answered() -> None:
    body = {"UniqueId": UID, "Phone": PHONE, "Cause": "Normal Clearing"}
    plans, _ = run(
        [
            ("start", {"UniqueId": UID, "Phone": PHONE, "CallType": 0}, 0),
            ("dial", dial_in("151"), 1),
            ("bridge", bridge(PHONE, "151"), 3),
            ("hangup", body, 30),
        ]
    )
    (call,) = uploads_of(plans[3])
    assert call == {
        "date": ts(0),
        "type": "in",
        "phone": PHONE,
        "result": "answered",
        "duration": 30,
        "durationWaiting": 3,
        "externalId": UID,
        "userId": 16,
    }


def test_blind_transfer_to_a_busy_extension_is_still_answered() -> None:
    """Scenario 2-19: 151 answered, transferred to busy 152; the final leg says CallStatus 0."""
    plans, _ = run(
        [
            ("dial", dial_in("150", "151", "152"), 0),
            ("bridge", bridge(PHONE, "151"), 4),
            ("hangup", hangup("0", "152"), 70),
        ]
    )
    assert events_of(plans[2])[0]["hangupStatus"] == "answered"
    (call,) = uploads_of(plans[2])
    assert call["result"] == "answered"
    assert call["userId"] == 16


def test_unanswered_call_that_rang_several_extensions_has_no_user() -> None:
    plans, _ = run([("dial", dial_in("150", "151"), 0), ("hangup", hangup("0"), 20)])
    (call,) = uploads_of(plans[1])
    assert "userId" not in call and "code" not in call
    (event,) = events_of(plans[1])
    assert event["codes"] == ["150", "151"]  # close every pop-up


def test_unanswered_call_without_state_uses_the_hangup_extensions() -> None:
    (call,) = uploads_of(plan_event("hangup", hangup("0", "152"), UM))
    assert call["userId"] == 18
    (call,) = uploads_of(plan_event("hangup", hangup("0", "150", "152"), UM))
    assert "userId" not in call and "code" not in call


def test_answered_call_without_state_uses_the_single_hangup_extension() -> None:
    plan = plan_event("hangup", hangup("2", "151"), UM)
    (call,) = uploads_of(plan)
    assert call["userId"] == 16
    assert events_of(plan)[0]["codes"] == ["151"]


def test_answered_call_with_several_hangup_extensions_has_no_user() -> None:
    (call,) = uploads_of(plan_event("hangup", hangup("2", "150", "151"), UM))
    assert "userId" not in call and "code" not in call


def test_unmapped_handler_gives_the_code_only() -> None:
    plans, _ = run([("bridge", bridge(PHONE, "159"), 3), ("hangup", hangup("2", "159"), 30)])
    (call,) = uploads_of(plans[1])
    assert call["code"] == "159"
    assert "userId" not in call
    (event,) = events_of(plans[1])
    assert event["codes"] == ["159"] and "userIds" not in event


def test_hangup_with_empty_extensions_and_no_state() -> None:
    plan = plan_event("hangup", hangup("2", ""), UM)
    assert [type(r) for r in plan.requests] == [CallsUploadRequest]
    assert [s.code for s in plan.partial] == [SkipCode.NOBODY_TO_NOTIFY]
    assert plan.skip is None
    (call,) = uploads_of(plan)
    assert call["result"] == "answered" and "userId" not in call and "code" not in call


def test_call_type_2_hangup_with_external_phone_is_a_real_call() -> None:
    # The external leg of a transferred call: direction from the state …
    plans, _ = run([("dial", dial_out("151"), 0), ("hangup", hangup("2", "152", call_type=2), 9)])
    (call,) = uploads_of(plans[1])
    assert call["type"] == "out" and call["userId"] == 16
    # … else incoming.
    (call,) = uploads_of(plan_event("hangup", hangup("2", "152", call_type=2), UM))
    assert call["type"] == "in" and call["userId"] == 18


@pytest.mark.parametrize(
    "body",
    [
        {"UniqueId": UID, "Phone": "152", "CallType": 2, "CallStatus": "2", "Extensions": ["150"]},
        {"UniqueId": UID, "CallType": 2, "CallStatus": 2, "Extensions": ["151"]},
        {"UniqueId": UID, "Phone": "151", "Cause": "Normal Clearing"},
        {"UniqueId": UID, "Phone": "151", "CallType": 0, "CallStatus": "2"},
    ],
)
def test_internal_hangups_are_skipped(body: dict[str, Any]) -> None:
    plan = plan_event("hangup", body, UM)
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.INTERNAL_CALL
    assert plan.state.ended


def test_hangup_without_phone_uses_the_state_or_is_unmappable() -> None:
    body = {"UniqueId": UID, "CallType": 0, "CallStatus": "0", "StartTime": ts(0)}
    with pytest.raises(UnmappableEvent) as err:
        plan_event("hangup", body, UM)
    assert err.value.field == "Phone"
    plan = plan_event("hangup", body, UM, CallState(phone=PHONE))
    assert uploads_of(plan)[0]["phone"] == PHONE


@pytest.mark.parametrize("kind", ["dial", "hangup", "download"])
@pytest.mark.parametrize("hidden", ["anonymous", "<unknown>", "", "Restricted", None])
def test_an_incoming_call_with_a_hidden_number_is_skipped(kind: str, hidden: str | None) -> None:
    body = {"UniqueId": UID, "Phone": hidden, "CallType": 0, "CallStatus": "2",
            "StartTime": ts(0), "EndTime": ts(30), "Extensions": ["151"]}
    plan = plan_event(kind, body, UM)
    assert plan.requests == ()
    assert plan.skip is not None and plan.skip.code is SkipCode.ANONYMOUS_CALLER
    assert (hidden or "empty") in plan.skip.detail


@pytest.mark.parametrize("kind", ["dial", "hangup"])
def test_an_outgoing_call_without_a_number_stays_unmappable(kind: str) -> None:
    body = {"UniqueId": UID, "Phone": "anonymous", "CallType": 1, "CallStatus": "2",
            "StartTime": ts(0), "EndTime": ts(30), "Extensions": ["151"]}
    with pytest.raises(UnmappableEvent) as err:
        plan_event(kind, body, UM)
    assert err.value.field == "Phone"


@pytest.mark.parametrize("kind", ["hangup", "download"])
def test_end_without_unique_id_is_unmappable(kind: str) -> None:
    body = hangup("2", "151")
    del body["UniqueId"]
    with pytest.raises(UnmappableEvent) as err:
        plan_event(kind, body, UM)
    assert err.value.field == "UniqueId"


@pytest.mark.parametrize("key", ["RecordUrl", "record_url", "recordUrl"])
def test_record_url_forms(key: str) -> None:
    url = "https://bot.vochi.by/recordings/file/0b9a"
    (call,) = uploads_of(plan_event("hangup", hangup("2", "151", **{key: url}), UM))
    assert call["recordUrl"] == url


def test_record_url_that_is_not_a_url_is_ignored() -> None:
    (call,) = uploads_of(plan_event("hangup", hangup("2", "151", record_url="file.wav"), UM))
    assert "recordUrl" not in call


def test_date_fallbacks() -> None:
    base = {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "CallStatus": "0"}
    first_seen = CallState(first_seen_at=at(1))

    def date(body: dict[str, Any], state: CallState | None, received: datetime | None) -> str:
        plan = plan_event("hangup", body, UM, state, received_at=received)
        return str(uploads_of(plan)[0]["date"])

    assert date({**base, "StartTime": ts(0)}, first_seen, at(9)) == ts(0)
    assert date({**base, "StartTime": ""}, first_seen, at(9)) == ts(1)
    assert date({**base, "StartTime": "garbage", "EndTime": ts(5)}, None, at(9)) == ts(5)
    assert date({**base, "DateReceived": ts(7)}, None, at(9)) == ts(7)
    assert date({**base, "StartTime": "2025-09-13T15:07:29"}, None, None) == ts(0)
    assert date(base, None, at(9)) == ts(9)
    with pytest.raises(UnmappableEvent) as err:
        plan_event("hangup", base, UM)
    assert err.value.field == "StartTime"


def test_duration_when_payload_times_are_missing_or_reversed() -> None:
    state = CallState(first_seen_at=at(0), answered=True, answered_by="151", answered_at=at(4))
    body = hangup("2", "151", StartTime=ts(30), EndTime=ts(10))  # reversed: unusable
    (call,) = uploads_of(plan_event("hangup", body, UM, state, received_at=at(25)))
    assert call["duration"] == 25
    assert call["durationWaiting"] == 4
    (call,) = uploads_of(plan_event("hangup", body, UM, state))  # nothing usable
    assert "duration" not in call


def test_duration_waiting_needs_one_clock() -> None:
    state = CallState(
        first_seen_at=datetime(2025, 9, 13, 12, 7, 29, tzinfo=UTC),
        answered=True,
        answered_by="151",
        answered_at=at(4),  # naive: incomparable, must not raise
    )
    (call,) = uploads_of(plan_event("hangup", hangup("2", "151"), UM, state))
    assert "durationWaiting" not in call
    assert call["duration"] == 40


def test_outgoing_calls_belong_to_the_calling_extension() -> None:
    plans, _ = run([("dial", dial_out("151"), 0), ("hangup", hangup("0", "151", call_type=1), 9)])
    (event,) = events_of(plans[1])
    (call,) = uploads_of(plans[1])
    assert event["codes"] == ["151"] and event["hangupStatus"] == "no answered"
    assert call["type"] == "out" and call["result"] == "no answer" and call["userId"] == 16


def test_outgoing_hangup_without_dial_uses_caller_id() -> None:
    body = hangup("2", "", call_type=1, CallerIDNum="152")
    (call,) = uploads_of(plan_event("hangup", body, UM))
    assert call["userId"] == 18 and call["type"] == "out"


def test_outgoing_leg_without_any_extension_is_skipped() -> None:
    """A follow-me leg to an employee's mobile: not somebody's outgoing call."""
    plans, _ = run(
        [
            ("start", {"UniqueId": UID, "Phone": "375293330003", "CallType": 1}, 0),
            ("hangup", {"UniqueId": UID, "Phone": "375293330003", "Cause": "No Answer"}, 4),
        ]
    )
    assert plans[1].skip is not None and plans[1].skip.code is SkipCode.NO_CALLING_EXTENSION


def test_download_sends_the_history_only() -> None:
    body = hangup(
        "2", "151", record_url="https://bot.vochi.by/recordings/file/1", origin="download"
    )
    plan = plan_event("download", body, UM)
    assert plan.requests == (
        CallsUploadRequest(
            [
                {
                    "date": ts(0),
                    "type": "in",
                    "phone": PHONE,
                    "result": "answered",
                    "duration": 40,
                    "externalId": UID,
                    "userId": 16,
                    "recordUrl": "https://bot.vochi.by/recordings/file/1",
                }
            ]
        ),
    )
    assert plan.state.ended


def test_download_after_the_hangup_uploads_again() -> None:
    """RetailCRM deduplicates by externalId (duplicateCalls); re-sending history is safe."""
    plans, _ = run([("hangup", hangup("2", "151"), 40), ("download", hangup("2", "151"), 300)])
    assert uploads_of(plans[0]) == uploads_of(plans[1])


# --------------------------------------------------------------------------- request types


def test_request_types_render_form_fields_and_log_names() -> None:
    event = CallEventRequest({"phone": PHONE, "type": "in", "codes": ["151"], "note": "Джуновый"})
    assert event.path == "/api/v5/telephony/call/event"
    assert event.http_method == "POST"
    assert event.log_event_type == "call_event:in"
    assert event.form() == {
        "event": '{"phone":"375291110001","type":"in","codes":["151"],"note":"Джуновый"}'
    }
    upload = CallsUploadRequest([{"externalId": UID}])
    assert upload.path == "/api/v5/telephony/calls/upload"
    assert upload.log_event_type == "calls_upload"
    assert json.loads(upload.form()["calls"]) == [{"externalId": UID}]


def test_enum_tables_never_use_the_wrong_words() -> None:
    assert set(HANGUP_STATUS.values()) <= {"answered", "busy", "cancel", "failed", "no answered"}
    assert set(UPLOAD_RESULT.values()) <= {
        "answered",
        "busy",
        "failed",
        "no answer",
        "not allowed",
        "unknown",
    }
    assert HANGUP_STATUS[Outcome.NOT_ANSWERED] == "no answered"
    assert UPLOAD_RESULT[Outcome.NOT_ANSWERED] == "no answer"
    assert "failed" not in HANGUP_STATUS.values() and "failed" not in UPLOAD_RESULT.values()


# ------------------------------------------------------------------------------- call state


def test_call_state_round_trips_through_json() -> None:
    _, state = run(
        [
            ("start", {"UniqueId": UID, "Phone": PHONE, "CallType": 0, "Trunk": "0001363"}, 0),
            ("dial", dial_in("150", "151"), 1),
            ("bridge", bridge(PHONE, "151"), 5),
            ("hangup", hangup("2", "151"), 40),
        ]
    )
    stored = json.loads(json.dumps(state.to_dict()))
    assert CallState.from_dict(stored) == state


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        [],
        {"direction": "sideways", "ringing": "151", "answered": "yes", "first_seen_at": "x"},
        {"phone": 375, "notified": [1, None, "151"], "answered_at": 17},
    ],
)
def test_call_state_from_garbage_is_tolerant(stored: Any) -> None:
    state = CallState.from_dict(stored)
    assert state.direction is None and state.answered is False
    assert state.first_seen_at is None and state.answered_at is None
    assert all(isinstance(e, str) for e in (*state.ringing, *state.notified))


# --------------------------------------------------------------------------- payload readers


@pytest.mark.parametrize(
    ("value", "internal"),
    [
        ("15", True),
        ("151", True),
        ("15099", True),
        (" 151 ", True),
        ("1", False),
        ("150999", False),
        ("+151", False),
        ("15a", False),
        ("", False),
        (None, False),
        ("١٥١", False),  # Arabic-Indic digits are digits to str.isdigit, not to Asterisk
    ],
)
def test_is_internal(value: str | None, internal: bool) -> None:
    assert p.is_internal(value) is internal


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), ("1", 1), (" 2 ", 2), (3, None), ("x", None), (None, None), (True, None), (1.0, None)],
)
def test_call_type_reader(value: Any, expected: int | None) -> None:
    assert p.call_type({"CallType": value}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2), (2, 2), ("0", 0), ("", None), (None, None), (False, None), ("two", None)],
)
def test_call_status_reader(value: Any, expected: int | None) -> None:
    assert p.call_status({"CallStatus": value}) == expected


def test_text_reader_handles_odd_types() -> None:
    assert p.text({"a": 151}, "a") == "151"
    assert p.text({"a": True}, "a") is None
    assert p.text({"a": ["x"]}, "a") is None
    assert p.text({"a": "  "}, "a") is None


def test_seconds_between() -> None:
    assert p.seconds_between(at(0), at(2.9)) == 2
    assert p.seconds_between(at(3), at(2)) is None
    assert p.seconds_between(None, at(2)) is None
    assert p.seconds_between(at(0), datetime(2025, 9, 13, tzinfo=UTC)) is None


# ------------------------------------------------------------------------- property checks

_VALUES: list[Any] = [
    None,
    "",
    " ",
    0,
    1,
    2,
    "0",
    "1",
    "2",
    "3",
    True,
    [],
    [""],
    ["151"],
    ["150", "151", "152"],
    ["375293330003", "152"],
    "151",
    "152",
    "159",
    PHONE,
    "+" + PHONE,
    "anonymous",
    "SIP/151-00000001",
    "SIP/0001363-00000004",
    ts(0),
    ts(30),
    "garbage",
    "No Answer",
    "User busy",
    "Normal Clearing",
    "https://bot.vochi.by/recordings/file/1",
    {"nested": 1},
    1.5,
]
_KEYS = [
    "UniqueId",
    "Phone",
    "CallType",
    "CallStatus",
    "Extensions",
    "Extension",
    "CallerIDNum",
    "ConnectedLineNum",
    "Channel",
    "StartTime",
    "EndTime",
    "DateReceived",
    "Trunk",
    "Cause",
    "record_url",
]
_KINDS = ["start", "dial", "bridge", "new_callerid", "bridge_leave", "hangup", "download", "x"]
_VALID_HANGUP = {"answered", "busy", "cancel", "failed", "no answered"}
_VALID_RESULT = {"answered", "busy", "failed", "no answer", "not allowed", "unknown"}


def _random_payload(rng: random.Random) -> dict[str, Any]:
    body = {key: rng.choice(_VALUES) for key in _KEYS if rng.random() < 0.6}
    if rng.random() < 0.8:
        body["UniqueId"] = UID
    return body


def _known_extensions(body: Mapping[str, Any], state: CallState | None) -> set[str]:
    """Every extension the payload or the earlier events named: a userId must map one of them."""
    known = set(p.extensions(body))
    for key in ("CallerIDNum", "ConnectedLineNum"):
        if p.internal_field(body, key):
            known.add(str(p.internal_field(body, key)))
    if p.channel_extension(body):
        known.add(str(p.channel_extension(body)))
    if state is not None:
        known.update(state.ringing, state.notified)
        known.update(e for e in (state.answered_by, state.calling_extension) if e)
    return known


def _check_plan(plan: Plan, user_map: Mapping[str, int], known: set[str]) -> None:
    assert (plan.skip is None) == bool(plan.requests)
    for request in plan.requests:
        if isinstance(request, CallEventRequest):
            event = request.event
            assert event["type"] in {"in", "out", "hangup"}
            assert event["codes"], "call/event needs codes or userIds"
            assert event["phone"].isdigit()
            assert event.get("userIds", []) == list(
                dict.fromkeys(user_map[c] for c in event["codes"] if c in user_map)
            )
            if "hangupStatus" in event:
                assert event["type"] == "hangup"
                assert event["hangupStatus"] in _VALID_HANGUP
            json.dumps(request.form())
        else:
            for call in request.calls:
                assert call["result"] in _VALID_RESULT
                assert call["result"] not in {"missed", "no answered"}
                assert call["type"] in {"in", "out"}
                assert call["phone"].isdigit()
                datetime.strptime(call["date"], "%Y-%m-%d %H:%M:%S")
                assert not ("userId" in call and "code" in call)
                if "userId" in call:
                    handler = [e for e, uid in user_map.items() if uid == call["userId"]]
                    assert set(handler) & known, "a userId that maps no extension of this call"
                if "code" in call:
                    assert call["code"] in known and call["code"] not in user_map
                if call["result"] != "answered":
                    assert call.get("duration", 0) == 0
                    assert "durationWaiting" not in call
                json.dumps(request.form())


def test_random_payloads_never_crash_and_never_break_the_enums() -> None:
    rng = random.Random(20250913)
    seen: dict[str, int] = {"unmappable": 0, "events": 0, "uploads": 0, "skips": 0}
    fields: set[str] = set()
    for _ in range(500):
        state: CallState | None = None
        for step in range(rng.randint(1, 6)):
            kind = rng.choice(_KINDS)
            body = _random_payload(rng)
            try:
                plan = plan_event(kind, body, UM, state, received_at=at(step))
            except UnmappableEvent as exc:
                fields.add(exc.field)
                seen["unmappable"] += 1
                continue
            _check_plan(plan, UM, _known_extensions(body, state))
            seen["skips"] += plan.skip is not None
            seen["events"] += len(events_of(plan))
            seen["uploads"] += len(uploads_of(plan))
            state = plan.state
            assert CallState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    # The generator reaches every path, so the checks above are not vacuous.
    assert all(count > 20 for count in seen.values()), seen
    assert fields <= {"UniqueId", "Phone", "StartTime"}
