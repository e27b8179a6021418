"""Unit tests of the per-account circuit breaker (vochi_crm.pipeline.breaker)."""

from __future__ import annotations

import json
import random

import pytest

from vochi_crm.pipeline.breaker import BreakerConfig, BreakerState, CircuitBreaker
from vochi_crm.pipeline.policy import ErrorClass

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def tripped(now: float = 100.0, **config: float) -> CircuitBreaker:
    breaker = CircuitBreaker(BreakerConfig(**config))  # type: ignore[arg-type]
    for _ in range(breaker.config.failure_threshold):
        assert breaker.allow(now)
        breaker.record_failure(now)
    assert breaker.state is OPEN
    return breaker


def test_starts_closed_and_allows() -> None:
    breaker = CircuitBreaker()
    assert breaker.state is CLOSED
    assert all(breaker.allow(float(t)) for t in range(100))
    assert breaker.retry_at(5.0) == 5.0


def test_opens_on_consecutive_failures() -> None:
    breaker = CircuitBreaker()
    for i in range(4):
        breaker.record_failure(100.0 + i)
    assert breaker.state is CLOSED
    breaker.record_failure(104.0)
    assert breaker.state is OPEN
    assert breaker.opened_at == 104.0
    assert breaker.cooldown == 10.0
    assert breaker.trips == 1
    assert not breaker.allow(104.0)
    assert not breaker.allow(113.9)
    assert breaker.retry_at(105.0) == 114.0


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(BreakerConfig(min_requests=1000))  # isolate the consecutive rule
    for i in range(20):
        breaker.record_failure(float(i))
        if i % 4 == 3:
            breaker.record_success(float(i))
    assert breaker.state is CLOSED


def test_opens_on_failure_rate_over_the_window() -> None:
    breaker = CircuitBreaker(BreakerConfig(min_requests=20, failure_rate=0.5))
    now = 1000.0
    for i in range(19):  # alternate: never 5 in a row, rate 9/19 or 10/19 but too few requests
        if i % 2:
            breaker.record_success(now)
        else:
            breaker.record_failure(now)
        now += 0.1
    assert breaker.state is CLOSED
    breaker.record_success(now)  # 20 requests, 10 failures
    assert breaker.state is CLOSED  # only failures trip
    breaker.record_failure(now)  # 21 requests, 11 failures ≥ 50 %
    assert breaker.state is OPEN


def test_low_failure_rate_does_not_open() -> None:
    breaker = CircuitBreaker()
    for i in range(300):
        if i % 3 == 0:
            breaker.record_failure(i * 0.1)
        else:
            breaker.record_success(i * 0.1)
    assert breaker.state is CLOSED


def test_old_failures_slide_out_of_the_window() -> None:
    breaker = CircuitBreaker(BreakerConfig(min_requests=10, failure_rate=0.6, window=60.0))
    for i in range(8):
        breaker.record_failure(float(i * 5))
        breaker.record_success(float(i * 5))
    assert breaker.window_counts(40.0) == (16, 8)
    assert breaker.window_counts(200.0) == (0, 0)
    assert breaker.state is CLOSED  # 50 % < 60 %
    breaker.record_failure(200.0)  # 1/1 in the window, but below min_requests
    assert breaker.state is CLOSED
    assert len(breaker.to_dict()["buckets"]) <= breaker.config.buckets + 1


def test_half_open_after_cooldown_allows_one_probe_and_success_closes() -> None:
    breaker = tripped()
    assert breaker.state_at(110.0) is HALF
    assert breaker.state is OPEN  # stored state only moves on allow()
    assert breaker.allow(110.0)
    assert breaker.state is HALF
    assert not breaker.allow(110.5)  # K = 1
    breaker.record_success(111.0)
    assert breaker.state is CLOSED
    assert breaker.cooldown == 0.0
    assert breaker.window_counts(111.0) == (0, 0)  # a fresh start, old failures forgotten
    assert breaker.allow(111.0)


def test_probe_failure_reopens_with_a_longer_capped_cooldown() -> None:
    breaker = tripped(cooldown=10.0, cooldown_factor=2.0, cooldown_max=35.0)
    now = 100.0
    cooldowns = []
    for _ in range(5):
        now = breaker.reopen_at()
        assert breaker.allow(now)
        breaker.record_failure(now)
        assert breaker.state is OPEN
        cooldowns.append(breaker.cooldown)
    assert cooldowns == [20.0, 35.0, 35.0, 35.0, 35.0]
    assert breaker.trips == 6
    # Recovery resets the cool-down for the next trip.
    now = breaker.reopen_at()
    assert breaker.allow(now)
    breaker.record_success(now)
    for _ in range(5):
        breaker.record_failure(now + 1)
    assert breaker.cooldown == 10.0


