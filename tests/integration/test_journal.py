"""The journal use-cases on real PostgreSQL: event listing filters, one call's story, the tail and
its cursors, and masking of anything that looks like a credential.

Rows are seeded straight into ``retailcrm_events`` / ``integration_logs`` with psycopg (the
simplest honest setup: these use-cases only read them). :class:`Seed` is shared with the replay
and CLI tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from vochi_crm.delivery.store import DeliveryStore, EventResult, JournalEntry
from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.journal import (
    EventFilter,
    EventRecord,
    JournalRecord,
    call_story,
    list_events,
)
from vochi_crm.journal_tail import JournalTail, TailFilter
from vochi_crm.runtime import Runtime, open_runtime
from vochi_crm.settings import load_settings

pytestmark = pytest.mark.anyio
FAKE_KEY = "FAKEKEY-0123456789-SECRET-zz99"
NOW = datetime.now(UTC)
CONFIG = {"enabled": True, "api_url": "https://shop.retailcrm.ru", "api_key": FAKE_KEY}


class Seed:
    """Direct inserts into a test database (autocommit: visible at once to other sessions)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def unit(self, number: str, config: dict[str, Any] | None = CONFIG) -> None:
        ic = {"retailcrm": config} if config is not None else {}
        self.conn.execute(
            "INSERT INTO enterprises (number, name, name2, integrations_config) "
            "VALUES (%s, %s, %s, %s::jsonb)",
            (number, f"Unit {number}", f"tok{number}", json.dumps(ic)),
        )

    def event(
        self,
        unit: str,
        call: str,
        event_type: str = "hangup",
        status: str = "failed",
        *,
        age: timedelta = timedelta(minutes=5),
        last_error: str | None = "HTTP 400: validation failed",
        attempts: int = 3,
        progress: int = 1,
        payload: dict[str, Any] | None = None,
    ) -> int:
        at = datetime.now(UTC) - age
        row = self.conn.execute(
            "INSERT INTO retailcrm_events (enterprise_number, call_unique_id, event_type, "
            "dedup_key, payload, status, attempts, progress, last_error, received_at, updated_at,"
            " next_attempt_at) "
            "VALUES (%s, %s, %s, gen_random_uuid()::text, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (unit, call, event_type, json.dumps(payload or {"UniqueId": call, "Token": "tok"}),
             status, attempts, progress, last_error, at, datetime.now(UTC), at),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def events(self, unit: str, count: int, status: str = "failed") -> list[int]:
        rows = self.conn.execute(
            "INSERT INTO retailcrm_events (enterprise_number, call_unique_id, event_type, "
            "dedup_key, payload, status, attempts, last_error, received_at) "
            "SELECT %s, 'bulk.' || g, 'hangup', gen_random_uuid()::text, '{}'::jsonb, %s, 5, "
            "'HTTP 503', "
            "now() - interval '10 minutes' FROM generate_series(1, %s) g RETURNING id",
            (unit, status, count),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def log(
        self,
        unit: str,
        call: str | None,
        event_type: str = "call_event:hangup",
        status: str = "success",
        *,
        request: dict[str, Any] | None = None,
        error: str | None = None,
        ms: int = 42,
        integration: str = "retailcrm",
    ) -> int:
        row = self.conn.execute(
            "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, "
            "request_data, response_data, status, error_message, call_unique_id, "
            "response_time_ms) VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s) "
            "RETURNING id",
            (unit, integration, event_type, json.dumps(request or {"uniqueId": call}),
             json.dumps({"success": status == "success"}), status, error, call, ms),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def status(self, event_id: int) -> tuple[str, int, int, str | None]:
        row = self.conn.execute(
            "SELECT status, attempts, progress, last_error FROM retailcrm_events WHERE id = %s",
            (event_id,),
        ).fetchone()
        assert row is not None
        return row[0], row[1], row[2], row[3]


@pytest.fixture
def seed(database_url: str) -> Iterator[Seed]:
    s = Seed(database_url)
    yield s
    s.close()


@pytest.fixture
async def runtime(env: dict[str, str]) -> AsyncIterator[Runtime]:
    async with open_runtime(load_settings()) as rt:
        yield rt


async def test_list_events_filters(runtime: Runtime, seed: Seed) -> None:
    seed.unit("0367")
    seed.unit("0400")
    old = seed.event("0367", "c1", "dial", "expired", age=timedelta(hours=5))
    failed = seed.event("0367", "c2", "hangup", "failed", age=timedelta(minutes=30))
    done = seed.event("0367", "c2", "download", "delivered", age=timedelta(minutes=20))
    other = seed.event("0400", "c3", "hangup", "failed", age=timedelta(minutes=10))
    db = runtime.db

    async def ids(**kw: Any) -> list[int]:
        return [e.id for e in await list_events(db, EventFilter(**kw))]

    assert await ids() == [other, done, failed, old]  # newest first
    assert await ids(unit="0367") == [done, failed, old]
    assert await ids(statuses=("failed", "expired")) == [other, failed, old]
    assert await ids(since=NOW - timedelta(hours=1)) == [other, done, failed]
    assert await ids(until=NOW - timedelta(hours=1)) == [old]
    assert await ids(call="c2") == [done, failed]
    assert await ids(limit=2) == [other, done]
    with pytest.raises(NotFound, match="'9999' does not exist"):
        await list_events(db, EventFilter(unit="9999"))
    with pytest.raises(InvalidInput, match="unknown status 'lost'"):
        await list_events(db, EventFilter(statuses=("lost",)))


async def test_call_story_has_every_event_and_retailcrm_call_in_order(
    runtime: Runtime, seed: Seed
) -> None:
    seed.unit("0367")
    dial = seed.event("0367", "1712345678.42", "dial", "delivered", age=timedelta(minutes=3),
                      last_error=None,
                      payload={"UniqueId": "1712345678.42", "Token": "t0k3n-abcdef"})
    hang = seed.event("0367", "1712345678.42", "hangup", "failed", age=timedelta(minutes=2))
    seed.event("0367", "another.call", "hangup", "failed")
    ok = seed.log("0367", "1712345678.42", "call_event:in", "success", ms=120)
    bad = seed.log("0367", "1712345678.42", "calls_upload", "error", error="HTTP 400", ms=87,
                   request={"uniqueId": "1712345678.42", "apiKey": FAKE_KEY})
    seed.log("0367", "1712345678.42", "incoming_call", "success", integration="ms")

    story = await call_story(runtime.db, event_id=hang)
    assert (story.unit, story.call_unique_id) == ("0367", "1712345678.42")
    assert [e.id for e in story.events] == [dial, hang]
    assert [r.id for r in story.requests] == [ok, bad]  # only RetailCRM's rows
    assert story.requests[1].response_time_ms == 87 and story.requests[1].error == "HTTP 400"
    kinds = [(s.kind, s.event_type, s.status) for s in story.timeline()]
    assert kinds[0] == ("received", "dial", "received")
    assert ("outcome", "hangup", "failed") in kinds
    assert ("request", "calls_upload", "error") in kinds
    text = json.dumps(story.as_dict(), default=str)
    assert FAKE_KEY not in text and "t0k3n-abcdef" not in text

    by_call = await call_story(runtime.db, call="1712345678.42")
    assert [e.id for e in by_call.events] == [dial, hang]
    with pytest.raises(NotFound, match="unknown event id 999999"):
        await call_story(runtime.db, event_id=999999)
    with pytest.raises(NotFound, match="no event of call"):
        await call_story(runtime.db, call="nope")
    seed.unit("0400")
    seed.event("0400", "1712345678.42")
    with pytest.raises(InvalidInput, match="exists in units 0367, 0400"):
        await call_story(runtime.db, call="1712345678.42")
    assert (await call_story(runtime.db, call="1712345678.42", unit="0400")).unit == "0400"


async def test_tail_latest_then_poll_sees_only_new_rows_filtered_and_masked(
    runtime: Runtime, seed: Seed
) -> None:
    seed.unit("0367")
    seed.unit("0400")
    first = seed.log("0367", "c1", status="success")
    seed.log("0367", "c1", integration="uon")  # another CRM's row: never shown
    failed = seed.event("0367", "c1", status="failed")
    tail = JournalTail(runtime.db, TailFilter())
    latest = await tail.latest(20)
    assert {(type(i).__name__, i.id) for i in latest} == {
        ("JournalRecord", first), ("EventRecord", failed)
    }
    assert await tail.poll() == []  # nothing new: nothing printed twice

    planted = {"uniqueId": "c9", "api_key": FAKE_KEY, "nested": {"apiKey": FAKE_KEY},
               "integrationModule": {"clientId": FAKE_KEY}}
    secret = seed.log("0400", "c9", status="error", error="X-API-KEY: " + FAKE_KEY,
                      request=planted)
    new_event = seed.event("0400", "c9", status="expired")
    polled = await tail.poll()
    assert {(type(i).__name__, i.id) for i in polled} == {
        ("JournalRecord", secret), ("EventRecord", new_event)
    }
    assert FAKE_KEY not in json.dumps([i.as_dict() for i in polled], default=str)
    assert await tail.poll() == []

    errors = JournalTail(runtime.db, TailFilter(unit="0400", status="error"))
    items = await errors.latest(None)
    assert {i.id for i in items} == {secret, new_event}
    only_events = JournalTail(runtime.db, TailFilter(status="failed"))
    assert [i.id for i in await only_events.latest(10)] == [failed]
    with pytest.raises(NotFound):
        await JournalTail(runtime.db, TailFilter(unit="9999")).latest(10)
    with pytest.raises(InvalidInput, match="--status"):
        JournalTail(runtime.db, TailFilter(status="bogus"))


async def test_follow_wakes_on_the_delivery_stores_notify(runtime: Runtime, seed: Seed) -> None:
    """The real write path: DeliveryStore.finish commits an outcome and a journal row and
    notifies once; the follower wakes long before its 30 s insurance re-check."""
    seed.unit("0367")
    seed.event("0367", "live.1", "hangup", "pending", last_error=None, attempts=0, progress=0)
    tail = JournalTail(runtime.db, TailFilter(unit="0367"))
    stream = tail.follow(0, recheck=30.0, min_interval=0.05)
    assert await stream.__anext__() == []  # listening now
    store = DeliveryStore(runtime.db, "test-worker")
    (claimed,) = await store.claim(10, 30)
    entry = JournalEntry("0367", "call_event:hangup", {"uniqueId": "live.1", "apiKey": FAKE_KEY},
                         {"success": True}, True, None, "live.1", "+375291234567", "151", 55.0)
    await store.finish([EventResult(claimed, "delivered", 1, 1, journal=(entry,))])
    batch = await asyncio.wait_for(stream.__anext__(), 5)
    kinds = {type(i) for i in batch}
    assert kinds == {JournalRecord, EventRecord}
    journal = next(i for i in batch if isinstance(i, JournalRecord))
    assert journal.request["apiKey"] != FAKE_KEY and journal.response_time_ms == 55
    await stream.aclose()



async def test_poll_pages_through_large_batches_with_identical_times(
    runtime: Runtime, seed: Seed
) -> None:
    """One transaction stamps all its rows with one now(): paging must not stall on the tie."""
    seed.unit("0367")
    tail = JournalTail(runtime.db, TailFilter(unit="0367"))
    assert await tail.latest(5) == []
    ids = seed.events("0367", 1500)  # one statement: one updated_at for all
    seed.conn.execute(
        "INSERT INTO integration_logs (enterprise_number, integration_type, event_type, status) "
        "SELECT '0367', 'retailcrm', 'calls_upload', 'success' FROM generate_series(1, 1200)"
    )
    polled = await tail.poll()
    assert sorted(i.id for i in polled if isinstance(i, EventRecord)) == ids
    assert sum(isinstance(i, JournalRecord) for i in polled) == 1200
    assert await tail.poll() == []
