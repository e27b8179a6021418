"""A circuit breaker per RetailCRM account, as a pure state machine (DESIGN §4 Delivery).

It stops us hammering a dead account and lets the backlog drain by itself once it recovers::

    closed ──(N consecutive failures, or failure rate ≥ R over the window with ≥ M requests)──▶ open
    open ──(cool-down elapsed)──▶ half-open ──(a probe succeeds)──▶ closed
                                       └──(a probe fails)──▶ open, with a longer cool-down (capped)

In half-open at most ``half_open_probes`` requests are let through; if none of them reports back
within ``probe_timeout`` (a worker died mid-request) new probes are allowed.

What counts: only **transient** failures (timeouts, connection errors, 5xx, throttling) are
failures. A validation error (``PERMANENT``) proves the account answers, so it is a success for the
breaker; "unit must act" errors (wrong key, access denied) are neither: the unit is paused by the
policy, and they say nothing about the account's health. :meth:`CircuitBreaker.record` applies that
rule for an :class:`~vochi_crm.pipeline.policy.ErrorClass`.

Time is always passed in (``now``, seconds). Use epoch seconds (``time.time()``) if the state is
ever shared between daemon instances — RetailCRM counts per key, not per instance, so the lead will
either elect one dispatcher or keep this state in PostgreSQL; ``to_dict``/``from_dict`` make it
serialisable for either choice. Within one process a monotonic clock is fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vochi_crm.pipeline.policy import ErrorClass


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    """Consecutive failures that open the breaker."""
    window: float = 60.0
    """Sliding window for the failure rate, seconds."""
    buckets: int = 12
    """The window is kept as this many fixed buckets (bounded memory, cheap to serialise)."""
    min_requests: int = 20
    """The failure rate is only judged over at least this many requests in the window."""
    failure_rate: float = 0.5
    cooldown: float = 10.0
    """First open period, seconds."""
    cooldown_factor: float = 2.0
    cooldown_max: float = 300.0
    half_open_probes: int = 1
    probe_timeout: float = 30.0

    def __post_init__(self) -> None:
        checks = {
            "failure_threshold": self.failure_threshold >= 1,
            "window": self.window > 0,
            "buckets": self.buckets >= 1,
            "min_requests": self.min_requests >= 1,
            "failure_rate": 0 < self.failure_rate <= 1,
            "cooldown": self.cooldown > 0,
            "cooldown_factor": self.cooldown_factor >= 1,
            "cooldown_max": self.cooldown_max >= self.cooldown,
            "half_open_probes": self.half_open_probes >= 1,
            "probe_timeout": self.probe_timeout > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid breaker config: {', '.join(bad)}")


@dataclass
class _Bucket:
    start: float
    successes: int = 0
    failures: int = 0


@dataclass
class CircuitBreaker:
    """Mutable, but pure: no clock, no I/O; every method takes ``now``."""

    config: BreakerConfig = field(default_factory=BreakerConfig)
    _state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    cooldown: float = 0.0
    """The current (or last) open period, seconds."""
    probes_in_flight: int = 0
    probes_since: float | None = None
    trips: int = 0
    """How many times the breaker opened (for /stats)."""
    last_change_at: float | None = None
    _buckets: list[_Bucket] = field(default_factory=list)

    # ---------------------------------------------------------------------------- queries

    @property
    def state(self) -> BreakerState:
        """The stored state. ``OPEN`` becomes ``HALF_OPEN`` at the next :meth:`allow` after the
        cool-down; use :meth:`state_at` for what ``allow`` would see."""
        return self._state

    def state_at(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now >= self.reopen_at():
            return BreakerState.HALF_OPEN
        return self._state

    def reopen_at(self) -> float:
        """When the open breaker lets the first probe through (``-inf`` when not open)."""
        if self._state is not BreakerState.OPEN or self.opened_at is None:
            return float("-inf")
        return self.opened_at + self.cooldown

    def retry_at(self, now: float) -> float:
        """When a caller refused by :meth:`allow` should ask again (``now`` if it may now)."""
        state = self.state_at(now)
        if state is BreakerState.OPEN:
            return self.reopen_at()
        if state is BreakerState.HALF_OPEN and self._probes_exhausted(now):
            assert self.probes_since is not None
            return self.probes_since + self.config.probe_timeout
        return now

    def window_counts(self, now: float) -> tuple[int, int]:
        """(requests, failures) in the sliding window ending at ``now``."""
        live = [b for b in self._buckets if b.start > now - self.config.window]
        return sum(b.successes + b.failures for b in live), sum(b.failures for b in live)

    # -------------------------------------------------------------------------- transitions

    def allow(self, now: float) -> bool:
        """May a request go to the account now? In half-open, each ``True`` is a probe."""
        if self._state is BreakerState.OPEN:
            if now < self.reopen_at():
                return False
            self._move(BreakerState.HALF_OPEN, now)
        if self._state is BreakerState.HALF_OPEN:
            if self._probes_exhausted(now):
                return False
            if self.probes_in_flight == 0 or self._probes_timed_out(now):
                self.probes_in_flight = 0
                self.probes_since = now
            self.probes_in_flight += 1
            return True
        return True

    def record_success(self, now: float) -> None:
        self._count(now, failed=False)
        self.consecutive_failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED, now)
            self.cooldown = 0.0
            self._buckets.clear()

    def record_failure(self, now: float) -> None:
        """Record a **transient** failure (see the module docstring for what counts)."""
        self._count(now, failed=True)
        self.consecutive_failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open(now, longer=True)
        elif self._state is BreakerState.CLOSED and self._should_trip(now):
            self._open(now, longer=False)
        # OPEN: a late answer from a request sent before opening changes nothing.

    def record(self, now: float, error: ErrorClass | None) -> None:
        """Record an outcome by class: ``None`` (success) and ``PERMANENT`` count as success,
        ``TRANSIENT`` as failure, ``UNIT_MUST_ACT`` not at all (only frees a probe slot)."""
        if error is None or error is ErrorClass.PERMANENT:
            self.record_success(now)
        elif error is ErrorClass.TRANSIENT:
            self.record_failure(now)
        elif self.probes_in_flight:
            self.probes_in_flight -= 1

    # ---------------------------------------------------------------------------- reporting

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """For ``/stats``: state, counters, window figures (at ``now`` when given)."""
        requests, failures = self.window_counts(now) if now is not None else self._all_counts()
        state = self.state_at(now) if now is not None else self._state
        return {
            "state": str(state),
            "consecutive_failures": self.consecutive_failures,
            "window_requests": requests,
            "window_failures": failures,
            "window_failure_rate": round(failures / requests, 4) if requests else 0.0,
            "opened_at": self.opened_at,
            "reopen_at": self.reopen_at() if self._state is BreakerState.OPEN else None,
            "cooldown": self.cooldown,
            "probes_in_flight": self.probes_in_flight,
            "trips": self.trips,
            "last_change_at": self.last_change_at,
        }

    def to_dict(self) -> dict[str, Any]:
        """Full, JSON-safe state (the config is not included: it comes from settings)."""
        return {
            "state": str(self._state),
            "consecutive_failures": self.consecutive_failures,
            "opened_at": self.opened_at,
            "cooldown": self.cooldown,
            "probes_in_flight": self.probes_in_flight,
            "probes_since": self.probes_since,
            "trips": self.trips,
            "last_change_at": self.last_change_at,
            "buckets": [[b.start, b.successes, b.failures] for b in self._buckets],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], config: BreakerConfig | None = None
    ) -> CircuitBreaker:
        """Rebuild from :meth:`to_dict` output; raises ``ValueError`` on a malformed value."""
        try:
            buckets = [
                _Bucket(float(start), int(ok), int(bad))
                for start, ok, bad in data.get("buckets", [])
            ]
            return cls(
                config=config or BreakerConfig(),
                _state=BreakerState(data.get("state", BreakerState.CLOSED)),
                consecutive_failures=int(data.get("consecutive_failures", 0)),
                opened_at=_opt_float(data.get("opened_at")),
                cooldown=float(data.get("cooldown", 0.0)),
                probes_in_flight=int(data.get("probes_in_flight", 0)),
                probes_since=_opt_float(data.get("probes_since")),
                trips=int(data.get("trips", 0)),
                last_change_at=_opt_float(data.get("last_change_at")),
                _buckets=buckets,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed breaker state: {exc}") from exc

    # ------------------------------------------------------------------------------ internals

    def _should_trip(self, now: float) -> bool:
        if self.consecutive_failures >= self.config.failure_threshold:
            return True
        requests, failures = self.window_counts(now)
        return requests >= self.config.min_requests and (
            failures / requests >= self.config.failure_rate
        )

    def _open(self, now: float, *, longer: bool) -> None:
        if longer and self.cooldown > 0:
            cooldown = self.cooldown * self.config.cooldown_factor
        else:
            cooldown = self.config.cooldown
        self.cooldown = min(cooldown, self.config.cooldown_max)
        self.opened_at = now
        self.trips += 1
        self._move(BreakerState.OPEN, now)

    def _move(self, state: BreakerState, now: float) -> None:
        self._state = state
        self.last_change_at = now
        self.probes_in_flight = 0
        self.probes_since = None

    def _probes_timed_out(self, now: float) -> bool:
        return (
            self.probes_since is not None and now - self.probes_since >= self.config.probe_timeout
        )

    def _probes_exhausted(self, now: float) -> bool:
        return self.probes_in_flight >= self.config.half_open_probes and not self._probes_timed_out(
            now
        )

    def _count(self, now: float, *, failed: bool) -> None:
        width = self.config.window / self.config.buckets
        start = now - (now % width)
        if not self._buckets or self._buckets[-1].start < start:
            self._buckets.append(_Bucket(start))
        # If the clock went backwards (another instance's clock, NTP), the newest bucket takes it.
        bucket = self._buckets[-1]
        if failed:
            bucket.failures += 1
        else:
            bucket.successes += 1
        horizon = max(now, bucket.start) - self.config.window
        self._buckets = [b for b in self._buckets if b.start > horizon]

    def _all_counts(self) -> tuple[int, int]:
        return (
            sum(b.successes + b.failures for b in self._buckets),
            sum(b.failures for b in self._buckets),
        )


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    return float(value)