def test_several_probes() -> None:
    breaker = tripped(half_open_probes=3)
    assert [breaker.allow(110.0) for _ in range(4)] == [True, True, True, False]
    breaker.record_success(110.5)
    assert breaker.state is CLOSED


def test_lost_probes_are_replaced_after_the_probe_timeout() -> None:
    breaker = tripped(probe_timeout=30.0)
    assert breaker.allow(110.0)
    assert not breaker.allow(139.0)
    assert breaker.retry_at(139.0) == 140.0
    assert breaker.allow(140.0)  # the first probe never reported back


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    breaker = tripped()
    breaker.record_failure(105.0)
    breaker.record_success(106.0)
    assert breaker.state is OPEN
    assert breaker.reopen_at() == 110.0


@pytest.mark.parametrize(
    ("error", "state"),
    [(None, CLOSED), (ErrorClass.PERMANENT, CLOSED), (ErrorClass.TRANSIENT, OPEN)],
)
def test_record_by_error_class_in_half_open(error: ErrorClass | None, state: BreakerState) -> None:
    breaker = tripped()
    assert breaker.allow(110.0)
    breaker.record(110.5, error)
    assert breaker.state is state


def test_unit_must_act_is_neutral_but_frees_the_probe() -> None:
    breaker = tripped()
    assert breaker.allow(110.0)
    breaker.record(110.5, ErrorClass.UNIT_MUST_ACT)
    assert breaker.state is HALF
    assert breaker.allow(111.0)


def test_only_transient_failures_count_when_closed() -> None:
    breaker = CircuitBreaker()
    for i in range(50):
        breaker.record(float(i), ErrorClass.PERMANENT)
        breaker.record(float(i), ErrorClass.UNIT_MUST_ACT)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    for i in range(5):
        breaker.record(100.0 + i, ErrorClass.TRANSIENT)
    assert breaker.state is OPEN


def test_snapshot_for_stats() -> None:
    breaker = tripped()
    snap = breaker.snapshot(105.0)
    assert snap["state"] == "open"
    assert snap["consecutive_failures"] == 5
    assert snap["window_requests"] == 5 and snap["window_failures"] == 5
    assert snap["window_failure_rate"] == 1.0
    assert snap["reopen_at"] == 110.0
    assert snap["trips"] == 1
    assert breaker.snapshot(111.0)["state"] == "half_open"
    assert breaker.snapshot()["state"] == "open"
    json.dumps(snap)
    assert CircuitBreaker().snapshot()["window_failure_rate"] == 0.0


def test_round_trip_keeps_behaviour() -> None:
    breaker = tripped()
    stored = json.loads(json.dumps(breaker.to_dict()))
    copy = CircuitBreaker.from_dict(stored)
    assert copy.to_dict() == breaker.to_dict()
    assert copy.state is OPEN
    assert not copy.allow(105.0)
    assert copy.allow(110.0)
    assert CircuitBreaker.from_dict({}).state is CLOSED


@pytest.mark.parametrize(
    "stored",
    [{"state": "melted"}, {"buckets": [[1, 2]]}, {"opened_at": "soon"}, {"trips": None}],
)
def test_malformed_state_is_rejected(stored: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed breaker state"):
        CircuitBreaker.from_dict(stored)


def test_clock_going_backwards_does_not_crash_or_reopen() -> None:
    breaker = CircuitBreaker()
    breaker.record_success(1000.0)
    breaker.record_failure(900.0)
    breaker.record_success(950.0)
    assert breaker.state is CLOSED
    opened = tripped()
    assert not opened.allow(50.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"cooldown": 0}, "cooldown"),
        ({"cooldown_max": 1.0}, "cooldown_max"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"buckets": 0}, "buckets"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_random_walk_invariants() -> None:
    rng = random.Random(11)
    breaker = CircuitBreaker(BreakerConfig(half_open_probes=2))
    now = 0.0
    for _ in range(5000):
        now += rng.random() * 2
        allowed = breaker.allow(now)
        state = breaker.state
        if state is OPEN:
            assert not allowed and now < breaker.reopen_at()
        if allowed:
            outcome = rng.choice([None, None, ErrorClass.TRANSIENT, ErrorClass.PERMANENT])
            breaker.record(now, outcome)
        assert breaker.probes_in_flight <= 2
        assert breaker.cooldown <= breaker.config.cooldown_max
    assert breaker.trips > 0
