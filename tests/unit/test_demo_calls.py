"""The demo's call generator (pure) and the demo's reading of ``/stats``.

The generated calls must look like what the platform's call services post (the shapes of the
shared scenarios), pass the ingest validator, and mean to the mapping what their kind says.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vochi_crm.demo import DEMO_API_KEY, DEMO_MAPPING, summarize_stats
from vochi_crm.demo_calls import (
    KIND_ORDER,
    TIME_FORMAT,
    CallKind,
    DemoCall,
    generate_calls,
    schedule,
)
from vochi_crm.events import parse_event
from vochi_crm.pipeline import CallEventRequest, CallState, CallsUploadRequest, plan_event

TOKEN = "375290000999"
START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def one(kind: CallKind, seed: int = 7) -> DemoCall:
    [call] = generate_calls(1, token=TOKEN, start=START, seed=seed, kinds=[kind])
    assert call.kind is kind
    return call


def shape(call: DemoCall) -> list[tuple[str, str, int | None]]:
    """(event type, which leg, CallType) per event; legs named A (the call), B (another id)."""
    legs: dict[str, str] = {}
    out = []
    for event in call.events:
        uid = event.payload["UniqueId"]
        if uid not in legs:
            legs[uid] = "AB"[len(legs)]
        out.append((event.event_type, legs[uid], event.payload.get("CallType")))
    return out


def requests_for(call: DemoCall) -> list[tuple[str, dict[str, Any]]]:
    """Fold the pure mapping over the call's events, one state per UniqueId, as the worker does."""
    states: dict[str, CallState] = defaultdict(CallState)
    planned: list[tuple[str, dict[str, Any]]] = []
    for event in call.events:
        uid = event.payload["UniqueId"]
        received = START + timedelta(seconds=event.at)
        plan = plan_event(
            event.event_type, event.payload, DEMO_MAPPING, states[uid], received_at=received
        )
        states[uid] = plan.state
        for request in plan.requests:
            if isinstance(request, CallEventRequest):
                planned.append(("event", request.event))
            else:
                assert isinstance(request, CallsUploadRequest)
                [record] = request.calls
                planned.append(("upload", record))
    return planned


# -- each kind's shape -----------------------------------------------------------------------------


def test_incoming_answered() -> None:
    call = one(CallKind.INCOMING_ANSWERED)
    assert shape(call) == [("start", "A", 0), ("dial", "A", 0), ("bridge", "A", None),
                           ("hangup", "A", 0)]
    start, dial, bridge, hangup = (e.payload for e in call.events)
    phone = start["Phone"]
    assert start["Trunk"] == dial["Trunk"] == "0001363"
    assert dial["Extensions"] == ["150", "151", "152"]
    assert dial["Channel"].startswith("SIP/0001363-")
    assert bridge["CallerIDNum"] == phone and bridge["ConnectedLineNum"] in dial["Extensions"]
    assert bridge["BridgeUniqueid"]
    assert hangup["CallStatus"] == "2" and hangup["Extensions"] == [bridge["ConnectedLineNum"]]
    kinds = [(kind, body.get("type"), body.get("result")) for kind, body in requests_for(call)]
    assert kinds == [("event", "in", None), ("event", "hangup", None),
                     ("upload", "in", "answered")]
    upload = requests_for(call)[-1][1]
    assert upload["userId"] == DEMO_MAPPING[bridge["ConnectedLineNum"]]
    assert upload["duration"] > 0


def test_incoming_missed_rang_several_extensions() -> None:
    call = one(CallKind.INCOMING_MISSED)
    assert shape(call) == [("start", "A", 0), ("dial", "A", 0), ("hangup", "A", 0)]
    dial, hangup = call.events[1].payload, call.events[2].payload
    assert len(dial["Extensions"]) >= 2
    assert hangup["CallStatus"] == "0"
    planned = requests_for(call)
    assert [body.get("type") for _, body in planned] == ["in", "hangup", "in"]
    assert planned[1][1]["hangupStatus"] == "no answered"
    assert planned[2][1]["result"] == "no answer"
    assert sorted(planned[0][1]["codes"]) == sorted(dial["Extensions"])


def test_outgoing_answered() -> None:
    call = one(CallKind.OUTGOING_ANSWERED)
    assert shape(call) == [("dial", "A", 1), ("bridge", "A", None), ("hangup", "A", 1)]
    dial, bridge, hangup = (e.payload for e in call.events)
    caller = dial["Extensions"][0]
    assert dial["Channel"].startswith(f"SIP/{caller}-")
    assert bridge["CallerIDNum"] == caller and bridge["ConnectedLineNum"] == dial["Phone"]
    assert hangup["CallStatus"] == "2"
    planned = requests_for(call)
    assert [body.get("type") for _, body in planned] == ["out", "hangup", "out"]
    assert planned[2][1]["userId"] == DEMO_MAPPING[caller]


