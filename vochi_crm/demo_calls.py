"""Realistic call sequences for ``vochi-crm demo``, in the platform's own webhook format. Pure.

The call services post every Asterisk event to ``POST /api/events`` as
``{"enterprise_number", "event_type", "payload"}``; ``payload`` is the webhook JSON they receive
from the PBX (``Token``, ``UniqueId`` ``"<epoch>.<n>"``, ``Phone``, ``CallType`` 0 incoming /
1 outgoing / 2 internal, ``Extensions``, ``Trunk``, ``CallStatus`` ``"2"`` answered / ``"0"`` not,
``StartTime``/``EndTime`` ``"YYYY-MM-DD HH:MM:SS"``, ``BridgeUniqueid``, ``CallerIDNum``/
``ConnectedLineNum``, ``Channel`` ``"SIP/0001363-0000000a"``). This module invents such calls —
the five kinds a PBX sees every day (:class:`CallKind`) — with delays between events in seconds of
PBX time; :func:`schedule` scales them by a speed factor for playing.

Everything is derived from the arguments: the same ``seed`` and ``start`` give the same calls, and
no clock, randomness or I/O is touched otherwise. Within one generation every ``UniqueId`` is
unique; across runs ids stay apart because they carry the epoch of ``start`` (and, without a
seed, a random channel counter).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_TRUNK = "0001363"
DEFAULT_EXTENSIONS = ("150", "151", "152")
#: Customers' numbers (fictitious; the first two are customers of the simulator's demo account,
#: so RetailCRM finds them) and a few unknown callers.
DEFAULT_PHONES = (
    "375291234567",
    "375447654321",
    "375255550000",
    "375291110001",
    "375442220002",
    "375336660003",
    "375297770004",
)


class CallKind(StrEnum):
    INCOMING_ANSWERED = "incoming_answered"
    INCOMING_MISSED = "incoming_missed"
    OUTGOING_ANSWERED = "outgoing_answered"
    TRANSFER = "transfer"
    INTERNAL = "internal"


#: The first calls of every generation cover each kind once, in this order; then a mix.
KIND_ORDER: tuple[CallKind, ...] = tuple(CallKind)
KIND_WEIGHTS: Mapping[CallKind, int] = {
    CallKind.INCOMING_ANSWERED: 40,
    CallKind.INCOMING_MISSED: 15,
    CallKind.OUTGOING_ANSWERED: 25,
    CallKind.TRANSFER: 10,
    CallKind.INTERNAL: 10,
}


@dataclass(frozen=True)
class DemoEvent:
    event_type: str
    """``start``, ``dial``, ``bridge`` or ``hangup``."""
    delay: float
    """Seconds of PBX time after the previous event of the same call (0 for the first)."""
    at: float
    """Seconds of PBX time after the start of the whole generation."""
    payload: dict[str, Any] = field(hash=False)
    """The webhook body, exactly as a call service posts it."""

    def body(self, unit: str) -> dict[str, Any]:
        """The ``POST /api/events`` body for ``unit``."""
        return {"enterprise_number": unit, "event_type": self.event_type, "payload": self.payload}


@dataclass(frozen=True)
class DemoCall:
    kind: CallKind
    unique_id: str
    """The customer's (or caller's) leg; a transfer adds a consultation leg with its own id."""
    description: str
    """One line for people, e.g. ``incoming 375291234567 → 151, answered, 42 s``."""
    events: tuple[DemoEvent, ...]

    @property
    def offset(self) -> float:
        """When the call's first event happens, seconds after the generation's start."""
        return self.events[0].at

    @property
    def unique_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(e.payload["UniqueId"]) for e in self.events))


@dataclass(frozen=True)
class ScheduledEvent:
    due: float
    """Seconds after the start of playing, already divided by the speed factor."""
    call: DemoCall
    event: DemoEvent


def generate_calls(
    count: int,
    *,
    token: str,
    start: datetime,
    seed: int | None = None,
    first_channel: int | None = None,
    kinds: Sequence[CallKind] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    phones: Sequence[str] = DEFAULT_PHONES,
    trunk: str = DEFAULT_TRUNK,
) -> list[DemoCall]:
    """``count`` calls starting at ``start`` (a naive PBX wall-clock time or an aware one),
    a few seconds apart, overlapping as on a busy PBX.

    ``kinds`` fixes the kind of each call (cycled); by default the first five cover every kind
    once, then :data:`KIND_WEIGHTS` decides. ``first_channel`` is the PBX's channel counter at
    ``start`` (the ``<n>`` of ``UniqueId``); by default it comes from ``seed``.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if len(extensions) < 3:
        raise ValueError("at least three extensions are needed (a transfer involves two)")
    if not phones:
        raise ValueError("at least one phone number is needed")
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    pbx = _Pbx(
        rng=rng,
        token=token,
        start=start,
        trunk=trunk,
        channel=first_channel if first_channel is not None else rng.randrange(1, 900_000),
    )
    calls: list[DemoCall] = []
    offset = 0.0
    for index in range(count):
        if kinds:
            kind = kinds[index % len(kinds)]
        elif index < len(KIND_ORDER):
            kind = KIND_ORDER[index]
        else:
            kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        builder = _BUILDERS[kind]
        calls.append(builder(pbx, offset, list(extensions), rng.choice(list(phones))))
        offset += round(rng.uniform(1.0, 5.0), 3)
    return calls


