"""Generate call events the way the call services post them, for end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

PHONE = "375291112233"


def call_events(unit: str, unique_id: str, extension: str = "151") -> list[dict[str, Any]]:
    """An answered incoming call: dial → bridge → hangup (3 events, 3 RetailCRM requests)."""
    start, end = "2026-11-26 10:00:00", "2026-11-26 10:01:00"
    return [
        {"enterprise_number": unit, "event_type": "dial", "payload": {
            "UniqueId": unique_id, "Phone": PHONE, "CallType": 0, "Extensions": [extension],
            "Trunk": "0001363"}},
        {"enterprise_number": unit, "event_type": "bridge", "payload": {
            "UniqueId": unique_id, "CallerIDNum": PHONE, "ConnectedLineNum": extension,
            "BridgeUniqueid": f"b-{unique_id}"}},
        {"enterprise_number": unit, "event_type": "hangup", "payload": {
            "UniqueId": unique_id, "Phone": PHONE, "CallType": 0, "CallStatus": "2",
            "StartTime": start, "EndTime": end, "Extensions": [extension]}},
    ]


def interleaved(calls: Iterable[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Events of many calls mixed the way a busy PBX sends them (each call stays in order)."""
    pending = [list(events) for events in calls]
    while pending:
        for events in pending:
            yield events.pop(0)
        pending = [events for events in pending if events]


def post_until_acknowledged(
    http: httpx.Client, body: dict[str, Any], *, deadline: float
) -> httpx.Response:
    """What a call service does: retry until the daemon acknowledges (a dead daemon → retry)."""
    while True:
        try:
            response = http.post("/api/events", json=body, timeout=5)
            if response.status_code in (200, 202):
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"event never acknowledged: {body['payload']['UniqueId']}")
        time.sleep(0.05)