def test_blind_transfer_from_151_to_152() -> None:
    call = one(CallKind.TRANSFER)
    assert shape(call) == [
        ("start", "A", 0),
        ("dial", "A", 0),
        ("bridge", "A", None),
        ("dial", "B", 2),
        ("bridge", "B", 2),
        ("bridge", "A", None),
        ("hangup", "B", 2),
        ("hangup", "A", 0),
    ]
    payloads = [e.payload for e in call.events]
    assert payloads[2]["ConnectedLineNum"] == "151"
    assert payloads[3]["Phone"] == "152" and payloads[3]["CallerIDNum"] == "151"
    assert payloads[5]["ConnectedLineNum"] == "152"
    bridges = {p["BridgeUniqueid"] for p in payloads if "BridgeUniqueid" in p}
    assert len(bridges) == 3
    planned = requests_for(call)
    # the consultation leg is internal: nothing for RetailCRM; the customer's call ends at 152
    assert {body.get("callExternalId", body.get("externalId")) for _, body in planned} == {
        call.unique_id
    }
    assert [body.get("type") for _, body in planned] == ["in", "hangup", "in"]
    assert planned[-1][1]["userId"] == DEMO_MAPPING["152"]
    assert planned[-1][1]["result"] == "answered"


def test_internal_call_sends_nothing() -> None:
    call = one(CallKind.INTERNAL)
    assert shape(call) == [("dial", "A", 2), ("bridge", "A", 2), ("hangup", "A", 2)]
    dial = call.events[0].payload
    assert dial["Phone"] in ("150", "151", "152")
    assert dial["CallerIDNum"] in ("150", "151", "152")
    assert dial["Phone"] != dial["CallerIDNum"]
    assert requests_for(call) == []


# -- a whole generation ----------------------------------------------------------------------------


def test_the_first_calls_cover_every_kind_then_a_mix() -> None:
    calls = generate_calls(60, token=TOKEN, start=START, seed=1)
    assert [c.kind for c in calls[: len(KIND_ORDER)]] == list(KIND_ORDER)
    assert {c.kind for c in calls[len(KIND_ORDER):]} == set(CallKind)


def test_same_seed_same_calls_and_no_seed_varies() -> None:
    def dump(calls: list[DemoCall]) -> str:
        return json.dumps([[e.payload for e in c.events] for c in calls])

    a = generate_calls(20, token=TOKEN, start=START, seed=42)
    b = generate_calls(20, token=TOKEN, start=START, seed=42)
    assert dump(a) == dump(b)
    assert dump(a) != dump(generate_calls(20, token=TOKEN, start=START, seed=43))


def test_unique_ids_are_unique() -> None:
    calls = generate_calls(300, token=TOKEN, start=START, seed=3)
    ids = [uid for call in calls for uid in call.unique_ids]
    assert len(ids) == len(set(ids))
    channels = {e.payload["Channel"] for c in calls for e in c.events if "Channel" in e.payload}
    per_call_channels = sum(
        len({e.payload["Channel"] for e in c.events if "Channel" in e.payload}) for c in calls
    )
    assert len(channels) == per_call_channels  # no two calls share a channel
    bridges = [e.payload["BridgeUniqueid"] for c in calls for e in c.events
               if "BridgeUniqueid" in e.payload]
    assert len(bridges) == len(set(bridges))
    # a later run (other start) never reuses an id of this one, even with the same seed
    later = generate_calls(300, token=TOKEN, start=START + timedelta(seconds=5), seed=3)
    assert not set(ids) & {uid for call in later for uid in call.unique_ids}


