"""Loader for the shared Asterisk call scenarios, for any test that wants to replay them.

The files live outside the project, in ``<repo root>/../shared/data/asterisk-scenarios`` (override
with ``VOCHI_SCENARIOS_DIR``); they are never copied in. Two formats exist side by side: events with
``type``/``delay_ms`` and events with ``event_type``/``endpoint``/``delay`` (seconds).

``WILL_BE_REPLACED`` values are filled the way the platform's player does: a fresh ``UniqueId`` per
call (one per loaded scenario unless given), a fresh ``BridgeUniqueid`` per event, the unit's
``Token``, and times as ``YYYY-MM-DD HH:MM:SS``: ``DateReceived``/``EndTime`` = when the event is
played, ``StartTime`` = when the first event of the same ``UniqueId`` was played. Event times are
``base_time`` plus the cumulative delays, so everything is deterministic for a given ``base_time``
and ``unique_id``. Any other placeholder raises, so a new kind of file is noticed.
"""

from __future__ import annotations

import calendar
import copy
import itertools
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PLACEHOLDER = "WILL_BE_REPLACED"
ENV_VAR = "VOCHI_SCENARIOS_DIR"
DEFAULT_TOKEN = "375290000000"
"""The demo unit's ``Token`` (the scenarios' README)."""
DEFAULT_BASE_TIME = datetime(2025, 9, 13, 15, 7, 29)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TIME_FIELDS = ("StartTime", "EndTime", "DateReceived")

_sequence = itertools.count()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def scenarios_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return repo_root().parent / "shared" / "data" / "asterisk-scenarios"


def scenario_names() -> list[str]:
    """File stems of every scenario (``2-19-real``, ``transfer_call``, …), sorted."""
    return sorted(path.stem for path in scenarios_dir().glob("*.json"))


@dataclass(frozen=True)
class ScenarioEvent:
    event_type: str
    delay: float
    """Seconds after the previous event."""
    at: datetime
    """When the event is played (``base_time`` + cumulative delays)."""
    data: dict[str, Any]
    """The webhook body, placeholders filled."""


@dataclass(frozen=True)
class Scenario:
    name: str
    test_id: str
    description: str
    call_type: int | None
    events: tuple[ScenarioEvent, ...]
    unique_id: str
    """The value that replaced ``WILL_BE_REPLACED`` UniqueIds (even if the file has none)."""


def fresh_unique_id(base_time: datetime = DEFAULT_BASE_TIME) -> str:
    """An Asterisk-style ``<epoch>.<sequence>`` id, new on every call."""
    return f"{calendar.timegm(base_time.timetuple())}.{next(_sequence)}"


def load_scenario(
    name: str,
    *,
    token: str = DEFAULT_TOKEN,
    base_time: datetime = DEFAULT_BASE_TIME,
    unique_id: str | None = None,
) -> Scenario:
    path = scenarios_dir() / f"{name}.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    call_id = unique_id if unique_id is not None else fresh_unique_id(base_time)

    events: list[ScenarioEvent] = []
    first_seen: dict[str, datetime] = {}
    at = base_time
    for index, raw_event in enumerate(raw["events"]):
        event_type = raw_event.get("type") or raw_event.get("event_type")
        if not isinstance(event_type, str):
            raise ValueError(f"{path.name} event {index}: no type/event_type")
        delay = _delay(raw_event)
        at = at + timedelta(seconds=delay)
        data: dict[str, Any] = copy.deepcopy(raw_event.get("data", {}))
        if data.get("UniqueId") == PLACEHOLDER:
            data["UniqueId"] = call_id
        if data.get("BridgeUniqueid") == PLACEHOLDER:
            data["BridgeUniqueid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call_id}/{index}"))
        if data.get("Token") == PLACEHOLDER:
            data["Token"] = token
        unique = data.get("UniqueId")
        started = first_seen.setdefault(unique, at) if isinstance(unique, str) and unique else at
        for key in TIME_FIELDS:
            if data.get(key) == PLACEHOLDER:
                data[key] = (started if key == "StartTime" else at).strftime(TIME_FORMAT)
        left = sorted(key for key, value in data.items() if value == PLACEHOLDER)
        if left:
            raise ValueError(f"{path.name} event {index}: unknown placeholders {left}")
        events.append(ScenarioEvent(event_type, delay, at, data))

    return Scenario(
        name=name,
        test_id=str(raw.get("test_id", name)),
        description=str(raw.get("description", "")),
        call_type=raw.get("call_type"),
        events=tuple(events),
        unique_id=call_id,
    )


def _delay(raw_event: dict[str, Any]) -> float:
    if "delay_ms" in raw_event:
        return float(raw_event["delay_ms"]) / 1000.0
    return float(raw_event.get("delay", 0.0))


class LegBook:
    """What the worker reads from the queue table to link follow-me legs
    (:mod:`vochi_crm.pipeline.linking`), kept from a replay of events in arrival order: call
    :meth:`link` for each event before mapping it."""

    def __init__(self) -> None:
        self._first: dict[str, datetime] = {}
        self._bridges: list[tuple[str, datetime, dict[str, Any]]] = []

    def link(self, event_type: str, payload: dict[str, Any], state: Any, at: datetime) -> Any:
        """``state`` (a ``CallState``) with an answer found on another call's leg, if any."""
        from vochi_crm.pipeline.linking import Leg, customer_to_link, link_answer

        unique_id = str(payload.get("UniqueId") or "")
        first = self._first.setdefault(unique_id, at)
        if event_type == "bridge":
            self._bridges.append((unique_id, at, payload))
        customer = customer_to_link(event_type, payload, state)
        if customer is None:
            return state
        legs = [Leg(data, when) for uid, when, data in self._bridges
                if uid != unique_id and first <= when <= at]
        return link_answer(state, customer, legs)
