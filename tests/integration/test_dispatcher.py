"""Delivery on real PostgreSQL: the dispatcher (its unit lookup failing the way a busy pool fails,
or delivery switched off) and the store's follow-me query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from tests.integration.test_journal import Seed
from vochi_crm.db.database import Database
from vochi_crm.delivery.dispatcher import Dispatcher
from vochi_crm.delivery.store import DeliveryStore
from vochi_crm.errors import StorageUnavailable
from vochi_crm.settings import DeliverySettings
from vochi_crm.units import Unit

pytestmark = pytest.mark.anyio


@pytest.fixture
def seed(database_url: str) -> Iterator[Seed]:
    s = Seed(database_url)
    s.unit("0367")
    s.unit("0400")
    yield s
    s.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.open()
    yield database
    await database.close()


async def test_a_storage_failure_in_one_delivery_postpones_it_and_the_dispatcher_goes_on(
    db: Database, seed: Seed
) -> None:
    event = seed.event("0367", "a", "hangup", "pending", attempts=0, progress=0,
                       age=timedelta(seconds=1), last_error=None)
    lookups: list[str] = []
    looked_up = asyncio.Event()

    async def lookup(number: str) -> Unit | None:
        lookups.append(number)
        looked_up.set()
        raise StorageUnavailable("no database connection available in time")

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    dispatcher = Dispatcher(db, DeliverySettings(lease_seconds=60, poll_seconds=0.2), lookup)
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(10):
            await looked_up.wait()
        await asyncio.sleep(0.3)  # a few more wake-ups: the dispatcher is still leading
        assert dispatcher.leader and not task.done() and not dispatcher._running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop.set_exception_handler(None)
    # neither finished nor failed nor counted as an attempt: its lease brings it back
    assert seed.status(event) == ("processing", 0, 0, None)
    assert lookups == ["0367"]
    assert unhandled == []


async def test_an_instance_with_delivery_off_stores_events_and_never_leads(
    env: dict[str, str], seed: Seed
) -> None:
    import httpx

    from vochi_crm.settings import load_settings
    from vochi_daemon.app import create_app

    app = create_app(load_settings(delivery={"enabled": False, "poll_seconds": 0.1}))
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as http:
            answer = await http.post("/api/events", json={
                "enterprise_number": "0367", "event_type": "hangup",
                "payload": {"UniqueId": "1.1", "Phone": "375291112233", "CallType": 0}})
            assert answer.status_code == 202, answer.text
            await asyncio.sleep(0.5)  # a delivering instance would have claimed it by now
            stats = (await http.get("/stats")).json()
    assert runtime.dispatcher is None and stats["delivery"] is None
    row = seed.conn.execute(
        "SELECT status, leased_by FROM retailcrm_events WHERE call_unique_id = '1.1'"
    ).fetchone()
    assert row == ("pending", None)


async def test_linked_legs_are_other_calls_bridges_during_the_call(
    db: Database, seed: Seed
) -> None:
    store = DeliveryStore(db, "test-worker")
    def bridge(unit: str, call: str, seconds_ago: int, caller: str) -> None:
        payload = {"UniqueId": call, "CallerIDNum": caller, "ConnectedLineNum": "151"}
        seed.event(unit, call, "bridge", "skipped", age=timedelta(seconds=seconds_ago),
                   payload=payload)

    customer = "375291110001"
    bridge("0367", "1.69", 50, customer)  # before the call
    seed.event("0367", "1.70", "start", "skipped", age=timedelta(seconds=40))
    bridge("0367", "1.71", 30, "+375 (29) 111-00-01")
    bridge("0400", "1.71", 30, customer)  # another unit
    bridge("0367", "1.70", 25, customer)  # the call's own bridge
    bridge("0367", "1.74", 22, "375290000009")  # another customer
    bridge("0367", "1.72", 20, customer)
    hangup = seed.event("0367", "1.70", "hangup", "pending", age=timedelta(seconds=10))
    bridge("0367", "1.73", 5, customer)  # after the hangup
    until = seed.conn.execute(
        "SELECT received_at FROM retailcrm_events WHERE id = %s", (hangup,)
    ).fetchone()[0]

    legs = await store.linked_legs("0367", "1.70", customer, until)

    assert [leg.payload["UniqueId"] for leg in legs] == ["1.71", "1.72"]
    # on the clock the mapping uses (naive local time), in arrival order
    assert all(leg.received_at is not None and leg.received_at.tzinfo is None for leg in legs)
    assert legs[0].received_at < legs[1].received_at  # type: ignore[operator]
    # the customer on the other side of the bridge is found too
    seed.event("0367", "1.75", "bridge", "skipped", age=timedelta(seconds=15),
               payload={"UniqueId": "1.75", "CallerIDNum": "152", "ConnectedLineNum": customer})
    assert [leg.payload["UniqueId"] for leg in
            await store.linked_legs("0367", "1.70", customer, until)] == ["1.71", "1.72", "1.75"]
    # a call with no events of its own has no window
    assert await store.linked_legs("0367", "9.99", customer, until) == []