def test_times_are_consistent() -> None:
    calls = generate_calls(100, token=TOKEN, start=START, seed=5)
    offsets = [c.offset for c in calls]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    for call in calls:
        first_seen: dict[str, float] = {}
        previous = call.events[0].at
        for index, event in enumerate(call.events):
            assert event.delay >= 0
            if index == 0:
                assert event.delay == 0.0
            else:
                assert event.at == pytest.approx(previous + event.delay, abs=0.002)
            previous = event.at
            payload = event.payload
            uid = payload["UniqueId"]
            first_seen.setdefault(uid, event.at)
            epoch, _, sequence = uid.partition(".")
            assert sequence.isdigit()
            leg_start = START + timedelta(seconds=first_seen[uid])
            assert int(epoch) == int(leg_start.timestamp())
            if event.event_type == "hangup":
                started = datetime.strptime(payload["StartTime"], TIME_FORMAT)
                ended = datetime.strptime(payload["EndTime"], TIME_FORMAT)
                assert payload["DateReceived"] == payload["EndTime"]
                assert started == leg_start.replace(tzinfo=None, microsecond=0)
                expected = (event.at - first_seen[uid])
                assert abs((ended - started).total_seconds() - expected) <= 1
                assert ended >= started


def test_every_event_passes_the_ingest_validator() -> None:
    for call in generate_calls(50, token=TOKEN, start=START, seed=9):
        for event in call.events:
            parsed = parse_event(json.dumps(event.body("demo")).encode())
            assert parsed.enterprise_number == "demo"
            assert parsed.unique_id == event.payload["UniqueId"]
            assert parsed.queued
            assert event.payload["Token"] == TOKEN


def test_schedule_scales_by_speed_and_keeps_each_call_in_order() -> None:
    calls = generate_calls(30, token=TOKEN, start=START, seed=11)
    real = schedule(calls, 1.0)
    fast = schedule(calls, 10.0)
    assert len(real) == sum(len(c.events) for c in calls)
    assert [s.due for s in real] == sorted(s.due for s in real)
    assert [s.event for s in fast] == [s.event for s in real]
    for a, b in zip(real, fast, strict=True):
        assert b.due == pytest.approx(a.due / 10.0)
    for call in calls:
        assert [s.event for s in real if s.call is call] == list(call.events)
    with pytest.raises(ValueError, match="speed"):
        schedule(calls, 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_calls(-1, token=TOKEN, start=START)
    with pytest.raises(ValueError, match="extensions"):
        generate_calls(1, token=TOKEN, start=START, extensions=["150"])
    assert generate_calls(0, token=TOKEN, start=START) == []


# -- the demo's reading of /stats and its constants ------------------------------------------------


def test_summarize_stats_reads_the_units_numbers() -> None:
    stats = {
        "ingest": {"accepted": 21, "duplicates": 0, "batches": 9},
        "delivery": {
            "leader": True,
            "in_flight": 0,
            "queue": [{"unit": "0367", "pending": 4, "oldest_pending_seconds": 1.0},
                      {"unit": "demo", "pending": 2, "oldest_pending_seconds": 0.5}],
            "per_unit": {
                "demo": {"delivered": 9, "skipped": 13, "failed": 1, "expired": 1,
                         "retried": 2, "requests_ok": 13, "requests_error": 2,
                         "last_success": "x", "last_error": "503 from RetailCRM"},
                "0367": {"delivered": 100, "requests_ok": 100},
            },
            "retailcrm_latency_ms": {"p50": 3.7, "p90": 9.0, "p99": 21.8, "samples": 13},
            "alerts": [{"unit": "demo", "reason": "auth", "message": "wrong API key"}],
        },
    }
    summary = summarize_stats(stats, "demo")
    assert summary.ingest_accepted == 21
    assert (summary.delivered, summary.skipped, summary.failed, summary.expired) == (9, 13, 1, 1)
    assert summary.processed == 24 and summary.failures == 2
    assert (summary.requests_ok, summary.requests_error, summary.requests) == (13, 2, 15)
    assert summary.queue_pending == 2 and not summary.idle
    assert (summary.latency_p50_ms, summary.latency_p99_ms) == (3.7, 21.8)
    assert summary.alerts == ("wrong API key",)
    assert summary.last_error == "503 from RetailCRM"


def test_summarize_stats_tolerates_a_young_daemon() -> None:
    summary = summarize_stats({"ingest": None, "delivery": None}, "demo")
    assert summary.processed == 0 and summary.requests == 0 and summary.failures == 0
    assert not summary.idle  # no dispatcher yet: not "delivered"
    idle = summarize_stats({"delivery": {"leader": True, "queue": [], "in_flight": 0}}, "demo")
    assert idle.idle and idle.latency_p50_ms is None


def test_demo_key_is_the_simulators() -> None:
    from vochi_daemon.simulator import DEMO_API_KEY as SIMULATOR_KEY
    from vochi_daemon.simulator.state import demo_account

    assert DEMO_API_KEY == SIMULATOR_KEY
    users = {u["id"] for u in demo_account()["users"] if u.get("active", True)}
    assert set(DEMO_MAPPING.values()) <= users
