"""Tolerant readers for the fields of an Asterisk webhook payload.

Real payloads are messy (reference B3 and the shared scenarios): ``CallType`` is an int or a
string, ``CallStatus`` is ``"2"`` or ``2``, ``Extensions`` may be ``[""]`` or missing while a
singular ``Extension`` is present, phones come with or without ``+``, times may be empty. Every
reader here returns ``None`` (or an empty tuple) for anything it cannot read instead of raising:
the mapping decides what a missing value means. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

RETAILCRM_DATETIME = "%Y-%m-%d %H:%M:%S"
"""RetailCRM's date-time format (``Y-m-d H:i:s``, reference A1/A8)."""

_CHANNEL_PEER = re.compile(r"^[A-Za-z0-9]+/([^-/@;]+)")
_BUSY_CAUSES = frozenset({"user busy", "busy", "17"})
_NO_ANSWER_CAUSES = frozenset(
    {"no answer", "no user responding", "call rejected", "18", "19", "21"}
)


def text(payload: Mapping[str, Any], key: str) -> str | None:
    """The stripped string value of ``key``, ``None`` when absent, empty or not a scalar."""
    value = payload.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def is_internal(number: str | None) -> bool:
    """The platform's heuristic for an internal extension: all ASCII digits, 2 to 5 long."""
    if number is None:
        return False
    number = number.strip()
    return number.isascii() and number.isdigit() and 2 <= len(number) <= 5


def phone_digits(raw: str | None) -> str | None:
    """The digits of a phone number (``+375 29 …`` → ``37529…``); ``None`` when there are none.

    RetailCRM gets digits only, in both call events and uploads: the original sent ``+`` in events
    and bare digits in uploads and both were accepted (A7/A8); one form keeps the two records of a
    call identical and never turns a local number into a wrong international one.
    """
    if raw is None:
        return None
    digits = "".join(ch for ch in raw if ch.isascii() and ch.isdigit())
    return digits or None


def call_type(payload: Mapping[str, Any]) -> int | None:
    """``CallType`` as 0 (incoming), 1 (outgoing) or 2 (internal); ``None`` if absent or odd."""
    value = payload.get("CallType")
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and value in (0, 1, 2):
        return value
    return None


def call_status(payload: Mapping[str, Any]) -> int | None:
    """``CallStatus`` as an int (``"2"`` answered, ``"0"`` not); ``None`` if absent or odd."""
    value = payload.get("CallStatus")
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int):
        return value
    return None


def cause(payload: Mapping[str, Any]) -> str | None:
    """A normalised hangup cause: ``"busy"``, ``"no_answer"`` or ``None`` (unknown/uninformative).

    Only the simplified fixtures carry ``Cause``; real hangups carry ``CallStatus``. "Normal
    Clearing" says nothing about whether anybody answered, so it maps to ``None``.
    """
    for key in ("Cause", "CauseTxt"):
        value = text(payload, key)
        if value is None:
            continue
        value = value.lower()
        if value in _BUSY_CAUSES:
            return "busy"
        if value in _NO_ANSWER_CAUSES:
            return "no_answer"
    return None


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_as_list(item))
        return out
    return []


def extensions(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The internal extensions named by ``Extensions`` (list, or a bare string) and ``Extension``.

    Empty strings (``[""]`` when the PBX lost dial/bridge) and external numbers (follow-me
    targets) are dropped; order is kept, duplicates removed.
    """
    found = _as_list(payload.get("Extensions")) + _as_list(payload.get("Extension"))
    return unique(e.strip() for e in found if is_internal(e))


def channel_extension(payload: Mapping[str, Any]) -> str | None:
    """The extension in a channel name (``SIP/151-00000000`` → ``151``) when it is internal."""
    channel = text(payload, "Channel")
    if channel is None:
        return None
    match = _CHANNEL_PEER.match(channel)
    if match is None or not is_internal(match.group(1)):
        return None
    return match.group(1)


def internal_field(payload: Mapping[str, Any], key: str) -> str | None:
    """``payload[key]`` when it is an internal extension, else ``None``."""
    value = text(payload, key)
    return value if is_internal(value) else None


def timestamp(payload: Mapping[str, Any], key: str) -> datetime | None:
    """``StartTime``/``EndTime``/``DateReceived`` parsed; ``None`` when empty or unreadable.

    Accepts ``YYYY-MM-DD HH:MM:SS`` (the platform's format) and any ISO-8601 variant.
    """
    value = text(payload, key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def record_url(payload: Mapping[str, Any]) -> str | None:
    """The recording link when the payload carries one (the call services add ``record_url``)."""
    for key in ("RecordUrl", "record_url", "recordUrl", "RecordURL", "RecordingUrl"):
        value = text(payload, key)
        if value is not None and value.lower().startswith(("https://", "http://")):
            return value
    return None


def first(*candidates: tuple[str, ...] | str | None) -> str | None:
    """The first non-empty candidate; a tuple contributes its first element."""
    for candidate in candidates:
        if isinstance(candidate, tuple):
            if candidate:
                return candidate[0]
        elif candidate:
            return candidate
    return None


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """Distinct strings in first-seen order."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


def seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds from ``start`` to ``end``; ``None`` if unknown, negative or incomparable.

    Incomparable means one naive and one aware value: never raise on a caller's mix-up.
    """
    if start is None or end is None or (start.tzinfo is None) != (end.tzinfo is None):
        return None
    delta = (end - start).total_seconds()
    if delta < 0:
        return None
    return int(delta)


def format_datetime(value: datetime) -> str:
    """``Y-m-d H:i:s`` as RetailCRM wants it (the wall-clock value, any offset dropped)."""
    return value.strftime(RETAILCRM_DATETIME)
