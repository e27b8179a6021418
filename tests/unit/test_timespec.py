"""``--since`` / ``--until`` parsing: durations ago, ISO-8601 values, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vochi_crm.errors import InvalidInput
from vochi_crm.timespec import parse_duration, parse_instant, parse_window

NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_are_that_long_ago(text: str, ago: timedelta) -> None:
    assert parse_instant(text, option="--since", now=NOW) == NOW - ago


def test_iso_values_are_aware() -> None:
    assert parse_instant("2025-01-30T08:00:00+03:00", option="--since", now=NOW) == datetime(
        2025, 1, 30, 5, 0, tzinfo=UTC
    )
    assert parse_instant("2025-01-30T08:00:00Z", option="--since", now=NOW) == datetime(
        2025, 1, 30, 8, 0, tzinfo=UTC
    )
    # without an offset: the local zone of the machine running the command
    naive = parse_instant("2025-01-30 08:00", option="--since", now=NOW)
    assert naive.tzinfo is not None
    assert naive == datetime(2025, 1, 30, 8, 0).astimezone()
    day = parse_instant("2025-01-30", option="--until", now=NOW)
    assert day == datetime(2025, 1, 30).astimezone()
    assert parse_instant("now", option="--until", now=NOW) == NOW


@pytest.mark.parametrize("text", ["", "yesterday", "10", "-2h", "2.5h", "10 minutes", "2025-13-01",
                                  "h", "2h-", "99999999w"])
def test_bad_values_name_the_option(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_instant(text, option="--since", now=NOW)
    assert info.value.fields[0].field == "--since"
    assert info.value.exit_code == 2


def test_duration_alone() -> None:
    assert parse_duration("1d2h", option="--max-age") == timedelta(hours=26)
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_duration("soon", option="--max-age")


def test_window_checks_order_and_reports_every_bad_value() -> None:
    start, end = parse_window("2h", "1h", now=NOW)
    assert (start, end) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    assert parse_window(None, None, now=NOW) == (None, None)
    with pytest.raises(InvalidInput) as info:
        parse_window("1h", "2h", now=NOW)
    assert info.value.fields[0].field == "--until" and "before --since" in info.value.message
    with pytest.raises(InvalidInput) as both:
        parse_window("soon", "later", now=NOW)
    assert [f.field for f in both.value.fields] == ["--since", "--until"]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_instant("2h", option="--since", now=datetime(2025, 1, 1))
    assert parse_instant("1h", option="--since", now=NOW.astimezone(timezone(timedelta(hours=3))))