def schedule(calls: Sequence[DemoCall], speed: float) -> list[ScheduledEvent]:
    """Every event of ``calls`` with its due time at ``speed``× real time, in playing order.

    Events of one call keep their order even when due at the same instant.
    """
    if speed <= 0:
        raise ValueError("speed must be > 0")
    items = [
        (event.at / speed, call_index, event_index, call, event)
        for call_index, call in enumerate(calls)
        for event_index, event in enumerate(call.events)
    ]
    items.sort(key=lambda item: (item[0], item[1], item[2]))
    return [ScheduledEvent(due, call, event) for due, _, _, call, event in items]


def call_schedule(call: DemoCall, speed: float) -> Iterator[tuple[float, DemoEvent]]:
    """One call's events with their due times (seconds after the start of playing) at ``speed``."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    for event in call.events:
        yield event.at / speed, event


# -- the PBX model -------------------------------------------------------------------------------


class _Pbx:
    """Numbering as Asterisk does it: one counter for channels, ``<epoch>.<n>`` unique ids."""

    def __init__(
        self, *, rng: random.Random, token: str, start: datetime, trunk: str, channel: int
    ) -> None:
        self.rng = rng
        self.token = token
        self.start = start
        self.trunk = trunk
        self._counter = channel

    def when(self, at: float) -> datetime:
        return self.start + timedelta(seconds=at)

    def stamp(self, at: float) -> str:
        return self.when(at).strftime(TIME_FORMAT)

    def unique_id(self, at: float) -> str:
        self._counter += 1
        return f"{int(self.when(at).timestamp())}.{self._counter}"

    def channel(self, peer: str) -> str:
        self._counter += 1
        return f"SIP/{peer}-{self._counter:08x}"

    def bridge_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def pause(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 3)


class _Call:
    """Collects a call's events; ``at`` advances by each event's delay."""

    def __init__(self, pbx: _Pbx, offset: float) -> None:
        self.pbx = pbx
        self.at = offset
        self._last = offset
        self._first_seen: dict[str, float] = {}
        self.events: list[DemoEvent] = []

    def wait(self, seconds: float) -> None:
        self.at += seconds

    def add(self, event_type: str, payload: dict[str, Any]) -> None:
        payload = {"Token": self.pbx.token, **payload}
        unique_id = str(payload["UniqueId"])
        self._first_seen.setdefault(unique_id, self.at)
        delay = 0.0 if not self.events else round(self.at - self._last, 3)
        self.events.append(DemoEvent(event_type, delay, round(self.at, 3), payload))
        self._last = self.at

    def times(self, unique_id: str) -> dict[str, str]:
        """``StartTime`` (the leg's first event), ``EndTime`` and ``DateReceived`` (now)."""
        now = self.pbx.stamp(self.at)
        started = self.pbx.stamp(self._first_seen.get(unique_id, self.at))
        return {"StartTime": started, "EndTime": now, "DateReceived": now}


def _incoming_answered(pbx: _Pbx, offset: float, exts: list[str], phone: str) -> DemoCall:
    call = _Call(pbx, offset)
    uid = pbx.unique_id(offset)
    trunk_channel = pbx.channel(pbx.trunk)
    answerer = pbx.rng.choice(exts)
    call.add("start", {"UniqueId": uid, "CallType": 0, "Phone": phone, "Trunk": pbx.trunk})
    call.wait(pbx.pause(0.5, 1.5))
    call.add("dial", _incoming_dial(pbx, uid, phone, exts, trunk_channel))
    call.wait(pbx.pause(3.0, 12.0))
    call.add("bridge", _bridge(pbx, uid, phone, answerer, trunk_channel, external_first=True))
    talk = pbx.pause(8.0, 75.0)
    call.wait(talk)
    call.add("hangup", _hangup(call, uid, phone, 0, "2", [answerer]))
    return DemoCall(
        CallKind.INCOMING_ANSWERED,
        uid,
        f"incoming {phone} → {answerer}, answered, {talk:.0f} s",
        tuple(call.events),
    )


def _incoming_missed(pbx: _Pbx, offset: float, exts: list[str], phone: str) -> DemoCall:
    call = _Call(pbx, offset)
    uid = pbx.unique_id(offset)
    trunk_channel = pbx.channel(pbx.trunk)
    call.add("start", {"UniqueId": uid, "CallType": 0, "Phone": phone, "Trunk": pbx.trunk})
    call.wait(pbx.pause(0.5, 1.5))
    call.add("dial", _incoming_dial(pbx, uid, phone, exts, trunk_channel))
    ring = pbx.pause(15.0, 30.0)
    call.wait(ring)
    call.add("hangup", _hangup(call, uid, phone, 0, "0", list(exts)))
    return DemoCall(
        CallKind.INCOMING_MISSED,
        uid,
        f"incoming {phone} → {', '.join(exts)}, missed after {ring:.0f} s of ringing",
        tuple(call.events),
    )


def _outgoing_answered(pbx: _Pbx, offset: float, exts: list[str], phone: str) -> DemoCall:
    call = _Call(pbx, offset)
    uid = pbx.unique_id(offset)
    caller = pbx.rng.choice(exts)
    channel = pbx.channel(caller)
    call.add(
        "dial",
        {
            "UniqueId": uid,
            "CallType": 1,
            "Phone": phone,
            "ExtPhone": phone,
            "ExtTrunk": "",
            "Trunk": pbx.trunk,
            "Extensions": [caller],
            "Channel": channel,
        },
    )
    call.wait(pbx.pause(5.0, 15.0))
    call.add("bridge", _bridge(pbx, uid, phone, caller, channel, external_first=False))
    talk = pbx.pause(8.0, 75.0)
    call.wait(talk)
    call.add("hangup", _hangup(call, uid, phone, 1, "2", [caller]))
    return DemoCall(
        CallKind.OUTGOING_ANSWERED,
        uid,
        f"outgoing {caller} → {phone}, answered, {talk:.0f} s",
        tuple(call.events),
    )


def _transfer(pbx: _Pbx, offset: float, exts: list[str], phone: str) -> DemoCall:
    """A blind transfer: the customer talks to ``first``, who sends the call on to ``second``.

    Two bridges on the customer's leg; the transfer itself is an internal leg (its own
    ``UniqueId``, CallType 2, ``Phone`` is the target extension) that ends once ``second`` has
    the customer.
    """
    first, second = exts[1], exts[2]
    call = _Call(pbx, offset)
    uid = pbx.unique_id(offset)
    trunk_channel = pbx.channel(pbx.trunk)
    call.add("start", {"UniqueId": uid, "CallType": 0, "Phone": phone, "Trunk": pbx.trunk})
    call.wait(pbx.pause(0.5, 1.5))
    call.add("dial", _incoming_dial(pbx, uid, phone, [first], trunk_channel))
    call.wait(pbx.pause(3.0, 8.0))
    call.add("bridge", _bridge(pbx, uid, phone, first, trunk_channel, external_first=True))
    call.wait(pbx.pause(5.0, 20.0))
    leg = pbx.unique_id(call.at)
    leg_channel = pbx.channel(first)
    call.add(
        "dial",
        {
            "UniqueId": leg,
            "CallType": 2,
            "Phone": second,
            "Extensions": [second],
            "CallerIDNum": first,
            "Channel": leg_channel,
        },
    )
    call.wait(pbx.pause(2.0, 5.0))
    call.add(
        "bridge",
        {
            "UniqueId": leg,
            "CallerIDNum": first,
            "ConnectedLineNum": second,
            "BridgeUniqueid": pbx.bridge_id(),
            "Channel": leg_channel,
            "CallType": 2,
        },
    )
    call.wait(pbx.pause(0.5, 2.0))
    call.add("bridge", _bridge(pbx, uid, phone, second, trunk_channel, external_first=True))
    call.wait(pbx.pause(0.2, 1.0))
    call.add(
        "hangup",
        {
            "UniqueId": leg,
            "CallType": 2,
            "Phone": second,
            "Extensions": [first],
            "CallStatus": "2",
            "Channel": leg_channel,
            **call.times(leg),
        },
    )
    talk = pbx.pause(10.0, 45.0)
    call.wait(talk)
    call.add("hangup", _hangup(call, uid, phone, 0, "2", [second]))
    return DemoCall(
        CallKind.TRANSFER,
        uid,
        f"incoming {phone} → {first}, transferred to {second}, {talk:.0f} s",
        tuple(call.events),
    )


def _internal(pbx: _Pbx, offset: float, exts: list[str], phone: str) -> DemoCall:
    caller, callee = pbx.rng.sample(exts, 2)
    call = _Call(pbx, offset)
    uid = pbx.unique_id(offset)
    channel = pbx.channel(caller)
    call.add(
        "dial",
        {
            "UniqueId": uid,
            "CallType": 2,
            "Phone": callee,
            "Extensions": [callee],
            "CallerIDNum": caller,
            "Channel": channel,
        },
    )
    call.wait(pbx.pause(2.0, 8.0))
    call.add(
        "bridge",
        {
            "UniqueId": uid,
            "CallerIDNum": caller,
            "ConnectedLineNum": callee,
            "BridgeUniqueid": pbx.bridge_id(),
            "Channel": channel,
            "CallType": 2,
        },
    )
    talk = pbx.pause(10.0, 60.0)
    call.wait(talk)
    call.add(
        "hangup",
        {
            "UniqueId": uid,
            "CallType": 2,
            "Phone": callee,
            "Extensions": [callee],
            "CallerIDNum": caller,
            "CallStatus": "2",
            "Channel": channel,
            **call.times(uid),
        },
    )
    return DemoCall(
        CallKind.INTERNAL,
        uid,
        f"internal {caller} → {callee}, answered, {talk:.0f} s",
        tuple(call.events),
    )


def _incoming_dial(
    pbx: _Pbx, uid: str, phone: str, ringing: list[str], channel: str
) -> dict[str, Any]:
    return {
        "UniqueId": uid,
        "CallType": 0,
        "Phone": phone,
        "ExtPhone": phone,
        "ExtTrunk": "",
        "Trunk": pbx.trunk,
        "Extensions": list(ringing),
        "Channel": channel,
    }


def _bridge(
    pbx: _Pbx, uid: str, phone: str, extension: str, channel: str, *, external_first: bool
) -> dict[str, Any]:
    caller, connected = (phone, extension) if external_first else (extension, phone)
    return {
        "UniqueId": uid,
        "CallerIDNum": caller,
        "ConnectedLineNum": connected,
        "BridgeUniqueid": pbx.bridge_id(),
        "Channel": channel,
    }


def _hangup(
    call: _Call, uid: str, phone: str, call_type: int, status: str, extensions: list[str]
) -> dict[str, Any]:
    return {
        "UniqueId": uid,
        "CallType": call_type,
        "Phone": phone,
        "Extensions": list(extensions),
        "CallStatus": status,
        **call.times(uid),
    }


_BUILDERS = {
    CallKind.INCOMING_ANSWERED: _incoming_answered,
    CallKind.INCOMING_MISSED: _incoming_missed,
    CallKind.OUTGOING_ANSWERED: _outgoing_answered,
    CallKind.TRANSFER: _transfer,
    CallKind.INTERNAL: _internal,
}
