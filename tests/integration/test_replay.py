"""The replay use-case on real PostgreSQL: selection by id / unit / status / window / limit, what a
replay resets, dry runs, bad input changing nothing, undeliverable units, concurrency, NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.integration.test_journal import CONFIG, Seed
from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.replay import ReplayRequest, replay_events
from vochi_crm.runtime import Runtime, open_runtime
from vochi_crm.settings import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def seed(database_url: str) -> Iterator[Seed]:
    s = Seed(database_url)
    s.unit("0367")
    s.unit("0400")
    yield s
    s.close()


@pytest.fixture
async def runtime(env: dict[str, str]) -> AsyncIterator[Runtime]:
    async with open_runtime(load_settings()) as rt:
        yield rt


async def test_replay_by_filters_resets_what_it_should(runtime: Runtime, seed: Seed) -> None:
    failed = seed.event("0367", "a", "hangup", "failed", attempts=7, progress=1)
    expired = seed.event("0367", "b", "dial", "expired", age=timedelta(hours=3))
    delivered = seed.event("0367", "c", "hangup", "delivered", last_error=None)
    pending = seed.event("0367", "d", "hangup", "pending", last_error=None)
    other_unit = seed.event("0400", "e", "hangup", "failed")
    received = seed.conn.execute(
        "SELECT received_at FROM retailcrm_events WHERE id = %s", (failed,)
    ).fetchone()

    result = await replay_events(runtime.db, ReplayRequest(unit="0367"))
    assert result.ok and [e.id for e in result.events] == [failed, expired]
    assert result.events[0].previous_status == "failed"
    assert result.events[0].previous_error == "HTTP 400: validation failed"
    # pending, attempts restart, progress and received_at kept, last error cleared
    assert seed.status(failed) == ("pending", 0, 1, None)
    assert seed.conn.execute(
        "SELECT received_at FROM retailcrm_events WHERE id = %s", (failed,)
    ).fetchone() == received
    assert seed.status(delivered)[0] == "delivered" and seed.status(pending)[0] == "pending"
    assert seed.status(other_unit)[0] == "failed"
    # idempotent: nothing left to do
    again = await replay_events(runtime.db, ReplayRequest(unit="0367"))
    assert again.ok and again.events == () and again.matched == 0


async def test_status_window_and_limit(runtime: Runtime, seed: Seed) -> None:
    old = seed.event("0367", "old", status="failed", age=timedelta(hours=5))
    recent_failed = seed.event("0367", "r1", status="failed", age=timedelta(minutes=30))
    recent_expired = seed.event("0367", "r2", "dial", "expired", age=timedelta(minutes=20))
    now = datetime.now(UTC)

    only_failed = await replay_events(
        runtime.db, ReplayRequest(statuses=("failed",), since=now - timedelta(hours=2)),
        dry_run=True,
    )
    assert [e.id for e in only_failed.events] == [recent_failed]
    window = await replay_events(
        runtime.db, ReplayRequest(since=now - timedelta(hours=6), until=now - timedelta(hours=1)),
        dry_run=True,
    )
    assert [e.id for e in window.events] == [old]

    limited = await replay_events(runtime.db, ReplayRequest(limit=2))
    assert [e.id for e in limited.events] == [old, recent_failed]
    assert limited.matched == 3 and limited.more
    rest = await replay_events(runtime.db, ReplayRequest(limit=2))
    assert [e.id for e in rest.events] == [recent_expired] and not rest.more


async def test_dry_run_changes_nothing(runtime: Runtime, seed: Seed) -> None:
    ids = [seed.event("0367", f"c{i}") for i in range(3)]
    before = [seed.status(i) for i in ids]
    result = await replay_events(runtime.db, ReplayRequest(), dry_run=True)
    assert result.dry_run and [e.id for e in result.events] == ids and result.ok
    assert [seed.status(i) for i in ids] == before


async def test_replay_by_ids(runtime: Runtime, seed: Seed) -> None:
    failed = seed.event("0367", "a", status="failed")
    expired = seed.event("0400", "b", "dial", "expired")
    delivered = seed.event("0367", "c", status="delivered", last_error=None)

    ok = await replay_events(runtime.db, ReplayRequest(ids=(failed, expired)))
    assert ok.ok and [e.id for e in ok.events] == [failed, expired]

    again = seed.event("0367", "d", status="failed")
    mixed = await replay_events(runtime.db, ReplayRequest(ids=(again, delivered, failed)))
    assert [e.id for e in mixed.events] == [again]
    assert mixed.errors == (
        f"event {delivered} is not replayable (status delivered)",
        f"event {failed} is not replayable (status pending)",
    )
    assert not mixed.ok


async def test_unknown_ids_and_conflicts_change_nothing(runtime: Runtime, seed: Seed) -> None:
    failed = seed.event("0367", "a")
    with pytest.raises(NotFound, match=r"unknown event ids 999998, 999999$"):
        await replay_events(runtime.db, ReplayRequest(ids=(failed, 999998, 999999)))
    bad = [
        ReplayRequest(ids=(failed,), statuses=("failed",)),
        ReplayRequest(ids=(failed,), since=datetime.now(UTC)),
        ReplayRequest(ids=(failed,), unit="0367"),
        ReplayRequest(statuses=("delivered",)),
        ReplayRequest(limit=0),
        ReplayRequest(since=datetime.now(UTC), until=datetime.now(UTC) - timedelta(hours=1)),
    ]
    for request in bad:
        with pytest.raises(InvalidInput):
            await replay_events(runtime.db, request)
    with pytest.raises(NotFound, match="'9999' does not exist"):
        await replay_events(runtime.db, ReplayRequest(unit="9999"))
    assert seed.status(failed)[0] == "failed"


async def test_units_that_cannot_deliver(runtime: Runtime, seed: Seed) -> None:
    seed.unit("0500", None)  # no RetailCRM config
    seed.unit("0600", {**CONFIG, "enabled": False})
    good = seed.event("0367", "a")
    unconfigured = seed.event("0500", "b")
    disabled = seed.event("0600", "c")
    orphan = seed.event("0700", "d")  # its unit was deleted

    result = await replay_events(runtime.db, ReplayRequest())
    assert [e.id for e in result.events] == [good]
    assert not result.ok and len(result.errors) == 3
    assert "unit 0500: no RetailCRM config" in result.errors[0]
    assert "unit 0600: the RetailCRM integration is disabled" in result.errors[1]
    assert "unit 0700: the unit does not exist" in result.errors[2]
    assert [seed.status(i)[0] for i in (unconfigured, disabled, orphan)] == ["failed"] * 3

    with pytest.raises(InvalidInput, match="unit 0500: no RetailCRM config"):
        await replay_events(runtime.db, ReplayRequest(unit="0500"))
    # a disabled unit's failed module registration is replayed (its delivery deactivates the
    # module); its call events are reported; without credentials nothing is replayed
    module = seed.event("0600", "__module__", "register_module")
    seed.event("0500", "__module__", "register_module")
    disabled_unit = await replay_events(runtime.db, ReplayRequest(unit="0600"))
    assert [e.id for e in disabled_unit.events] == [module]
    assert disabled_unit.errors == (
        "unit 0600: the RetailCRM integration is disabled (vochi-crm config enable 0600); "
        "1 event(s) not replayed",
    )
    everything = await replay_events(runtime.db, ReplayRequest())
    assert everything.events == ()
    assert "unit 0500: no RetailCRM config (vochi-crm config set); 2 event(s) not replayed" in (
        everything.errors
    )


async def test_concurrent_replays_requeue_each_event_once(runtime: Runtime, seed: Seed) -> None:
    ids = seed.events("0367", 1200)
    requests = [ReplayRequest(limit=5000) for _ in range(4)]
    results = await asyncio.gather(*(replay_events(runtime.db, r) for r in requests))
    got = [e.id for r in results for e in r.events]
    assert sorted(got) == ids  # every one, exactly once in total
    assert all(r.ok for r in results)


async def test_each_batch_notifies_the_dispatcher(
    runtime: Runtime, seed: Seed, database_url: str
) -> None:
    seed.events("0367", 3)
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN retailcrm_events_ready")
        result = await replay_events(runtime.db, ReplayRequest())
        notes = list(listener.notifies(timeout=2, stop_after=1))
    assert result.requeued == 3 and [n.channel for n in notes] == ["retailcrm_events_ready"]
