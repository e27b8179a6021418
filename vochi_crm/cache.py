"""A generic read-mostly cache: lazy load, single-flight misses, TTL insurance, periodic full
refresh with jitter, atomic snapshot swap, and invalidation by key (wired to LISTEN/NOTIFY by
the runtime).

Reads take no lock: on the hit path :meth:`SnapshotCache.get` is a dict lookup and a clock read.
The unit config cache and the call services' enablement matrix are both instances of it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar

from vochi_crm.aio import cancelling

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class CacheMetrics:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    load_seconds_total: float = 0.0
    invalidations: int = 0
    full_refreshes: int = 0
    refresh_seconds_total: float = 0.0
    last_refresh_at: float | None = None
    """Wall-clock time (epoch seconds) of the last completed full refresh."""

    def as_dict(self, size: int) -> dict[str, float | int | None]:
        lookups = self.hits + self.misses
        return {
            **asdict(self),
            "size": size,
            "hit_ratio": round(self.hits / lookups, 4) if lookups else None,
            "avg_load_ms": round(1000 * self.load_seconds_total / self.loads, 3)
            if self.loads
            else None,
        }


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class SnapshotCache(Generic[K, V]):
    """Invalidations win over loads that started before them: every key has an epoch (bumped by
    ``invalidate``), the cache a global one (bumped by ``invalidate_all``); a load or a refresh
    stores a value only if neither moved while it ran."""

    def __init__(
        self,
        load_one: Callable[[K], Awaitable[V]],
        load_all: Callable[[], Awaitable[Mapping[K, V]]],
        *,
        ttl: float,
        refresh_every: float,
        jitter: float = 0.15,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load_one = load_one
        self._load_all = load_all
        self._ttl = ttl
        self._refresh_every = refresh_every
        self._jitter = jitter
        self._clock = clock
        self._snapshot: dict[K, _Entry[V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._epochs: dict[K, int] = {}
        self._global_epoch = 0
        self.metrics = CacheMetrics()

    async def get(self, key: K) -> V:
        entry = self._snapshot.get(key)
        if entry is not None and entry.expires_at > self._clock():
            self.metrics.hits += 1
            return entry.value
        self.metrics.misses += 1
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._load_done(key, done))
        # shielded: a caller that gives up does not cancel the load the others wait for
        return await asyncio.shield(pending)

    def peek(self, key: K) -> V | None:
        """The cached value if fresh, without loading or counting."""
        entry = self._snapshot.get(key)
        return entry.value if entry is not None and entry.expires_at > self._clock() else None

    def invalidate(self, key: K) -> None:
        self.metrics.invalidations += 1
        self._epochs[key] = self._epochs.get(key, 0) + 1
        self._snapshot.pop(key, None)
        self._inflight.pop(key, None)  # later callers start a fresh load

    def invalidate_all(self) -> None:
        self.metrics.invalidations += 1
        self._global_epoch += 1
        self._snapshot = {}
        self._inflight = {}

    async def refresh_all(self) -> None:
        """Load everything and swap the snapshot in one assignment."""
        global_epoch, epochs = self._global_epoch, dict(self._epochs)
        started = self._clock()
        loaded = await self._load_all()
        now = self._clock()
        self.metrics.full_refreshes += 1
        self.metrics.refresh_seconds_total += now - started
        self.metrics.last_refresh_at = time.time()
        if global_epoch != self._global_epoch:
            return  # everything was invalidated meanwhile: what we loaded may be stale
        fresh = {k: _Entry(v, now + self._ttl) for k, v in loaded.items()}
        for key, epoch in self._epochs.items():
            if epochs.get(key, 0) != epoch:  # invalidated while we loaded: keep the live entry
                live = self._snapshot.get(key)
                if live is None:
                    fresh.pop(key, None)
                else:
                    fresh[key] = live
        self._snapshot = fresh

    async def run_refresher(self) -> None:
        """Refresh periodically with jitter until cancelled; a failed refresh is retried later."""
        while True:
            spread = self._refresh_every * self._jitter
            pause = self._refresh_every + random.uniform(-spread, spread)  # noqa: S311 - jitter
            await asyncio.sleep(pause)
            try:
                await self.refresh_all()
            except Exception as exc:  # the TTL keeps serving; the next round retries
                if cancelling():  # a stop request the driver turned into an error
                    raise asyncio.CancelledError from exc
                self.metrics.load_errors += 1

    def stats(self) -> dict[str, float | int | None]:
        return self.metrics.as_dict(len(self._snapshot))

    def _load_done(self, key: K, done: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is done:  # not a newer load started after an invalidation
            del self._inflight[key]

    async def _load(self, key: K) -> V:
        global_epoch, epoch = self._global_epoch, self._epochs.get(key, 0)
        started = self._clock()
        try:
            value = await self._load_one(key)
        except Exception:
            self.metrics.load_errors += 1
            raise
        now = self._clock()
        self.metrics.loads += 1
        self.metrics.load_seconds_total += now - started
        if global_epoch == self._global_epoch and epoch == self._epochs.get(key, 0):
            self._snapshot[key] = _Entry(value, now + self._ttl)
        return value
