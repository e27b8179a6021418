"""The delivery store's queries on real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from tests.integration.test_journal import Seed
from vochi_crm.db.database import Database
from vochi_crm.delivery.store import DeliveryStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def seed(database_url: str) -> Iterator[Seed]:
    s = Seed(database_url)
    s.unit("0367")
    s.unit("0400")
    yield s
    s.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[DeliveryStore]:
    db = Database(database_url)
    await db.open()
    yield DeliveryStore(db, "test-worker")
    await db.close()


async def test_linked_legs_are_other_calls_bridges_during_the_call(
    store: DeliveryStore, seed: Seed
) -> None:
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
