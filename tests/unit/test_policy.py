"""Unit tests of the retry/expiry policy (vochi_crm.pipeline.policy)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vochi_crm.pipeline.policy import (
    DEFAULT_POLICY,
    DeliverNow,
    ErrorClass,
    Expire,
    Fail,
    Pause,
    RetryAt,
    RetryPolicy,
    decide_after_failure,
    decide_before_attempt,
)

T0 = datetime(2025, 9, 13, 12, 0, 0, tzinfo=UTC)


def const(value: float) -> Callable[[], float]:
    return lambda: value


MIDDLE = const(0.5)


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fail(
    attempts: int,
    *,
    error: ErrorClass = ErrorClass.TRANSIENT,
    age: float = 1.0,
    live: bool = False,
    rand: Callable[[], float] = MIDDLE,
    **kw: Any,
) -> Any:
    return decide_after_failure(
        error=error, attempts=attempts, created_at=T0, now=after(age), live=live, rand=rand, **kw
    )


# ------------------------------------------------------------------------------ classes


def test_error_class_values_are_stable() -> None:
    assert [e.value for e in ErrorClass] == ["transient", "permanent", "unit_must_act"]


@pytest.mark.parametrize("attempts", [1, 2, 3, 50])
@pytest.mark.parametrize("live", [True, False])
def test_permanent_errors_fail_at_once(attempts: int, live: bool) -> None:
    decision = fail(attempts, error=ErrorClass.PERMANENT, live=live)
    assert isinstance(decision, Fail)
    assert decision.status == "failed"


@pytest.mark.parametrize("live", [True, False])
def test_unit_must_act_pauses_even_when_old(live: bool) -> None:
    decision = fail(1, error=ErrorClass.UNIT_MUST_ACT, live=live, age=10 * 86400)
    assert isinstance(decision, Pause)
    assert decision.status == "paused"


def test_decision_statuses() -> None:
    assert DeliverNow().status == "pending"
    assert RetryAt(T0, 1.0, "x").status == "pending"
    assert Expire("x").status == "expired"


# ------------------------------------------------------------------------ quick retries


@pytest.mark.parametrize(("rand", "delay"), [(0.0, 0.1), (0.5, 0.2), (0.999999, 0.3)])
def test_first_failures_retry_in_place_quickly(rand: float, delay: float) -> None:
    for attempts in (1, 2):
        decision = fail(attempts, rand=const(rand))
        assert isinstance(decision, DeliverNow)
        assert decision.delay == pytest.approx(delay, abs=1e-6)
        assert decision.status == "pending"


def test_third_failure_is_rescheduled() -> None:
    decision = fail(3, rand=const(1.0))
    assert isinstance(decision, RetryAt)
    assert decision.delay == pytest.approx(DEFAULT_POLICY.backoff_base)
    assert decision.when == after(1.0) + timedelta(seconds=decision.delay)


def test_zero_quick_retries_reschedules_at_once() -> None:
    decision = fail(1, policy=RetryPolicy(quick_retries=0), rand=const(1.0))
    assert isinstance(decision, RetryAt) and decision.delay == pytest.approx(2.0)


# ----------------------------------------------------------------------------- backoff


def test_backoff_ceiling_doubles_until_the_cap() -> None:
    delays = []
    for attempts in range(3, 15):
        decision = fail(attempts, rand=const(1.0))
        assert isinstance(decision, RetryAt)
        delays.append(decision.delay)
    assert delays[:6] == pytest.approx([2, 4, 8, 16, 32, 64])
    assert delays == sorted(delays)
    assert max(delays) == pytest.approx(300.0)


def test_backoff_survives_absurd_attempt_counts() -> None:
    decision = fail(10**9, rand=const(1.0))
    assert isinstance(decision, RetryAt) and decision.delay == pytest.approx(300.0)
    flat = RetryPolicy(backoff_factor=1.0)
    decision = fail(10**9, rand=const(1.0), policy=flat)
    assert isinstance(decision, RetryAt) and decision.delay == pytest.approx(2.0)


def test_full_jitter_spreads_over_the_whole_range_with_a_floor() -> None:
    rng = random.Random(7)
    delays = []
    for _ in range(2000):
        decision = fail(6, rand=rng.random)  # ceiling 16 s
        assert isinstance(decision, RetryAt)
        delays.append(decision.delay)
    assert min(delays) >= DEFAULT_POLICY.min_delay
    assert max(delays) <= 16.0
    assert min(delays) < 1.0 and max(delays) > 15.0  # full jitter, not equal jitter
    assert len({round(d, 3) for d in delays}) > 1000


@pytest.mark.parametrize("bad", [float("nan"), -5.0, 7.0])
def test_a_bad_random_source_cannot_produce_a_bad_wait(bad: float) -> None:
    quick = fail(1, rand=const(bad))
    assert isinstance(quick, DeliverNow) and 0.1 <= quick.delay <= 0.3
    later = fail(5, rand=const(bad))
    assert isinstance(later, RetryAt) and 0.5 <= later.delay <= 8.0


# ------------------------------------------------------------------------- retry-after


def test_retry_after_is_honoured_instead_of_a_quick_retry() -> None:
    decision = fail(1, retry_after=5.0, rand=const(0.0))
    assert isinstance(decision, RetryAt)
    assert decision.delay == pytest.approx(5.0)
    assert decision.reason == "server asked to retry later"


def test_short_retry_after_stays_in_place() -> None:
    decision = fail(1, retry_after=0.25, rand=const(0.0))
    assert isinstance(decision, DeliverNow) and decision.delay == pytest.approx(0.25)


def test_retry_after_is_a_floor_for_backoff() -> None:
    decision = fail(9, retry_after=1.0, rand=const(1.0))  # backoff ceiling 128 s
    assert isinstance(decision, RetryAt) and decision.delay == pytest.approx(128.0)
    decision = fail(4, retry_after=100.0, rand=const(1.0))
    assert isinstance(decision, RetryAt) and decision.delay == pytest.approx(100.0)


def test_retry_after_is_capped() -> None:
    decision = fail(1, retry_after=10**7)
    assert isinstance(decision, RetryAt)
    assert decision.delay == pytest.approx(DEFAULT_POLICY.retry_after_max)


@pytest.mark.parametrize("value", [None, 0.0, -3.0, float("nan")])
def test_meaningless_retry_after_is_ignored(value: float | None) -> None:
    assert isinstance(fail(1, retry_after=value), DeliverNow)


# ------------------------------------------------------------------------- live events


def test_live_event_before_attempt() -> None:
    assert isinstance(decide_before_attempt(created_at=T0, now=after(59.9), live=True), DeliverNow)
    decision = decide_before_attempt(created_at=T0, now=after(60), live=True)
    assert isinstance(decision, Expire) and decision.status == "expired"


def test_history_never_expires_before_attempt() -> None:
    decision = decide_before_attempt(created_at=T0, now=after(30 * 86400), live=False)
    assert decision == DeliverNow()


def test_live_event_failing_past_its_ttl_expires() -> None:
    assert isinstance(fail(1, live=True, age=61), Expire)


def test_live_event_whose_next_retry_would_be_late_expires() -> None:
    decision = fail(3, live=True, age=59.0, rand=const(1.0))  # would wait 2 s
    assert isinstance(decision, Expire)
    decision = fail(3, live=True, age=10.0, rand=const(1.0))
    assert isinstance(decision, RetryAt)
    assert decision.when < T0 + timedelta(seconds=60)


def test_live_quick_retry_within_ttl() -> None:
    assert isinstance(fail(1, live=True, age=5), DeliverNow)


def test_live_event_with_long_retry_after_expires() -> None:
    assert isinstance(fail(1, live=True, age=5, retry_after=120), Expire)


def test_custom_live_ttl() -> None:
    policy = RetryPolicy(live_ttl=10)
    decision = decide_before_attempt(created_at=T0, now=after(11), live=True, policy=policy)
    assert isinstance(decision, Expire)


# ---------------------------------------------------------------------- history window


def test_history_fails_after_max_age() -> None:
    decision = fail(40, age=86400)
    assert isinstance(decision, Fail) and "86400" in decision.reason


def test_last_retry_is_clamped_to_the_end_of_the_window() -> None:
    decision = fail(40, age=86400 - 10, rand=const(1.0))  # would wait 300 s
    assert isinstance(decision, RetryAt)
    assert decision.when == T0 + timedelta(seconds=86400)
    assert decision.delay == pytest.approx(10.0)
    assert decision.reason == "last retry at the end of the retry window"


def test_retry_window_can_start_after_a_pause() -> None:
    resumed = T0 + timedelta(days=3)
    decision = fail(3, age=3 * 86400 + 5, retry_window_start=resumed)
    assert isinstance(decision, RetryAt)
    assert isinstance(fail(3, age=3 * 86400 + 5), Fail)


def test_naive_datetimes_work_too() -> None:
    naive = datetime(2025, 9, 13, 12, 0, 0)
    decision = decide_after_failure(
        error=ErrorClass.TRANSIENT,
        attempts=3,
        created_at=naive,
        now=naive + timedelta(seconds=1),
        live=False,
        rand=const(1.0),
    )
    assert isinstance(decision, RetryAt) and decision.when.tzinfo is None


# ----------------------------------------------------------------------------- sweep


def test_sweep_every_combination_is_consistent() -> None:
    """Whatever the inputs, the decision is one of the five and respects the bounds."""
    grid = itertools.product(
        list(ErrorClass),
        [0, 1, 2, 3, 7, 30],
        [0.0, 1.0, 59.0, 60.0, 3600.0, 86399.0, 86400.0, 10 * 86400.0],
        [True, False],
        [None, 0.2, 30.0],
        [0.0, 0.5, 1.0],
    )
    for error, attempts, age, live, retry_after, rand in grid:
        decision = fail(
            attempts, error=error, age=age, live=live, retry_after=retry_after, rand=const(rand)
        )
        now = after(age)
        if error is ErrorClass.PERMANENT:
            assert isinstance(decision, Fail)
        elif error is ErrorClass.UNIT_MUST_ACT:
            assert isinstance(decision, Pause)
        elif isinstance(decision, DeliverNow):
            assert 0.1 <= decision.delay <= 0.3
            assert attempts <= 2
        elif isinstance(decision, RetryAt):
            assert decision.when > now
            assert decision.delay <= max(300.0, retry_after or 0.0)
            if retry_after:
                assert decision.delay >= retry_after or decision.reason.startswith("last retry")
            if live:
                assert decision.when < T0 + timedelta(seconds=60)
            else:
                assert decision.when <= T0 + timedelta(days=1)
        elif isinstance(decision, Expire):
            assert live
        else:
            assert isinstance(decision, Fail) and not live and age >= 86400


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quick_retries": -1}, "quick_retries"),
        ({"quick_delay_min": 0.5, "quick_delay_max": 0.1}, "quick_delay_min"),
        ({"backoff_base": 0}, "backoff_base"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"backoff_cap": 1.0}, "backoff_cap"),
        ({"max_age": 0}, "max_age"),
        ({"live_ttl": -1}, "live_ttl"),
    ],
)
def test_policy_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
