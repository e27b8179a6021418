"""What earlier events of one call (one Asterisk ``UniqueId``) told us.

The mapping is a fold: ``plan_event(..., state) -> Plan(requests, new_state)``. The worker keeps
one :class:`CallState` per (unit, ``UniqueId``), stores ``to_dict()`` (JSON-safe) and feeds it back
with the next event of the same call. A missing state is simply ``CallState()``: a hangup with no
earlier dial must still map. ``from_dict`` is tolerant (unknown keys and bad values are dropped)
because stored state may have been written by an older version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class CallState:
    direction: Direction | None = None
    """``in``/``out`` once an event with CallType 0/1 and an external phone was seen."""
    phone: str | None = None
    """The external party's phone (digits) from start/dial."""
    trunk: str | None = None
    ringing: tuple[str, ...] = ()
    """Internal extensions that rang (incoming dial)."""
    notified: tuple[str, ...] = ()
    """Extensions that already got an ``in``/``out`` pop-up."""
    calling_extension: str | None = None
    """The extension that placed an outgoing call."""
    answered: bool = False
    """A bridge with the external side was seen: somebody talked."""
    answered_by: str | None = None
    """The internal extension of the latest such bridge (a transfer moves it)."""
    first_seen_at: datetime | None = None
    """When the first start/dial of the call reached us (the caller's clock)."""
    answered_at: datetime | None = None
    """When the first answering bridge reached us (same clock as ``first_seen_at``)."""
    ended: bool = False
    """A hangup (or download) was mapped: later ring events are stale."""

    def evolve(self, **changes: Any) -> CallState:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for storage (datetimes as ISO-8601 strings)."""
        return {
            "direction": self.direction,
            "phone": self.phone,
            "trunk": self.trunk,
            "ringing": list(self.ringing),
            "notified": list(self.notified),
            "calling_extension": self.calling_extension,
            "answered": self.answered,
            "answered_by": self.answered_by,
            "first_seen_at": _iso(self.first_seen_at),
            "answered_at": _iso(self.answered_at),
            "ended": self.ended,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CallState:
        """Rebuild from :meth:`to_dict` output; anything unreadable falls back to the default."""
        if not isinstance(data, Mapping):
            return cls()
        direction = data.get("direction")
        return cls(
            direction=direction if direction in ("in", "out") else None,
            phone=_str(data.get("phone")),
            trunk=_str(data.get("trunk")),
            ringing=_strs(data.get("ringing")),
            notified=_strs(data.get("notified")),
            calling_extension=_str(data.get("calling_extension")),
            answered=data.get("answered") is True,
            answered_by=_str(data.get("answered_by")),
            first_seen_at=_parse_iso(data.get("first_seen_at")),
            answered_at=_parse_iso(data.get("answered_at")),
            ended=data.get("ended") is True,
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)
