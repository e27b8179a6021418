"""Every shared Asterisk scenario replayed through the mapping, with the exact RetailCRM requests.

The ``EXPECTED`` table is the documentation of what each call type becomes in RetailCRM. Replay:
events in file order, one :class:`CallState` per ``UniqueId``, ``received_at`` = when the event is
played (the loader's ``base_time`` + cumulative delays), user mapping ``{"150": 15, "151": 16,
"152": 18}``, the ``WILL_BE_REPLACED`` UniqueId = ``UID``. Times below are seconds after
2025-09-13 15:07:29.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vochi_crm.pipeline import (
    CallEventRequest,
    CallState,
    CallsUploadRequest,
    PlannedRequest,
    SkipCode,
    plan_event,
)


def _scenarios_module() -> ModuleType:
    """``tests/scenarios.py``, imported by file path: ``tests`` is not a package on ``sys.path``
    (the unit tests run without a conftest or ``pythonpath`` setting)."""
    name = "vochi_tests_scenarios"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "scenarios.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before exec: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


S = _scenarios_module()

UM = {"150": 15, "151": 16, "152": 18}
UID = "1757765248.0"
T0 = datetime(2025, 9, 13, 15, 7, 29)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def ring(kind: str, phone: str, codes: list[str], uid: str = UID) -> CallEventRequest:
    event: dict[str, Any] = {"phone": phone, "type": kind, "codes": codes}
    user_ids = [UM[c] for c in codes if c in UM]
    if user_ids:
        event["userIds"] = user_ids
    event["callExternalId"] = uid
    return CallEventRequest(event)


def hangup(phone: str, codes: list[str], status: str | None, uid: str = UID) -> CallEventRequest:
    request = ring("hangup", phone, codes, uid)
    if status is not None:
        request.event["hangupStatus"] = status
    return request


def upload(**call: Any) -> CallsUploadRequest:
    call.setdefault("externalId", UID)
    return CallsUploadRequest([call])


A = "375291110001"  # the customer in most files
B = "375442220002"  # the customer in the "-real" incoming files

EXPECTED: dict[str, list[PlannedRequest]] = {
    # 1-1: outgoing 150 → +375291110001 via 0001363, bridged at 8 s, hangup at 38 s, answered.
    "1-1": [
        ring("out", A, ["150"]),
        hangup(A, ["150"], "answered"),
        upload(date=ts(0), type="out", phone=A, result="answered", duration=38,
               durationWaiting=8, userId=15),
    ],
    # 1-1-real: outgoing 151 → 375291110001, bridged at 13 s, hangup at 17 s, answered.
    "1-1-real": [
        ring("out", A, ["151"]),
        hangup(A, ["151"], "answered"),
        upload(date=ts(0), type="out", phone=A, result="answered", duration=17,
               durationWaiting=13, userId=16),
    ],
    # 2-1: incoming, rings 150/151/152, 150 answers at 7 s, hangup at 52 s.
    "2-1": [
        ring("in", A, ["150", "151", "152"]),
        hangup(A, ["150", "151", "152"], "answered"),
        upload(date=ts(0), type="in", phone=A, result="answered", duration=52,
               durationWaiting=7, userId=15),
    ],
    # 2-1-real: incoming, rings 150/151/152, 151 answers at 5 s, hangup at 50 s.
    "2-1-real": [
        ring("in", B, ["150", "151", "152"]),
        hangup(B, ["150", "151", "152"], "answered"),
        upload(date=ts(0), type="in", phone=B, result="answered", duration=50,
               durationWaiting=5, userId=16),
    ],
    # 2-19-real: an internal 150↔152 talk is going on (.32/.31: skipped); incoming .33 starts at
    # 12 s, 151 answers at 17 s and blind-transfers to busy 152; the hangup says CallStatus 0 and
    # Extensions [152], but the customer talked to 151: answered, handled by 151.
    "2-19-real": [
        ring("in", B, ["150", "151", "152"], "1757841115.33"),
        hangup(B, ["150", "151", "152"], "answered", "1757841115.33"),
        upload(date=ts(12), type="in", phone=B, result="answered", duration=74,
               durationWaiting=5, userId=16, externalId="1757841115.33"),
    ],
    # 3-1: internal 150 → 151: nothing reaches RetailCRM.
    "3-1": [],
    # busy_manager: 151 talks to 152 (internal, skipped); a customer rings 151 only, no answer.
    "busy_manager_call": [
        ring("in", A, ["151"], "1757773201.91"),
        hangup(A, ["151"], "no answered", "1757773201.91"),
        upload(date=ts(1), type="in", phone=A, result="no answer", duration=0, userId=16,
               externalId="1757773201.91"),
    ],
    # followme: incoming .70 with no dial; the PBX rings 151 on its own leg .71 (bridged with the
    # customer at 3.6 s) and two mobiles on .72/.73 (no extension: skipped). .70's own events never
    # say who answered; the .71 leg does (vochi_crm.pipeline.linking): the hangup goes to 151, the
    # history is answered by user 16, 15 s in all of which 3 s waiting.
    "followme_call": [
        hangup(A, ["151"], "answered", "1757773000.70"),
        upload(date=ts(0), type="in", phone=A, result="answered", duration=15, durationWaiting=3,
               userId=16, externalId="1757773000.70"),
    ],
    # simple_incoming: synthetic (no CallStatus, no times): answered by 151 per the bridge;
    # duration and waiting from the times the events arrived (12.5 s and 2.5 s, whole seconds).
    "simple_incoming_call": [
        ring("in", A, ["150", "151", "152"], "1757772742.60"),
        hangup(A, ["150", "151", "152"], "answered", "1757772742.60"),
        upload(date=ts(0), type="in", phone=A, result="answered", duration=12,
               durationWaiting=2, userId=16, externalId="1757772742.60"),
    ],
    # simple_outgoing: synthetic; 151 calls out (singular "Extension"), bridged at 3 s, ends 18 s.
    "simple_outgoing_call": [
        ring("out", A, ["151"], "1757772850.61"),
        hangup(A, ["151"], "answered", "1757772850.61"),
        upload(date=ts(0), type="out", phone=A, result="answered", duration=18,
               durationWaiting=3, userId=16, externalId="1757772850.61"),
    ],
    # transfer: 151 answers, consults 152 (.81: internal, skipped), the customer ends with 152:
    # the hangup closes both pop-ups; the history belongs to 152 (who held the call at the end).
    "transfer_call": [
        ring("in", A, ["151"], "1757773100.80"),
        hangup(A, ["151", "152"], "answered", "1757773100.80"),
        upload(date=ts(0), type="in", phone=A, result="answered", duration=22,
               durationWaiting=2, userId=18, externalId="1757773100.80"),
    ],
}  # fmt: skip

SKIPS: dict[str, list[SkipCode | None]] = {
    "2-19-real": [
        SkipCode.INTERNAL_CALL,
        SkipCode.NO_REQUEST_FOR_EVENT,
        None,
        SkipCode.NO_REQUEST_FOR_EVENT,
        None,
        SkipCode.INTERNAL_CALL,
    ],
    "3-1": [SkipCode.INTERNAL_CALL, SkipCode.INTERNAL_CALL],
    "followme_call": [
        *[SkipCode.NO_REQUEST_FOR_EVENT] * 5,
        SkipCode.NO_CALLING_EXTENSION,
        SkipCode.NO_CALLING_EXTENSION,
        None,
    ],
    "transfer_call": [
        SkipCode.NO_REQUEST_FOR_EVENT,
        None,
        SkipCode.NO_REQUEST_FOR_EVENT,
        SkipCode.INTERNAL_CALL,
        SkipCode.INTERNAL_CALL,
        SkipCode.NO_REQUEST_FOR_EVENT,
        None,
    ],
}


def replay(name: str) -> tuple[list[PlannedRequest], list[SkipCode | None]]:
    scenario = S.load_scenario(name, unique_id=UID, base_time=T0)
    states: dict[str, CallState] = {}
    legs = S.LegBook()
    requests: list[PlannedRequest] = []
    skips: list[SkipCode | None] = []
    for event in scenario.events:
        uid = event.data.get("UniqueId") or ""
        state = legs.link(event.event_type, event.data, states.get(uid, CallState()), event.at)
        plan = plan_event(event.event_type, event.data, UM, state, received_at=event.at)
        if uid:
            states[uid] = plan.state
        requests.extend(plan.requests)
        skips.append(plan.skip.code if plan.skip else None)
    return requests, skips


def test_every_scenario_file_has_an_expectation() -> None:
    assert S.scenario_names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_maps_to_exactly_these_requests(name: str) -> None:
    requests, skips = replay(name)
    assert requests == EXPECTED[name]
    if name in SKIPS:
        assert skips == SKIPS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_requests_respect_retailcrm_enums_and_the_mapping(name: str) -> None:
    requests, _ = replay(name)
    for request in requests:
        json.dumps(request.form())
        if isinstance(request, CallEventRequest):
            event = request.event
            assert event.get("hangupStatus", "answered") in {"answered", "busy", "no answered"}
            assert event.get("userIds", []) == [UM[c] for c in event["codes"] if c in UM]
        else:
            for call in request.calls:
                assert call["result"] not in {"missed", "no answered", "failed"}
                assert call["phone"].isdigit()
                assert call.get("userId") in {None, *UM.values()}


def test_replay_is_order_sensitive_where_it_must_be() -> None:
    """A dial replayed after its hangup (events out of order) sends no stale pop-up."""
    scenario = S.load_scenario("2-1-real", unique_id=UID, base_time=T0)
    state = CallState()
    sent: list[PlannedRequest] = []
    for event in [e for e in scenario.events if e.event_type != "dial"] + [
        e for e in scenario.events if e.event_type == "dial"
    ]:
        plan = plan_event(event.event_type, event.data, UM, state, received_at=event.at)
        state = plan.state
        sent.extend(plan.requests)
    assert [type(r) for r in sent] == [CallEventRequest, CallsUploadRequest]
    assert isinstance(sent[0], CallEventRequest) and sent[0].event["type"] == "hangup"


# ------------------------------------------------------------------------------ the loader


def test_loader_reads_the_shared_directory_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S.ENV_VAR, raising=False)
    directory = S.scenarios_dir()
    assert directory == Path(__file__).resolve().parents[2].parent / "shared" / "data" / (
        "asterisk-scenarios"
    )
    assert not (Path(__file__).resolve().parents[2] / "asterisk-scenarios").exists()


def test_loader_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "test_id": "x",
        "events": [{"event_type": "dial", "delay": 1.5, "data": {"UniqueId": "WILL_BE_REPLACED"}}],
    }
    (tmp_path / "only.json").write_text(json.dumps(body), encoding="utf-8")
    monkeypatch.setenv(S.ENV_VAR, str(tmp_path))
    assert S.scenario_names() == ["only"]
    scenario = S.load_scenario("only", unique_id="9.9", base_time=T0)
    (event,) = scenario.events
    assert event.data == {"UniqueId": "9.9"}
    assert event.at == T0 + timedelta(seconds=1.5)


def test_loader_rejects_unknown_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"events": [{"type": "dial", "delay_ms": 0, "data": {"Phone": "WILL_BE_REPLACED"}}]}
    (tmp_path / "bad.json").write_text(json.dumps(body), encoding="utf-8")
    monkeypatch.setenv(S.ENV_VAR, str(tmp_path))
    with pytest.raises(ValueError, match="Phone"):
        S.load_scenario("bad")


def test_loader_fills_placeholders() -> None:
    scenario = S.load_scenario("2-1-real", token="tok", unique_id=UID, base_time=T0)
    assert [e.event_type for e in scenario.events] == ["start", "dial", "bridge", "hangup"]
    assert [e.at for e in scenario.events] == [T0 + timedelta(seconds=s) for s in (0, 1, 5, 50)]
    hangup_data = scenario.events[-1].data
    assert hangup_data["UniqueId"] == UID
    assert hangup_data["Token"] == "tok"
    assert hangup_data["StartTime"] == ts(0)
    assert hangup_data["EndTime"] == hangup_data["DateReceived"] == ts(50)
    text = json.dumps([e.data for e in scenario.events])
    assert "WILL_BE_REPLACED" not in text


def test_loader_start_time_is_the_first_event_of_the_same_unique_id() -> None:
    scenario = S.load_scenario("2-19-real", base_time=T0)
    first_hangup, second_hangup = [e for e in scenario.events if e.event_type == "hangup"]
    assert first_hangup.data["StartTime"] == ts(12)
    assert second_hangup.data["StartTime"] == ""  # the file's own empty value is kept


def test_loader_gives_fresh_unique_ids_and_reads_both_formats() -> None:
    one = S.load_scenario("simple_outgoing_call")
    assert one.events[1].delay == 3.0  # "delay" in seconds
    two, three = S.load_scenario("1-1"), S.load_scenario("1-1")
    assert two.unique_id != three.unique_id
    assert two.events[1].delay == 8.0  # "delay_ms"
    assert {e.data["UniqueId"] for e in two.events} == {two.unique_id}
