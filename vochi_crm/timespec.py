"""Points in time as operators type them: ``90s``, ``10m``, ``2h``, ``3d``, ``1w``, ``1h30m`` (that
long ago) or an ISO-8601 date / date-time. Pure functions, no I/O.

Every result is an *aware* datetime, because the database compares against ``timestamptz``: a
naive value would be read in the server's zone, which is not necessarily the operator's. A date or
date-time written without an offset is therefore taken in the local zone of the machine the
command runs on (the zone the operator reads the tables in); ``Z`` or ``+03:00`` say otherwise.

Bad input raises :class:`InvalidInput` naming the option (``--since``, ``--until``) so the CLI can
print one clear line and exit 2.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from vochi_crm.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
#: A century of seconds: larger spans are typos, and ``timedelta`` would overflow on absurd ones.
_MAX_SECONDS = 100 * 365 * 86400
EXAMPLES = "e.g. 90s, 10m, 2h, 3d, 1h30m, 2025-01-31 or 2025-01-31T08:00:00+03:00"


def parse_duration(text: str, *, option: str = "duration") -> timedelta:
    """``"1h30m"`` → 90 minutes. Units: s, m, h, d, w; no sign, no fractions."""
    compact = text.strip().lower()
    if not compact or not _DURATION.fullmatch(compact):
        raise InvalidInput.one(option, f"{text!r} is not a duration ({EXAMPLES})")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    if seconds > _MAX_SECONDS:
        raise InvalidInput.one(option, f"{text!r} is too far back")
    return timedelta(seconds=seconds)


def parse_instant(text: str, *, option: str, now: datetime | None = None) -> datetime:
    """A point in time: a duration ago (relative to ``now``), ``now``, or an ISO-8601 value.

    ``now`` must be aware when given (tests pass a fixed one); it defaults to the current time.
    """
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    value = text.strip()
    if not value:
        raise InvalidInput.one(option, f"must not be empty ({EXAMPLES})")
    if value.lower() == "now":
        return current
    if value[0].isdigit() and _DURATION.fullmatch(value.lower()):
        return current - parse_duration(value, option=option)
    parsed = _iso(value)
    if parsed is None:
        raise InvalidInput.one(
            option, f"{text!r} is neither a duration nor an ISO-8601 time ({EXAMPLES})"
        )
    return parsed


def parse_window(
    since: str | None, until: str | None, *, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``--since`` / ``--until`` together; both errors are reported at once, and an ``until``
    before ``since`` is refused (it would silently match nothing)."""
    errors: list[InvalidInput] = []
    start = end = None
    for option, text in (("--since", since), ("--until", until)):
        if text is None:
            continue
        try:
            instant = parse_instant(text, option=option, now=now)
        except InvalidInput as exc:
            errors.append(exc)
            continue
        if option == "--since":
            start = instant
        else:
            end = instant
    if errors:
        raise InvalidInput([field for exc in errors for field in exc.fields])
    if start is not None and end is not None and end < start:
        raise InvalidInput.one("--until", f"{until!r} is before --since {since!r}")
    return start, end


def _iso(value: str) -> datetime | None:
    """ISO-8601 date or date-time (``T`` or a space between them, ``Z`` accepted)."""
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time()).astimezone()
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()
