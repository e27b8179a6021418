"""SnapshotCache with a fake clock and controllable async loaders: no sleeps, no database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import pytest

from vochi_crm.cache import SnapshotCache

pytestmark = pytest.mark.anyio

TTL = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Source:
    """The loaders: values by key, call records, an optional gate that holds loads open."""

    def __init__(self, clock: FakeClock, values: dict[str, str] | None = None) -> None:
        self.clock = clock
        self.values = dict(values or {})
        self.one_calls: list[str] = []
        self.all_calls = 0
        self.gate: asyncio.Event | None = None
        self.all_gate: asyncio.Event | None = None
        self.started = 0
        self.fail_one: list[BaseException] = []  # raised by the next load_one calls, in order
        self.fail_all: list[BaseException] = []
        self.one_duration = 0.0
        self.all_duration = 0.0

    async def load_one(self, key: str) -> str:
        self.one_calls.append(key)
        self.started += 1
        value = self.values[key]  # read before waiting: what the database said at that moment
        if self.gate is not None:
            await self.gate.wait()
        self.clock.advance(self.one_duration)
        if self.fail_one:
            raise self.fail_one.pop(0)
        return value

    async def load_all(self) -> Mapping[str, str]:
        self.all_calls += 1
        snapshot = dict(self.values)
        if self.all_gate is not None:
            await self.all_gate.wait()
        self.clock.advance(self.all_duration)
        if self.fail_all:
            raise self.fail_all.pop(0)
        return snapshot


def make(
    values: dict[str, str] | None = None,
) -> tuple[SnapshotCache[str, str], Source, FakeClock]:
    clock = FakeClock()
    source = Source(clock, values)
    cache: SnapshotCache[str, str] = SnapshotCache(
        source.load_one, source.load_all, ttl=TTL, refresh_every=60.0, jitter=0.0, clock=clock
    )
    return cache, source, clock


async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# -- hits and misses -----------------------------------------------------------------------------


async def test_miss_then_hit() -> None:
    cache, source, _ = make({"a": "A1"})
    assert await cache.get("a") == "A1"
    assert source.one_calls == ["a"]
    assert cache.metrics.misses == 1
    assert cache.metrics.hits == 0
    assert cache.metrics.loads == 1
    assert await cache.get("a") == "A1"
    assert await cache.get("a") == "A1"
    assert source.one_calls == ["a"]
    assert cache.metrics.hits == 2
    assert cache.metrics.misses == 1
    assert cache.peek("a") == "A1"
    assert cache.metrics.hits == 2  # peek counts nothing


async def test_peek_does_not_load() -> None:
    cache, source, _ = make({"a": "A1"})
    assert cache.peek("a") is None
    assert source.one_calls == []
    assert cache.metrics.misses == 0


async def test_stats_hit_ratio_and_size() -> None:
    cache, _, _ = make({"a": "A1", "b": "B1"})
    empty = cache.stats()
    assert empty["hit_ratio"] is None
    assert empty["avg_load_ms"] is None
    assert empty["size"] == 0
    await cache.get("a")
    for _ in range(3):
        await cache.get("a")
    stats = cache.stats()
    assert stats["hits"] == 3
    assert stats["misses"] == 1
    assert stats["hit_ratio"] == 0.75
    assert stats["size"] == 1
    await cache.get("b")
    stats = cache.stats()
    assert stats["hit_ratio"] == 0.6
    assert stats["size"] == 2
    cache.metrics.hits, cache.metrics.misses = 1, 2
    assert cache.stats()["hit_ratio"] == 0.3333


async def test_avg_load_ms_uses_the_clock() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    source.one_duration = 0.010
    await cache.get("a")
    source.one_duration = 0.030
    await cache.get("b")
    assert cache.stats()["avg_load_ms"] == pytest.approx(20.0)


async def test_avg_load_ms_is_not_skewed_by_full_refreshes() -> None:
    """avg_load_ms divides by ``loads`` (single loads); a 1 s refresh must not make a 10 ms load
    look like a 1010 ms one."""
    cache, source, _ = make({"a": "A1"})
    source.one_duration = 0.010
    await cache.get("a")
    source.all_duration = 1.0
    await cache.refresh_all()
    assert cache.stats()["avg_load_ms"] == pytest.approx(10.0)


# -- single flight -------------------------------------------------------------------------------


async def test_concurrent_misses_load_once() -> None:
    cache, source, _ = make({"a": "A1"})
    source.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get("a")) for _ in range(20)]
    await settle()
    assert source.one_calls == ["a"]
    source.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert results == ["A1"] * 20
    assert source.one_calls == ["a"]
    assert cache.metrics.loads == 1
    assert cache.metrics.misses == 20
    assert cache.peek("a") == "A1"


async def test_different_keys_load_independently() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    source.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get(k)) for k in ("a", "b", "a", "b")]
    await settle()
    assert sorted(source.one_calls) == ["a", "b"]
    source.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 2) == ["A1", "B1", "A1", "B1"]


async def test_loader_error_reaches_every_waiter_and_is_not_cached() -> None:
    cache, source, _ = make({"a": "A1"})
    boom = RuntimeError("database down")
    source.fail_one = [boom]
    source.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get("a")) for _ in range(5)]
    await settle()
    source.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
    assert len(results) == 5
    for result in results:
        assert isinstance(result, RuntimeError)
        assert str(result) == "database down"
    assert source.one_calls == ["a"]
    assert cache.metrics.load_errors == 1
    assert cache.metrics.loads == 0
    assert cache.peek("a") is None
    # not cached: the next get loads again and succeeds
    assert await cache.get("a") == "A1"
    assert source.one_calls == ["a", "a"]
    assert cache.metrics.load_errors == 1


async def test_single_caller_sees_loader_error() -> None:
    cache, source, _ = make({"a": "A1"})
    source.fail_one = [KeyError("a")]
    with pytest.raises(KeyError):
        await cache.get("a")
    assert await cache.get("a") == "A1"


async def test_cancelled_first_caller_does_not_cancel_the_other_waiters() -> None:
    """The request that triggered a load goes away (client disconnect): the others still get the
    value instead of a CancelledError they never asked for."""
    cache, source, _ = make({"a": "A1"})
    source.gate = asyncio.Event()
    leader = asyncio.create_task(cache.get("a"))
    await settle()
    followers = [asyncio.create_task(cache.get("a")) for _ in range(3)]
    await settle()
    leader.cancel()
    await settle()
    source.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*followers, return_exceptions=True), 2)
    assert results == ["A1"] * 3
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_an_old_load_finishing_late_does_not_unregister_the_newer_one() -> None:
    cache, source, _ = make({"a": "A1"})
    old_gate, new_gate = asyncio.Event(), asyncio.Event()
    source.gate = old_gate
    first = asyncio.create_task(cache.get("a"))
    await settle()
    source.values["a"] = "A2"
    cache.invalidate("a")
    source.gate = new_gate
    second = asyncio.create_task(cache.get("a"))  # a fresh load of the new version
    await settle()
    old_gate.set()  # the stale load ends while the fresh one is still in flight
    assert await asyncio.wait_for(first, 2) == "A1"
    third = asyncio.create_task(cache.get("a"))  # must join the fresh load, not start another
    await settle()
    new_gate.set()
    assert await asyncio.wait_for(asyncio.gather(second, third), 2) == ["A2", "A2"]
    assert source.one_calls == ["a", "a"]


# -- expiry and invalidation ---------------------------------------------------------------------


async def test_ttl_expiry_reloads() -> None:
    cache, source, clock = make({"a": "A1"})
    await cache.get("a")
    clock.advance(TTL - 0.1)
    source.values["a"] = "A2"
    assert await cache.get("a") == "A1"  # still fresh
    assert cache.peek("a") == "A1"
    clock.advance(0.1)  # exactly TTL after the load: expired
    assert cache.peek("a") is None
    assert await cache.get("a") == "A2"
    assert source.one_calls == ["a", "a"]
    assert cache.metrics.misses == 2
    assert cache.metrics.hits == 1


async def test_ttl_counts_from_the_end_of_the_load() -> None:
    cache, source, clock = make({"a": "A1"})
    source.one_duration = 3.0
    await cache.get("a")
    clock.advance(TTL - 0.5)
    assert cache.peek("a") == "A1"


async def test_invalidate_forces_a_reload_of_that_key_only() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    await cache.get("a")
    await cache.get("b")
    source.values["a"] = "A2"
    source.values["b"] = "B2"
    cache.invalidate("a")
    assert cache.metrics.invalidations == 1
    assert cache.peek("a") is None
    assert cache.peek("b") == "B1"
    assert await cache.get("a") == "A2"
    assert await cache.get("b") == "B1"
    assert source.one_calls == ["a", "b", "a"]


async def test_invalidate_unknown_key_is_harmless() -> None:
    cache, _, _ = make({"a": "A1"})
    cache.invalidate("nope")
    assert cache.metrics.invalidations == 1
    assert cache.stats()["size"] == 0


async def test_invalidate_all() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    await cache.get("a")
    await cache.get("b")
    cache.invalidate_all()
    assert cache.metrics.invalidations == 1
    assert cache.stats()["size"] == 0
    assert cache.peek("a") is None
    assert cache.peek("b") is None
    await cache.get("a")
    await cache.get("b")
    assert source.one_calls == ["a", "b", "a", "b"]


async def test_invalidation_during_a_load_is_not_overwritten_by_the_stale_result() -> None:
    cache, source, _ = make({"a": "A1"})
    source.gate = asyncio.Event()
    pending = asyncio.create_task(cache.get("a"))
    await settle()
    source.values["a"] = "A2"  # the row changes after the loader read it…
    cache.invalidate("a")  # …and NOTIFY arrives while the load is still in flight
    source.gate.set()
    assert await asyncio.wait_for(pending, 2) == "A1"
    assert cache.peek("a") is None  # the stale value was not cached
    source.gate = None
    assert await cache.get("a") == "A2"


# -- full refresh --------------------------------------------------------------------------------


async def test_refresh_all_swaps_the_snapshot() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1", "gone": "G"})
    await cache.get("gone")
    del source.values["gone"]
    before = time.time()
    await cache.refresh_all()
    after = time.time()
    assert cache.metrics.full_refreshes == 1
    last = cache.metrics.last_refresh_at
    assert last is not None
    assert before <= last <= after  # wall clock, not the injected monotonic clock
    assert cache.peek("a") == "A1"
    assert cache.peek("b") == "B1"
    assert cache.peek("gone") is None  # a unit that disappeared is dropped
    assert cache.stats()["size"] == 2
    assert await cache.get("a") == "A1"
    assert source.one_calls == ["gone"]  # served from the refreshed snapshot
    assert cache.metrics.hits == 1


async def test_refresh_all_entries_get_a_ttl() -> None:
    cache, _, clock = make({"a": "A1"})
    await cache.refresh_all()
    clock.advance(TTL)
    assert cache.peek("a") is None


async def test_readers_see_the_old_snapshot_until_the_swap() -> None:
    cache, source, _ = make({"a": "A1"})
    await cache.get("a")
    source.values["a"] = "A2"
    source.all_gate = asyncio.Event()
    refresh = asyncio.create_task(cache.refresh_all())
    await settle()
    assert source.all_calls == 1
    assert await cache.get("a") == "A1"  # a hit on the old snapshot, no lock, no load
    assert cache.metrics.full_refreshes == 0
    source.all_gate.set()
    await asyncio.wait_for(refresh, 2)
    assert await cache.get("a") == "A2"
    assert source.one_calls == ["a"]
    assert cache.metrics.full_refreshes == 1


async def test_failed_refresh_keeps_the_snapshot() -> None:
    cache, source, _ = make({"a": "A1"})
    await cache.get("a")
    source.fail_all = [RuntimeError("timeout")]
    with pytest.raises(RuntimeError, match="timeout"):
        await cache.refresh_all()
    assert cache.peek("a") == "A1"
    assert cache.metrics.full_refreshes == 0
    assert cache.metrics.last_refresh_at is None


async def test_invalidation_during_refresh_is_not_overwritten() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    await cache.get("a")
    await cache.get("b")
    source.all_gate = asyncio.Event()
    refresh = asyncio.create_task(cache.refresh_all())
    await settle()
    source.values["a"] = "A2"
    cache.invalidate("a")
    source.all_gate.set()
    await asyncio.wait_for(refresh, 2)
    assert cache.peek("a") is None  # the refresh read A1 before the invalidation
    assert cache.peek("b") == "B1"
    assert await cache.get("a") == "A2"


async def test_reload_after_invalidation_during_refresh_is_not_overwritten_by_the_refresh() -> None:
    """invalidate(a) and a fresh load of a both happen while a slow refresh is in flight: the
    refresh (which read the old row) must not put the old value back over the new one."""
    cache, source, _ = make({"a": "A1", "b": "B1"})
    await cache.get("a")
    source.all_gate = asyncio.Event()
    refresh = asyncio.create_task(cache.refresh_all())
    await settle()  # load_all has read a = A1
    source.values["a"] = "A2"
    cache.invalidate("a")
    assert await cache.get("a") == "A2"  # reloaded, cached
    source.all_gate.set()
    await asyncio.wait_for(refresh, 2)
    assert cache.peek("a") == "A2"


async def test_invalidate_all_during_refresh_drops_everything_loaded() -> None:
    cache, source, _ = make({"a": "A1", "b": "B1"})
    await cache.get("a")
    source.all_gate = asyncio.Event()
    refresh = asyncio.create_task(cache.refresh_all())
    await settle()
    cache.invalidate_all()
    source.all_gate.set()
    await asyncio.wait_for(refresh, 2)
    assert cache.peek("a") is None
    assert cache.peek("b") is None
    assert cache.metrics.full_refreshes == 1


async def test_run_refresher_retries_after_a_failure() -> None:
    clock = FakeClock()
    source = Source(clock, {"a": "A1"})
    source.fail_all = [RuntimeError("first round fails")]
    cache: SnapshotCache[str, str] = SnapshotCache(
        source.load_one, source.load_all, ttl=TTL, refresh_every=0.001, jitter=0.0, clock=clock
    )
    runner = asyncio.create_task(cache.run_refresher())
    try:
        for _ in range(200):
            if cache.metrics.full_refreshes:
                break
            await asyncio.sleep(0.001)
    finally:
        runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert cache.metrics.load_errors == 1
    assert cache.metrics.full_refreshes >= 1
    assert cache.peek("a") == "A1"
