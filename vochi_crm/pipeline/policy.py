"""Retry and expiry decisions for one queued event (DESIGN §4 Delivery), as pure functions.

The worker asks twice per delivery:

* :func:`decide_before_attempt` when it claims an event: deliver it, or expire a ring event that
  is already older than its TTL (a pop-up for a call that stopped ringing is worthless);
* :func:`decide_after_failure` when RetailCRM failed: what to do with the event now.

Failure classes (:class:`ErrorClass`, the lead maps exception types to them):

* ``PERMANENT`` (validation error, unmappable payload) → :class:`Fail` at once; replayable.
* ``UNIT_MUST_ACT`` (wrong key, access denied, account gone) → :class:`Pause`: the unit's delivery
  pauses until somebody fixes the config; the attempt must **not** be counted and the event must
  not be burned through retries.
* ``TRANSIENT`` (timeout, connection error, 5xx, 429/503 throttling): the first
  ``quick_retries`` failures get an in-place retry after 100–300 ms (:class:`DeliverNow` with a
  ``delay``); later ones are rescheduled in the queue (:class:`RetryAt`) with exponential backoff
  and full jitter (``uniform(0, min(cap, base·factor^n))``, floored at ``min_delay`` so a
  reschedule never hammers), never sooner than a server's ``Retry-After``. A live event whose
  retry would land after its TTL is :class:`Expire`-d instead; a history event is retried until
  ``max_age`` after ``retry_window_start`` (default: when the event was created), with one last
  try at that deadline, then :class:`Fail`-ed.

``attempts`` is the number of delivery attempts made so far *including the one that just failed*
(the queue's ``attempts`` column after incrementing). Randomness is injected (``rand`` returns a
float in ``[0, 1)``, e.g. ``random.random``) so tests are deterministic. Times are ``datetime``
values of one kind (all aware or all naive), the kind the queue stores ``next_attempt_at`` in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

Rand = Callable[[], float]


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNIT_MUST_ACT = "unit_must_act"


@dataclass(frozen=True)
class RetryPolicy:
    """Tunables, in seconds. Defaults follow DESIGN §4."""

    quick_retries: int = 2
    quick_delay_min: float = 0.1
    quick_delay_max: float = 0.3
    backoff_base: float = 2.0
    """Upper bound of the first rescheduled wait; it doubles (``backoff_factor``) each time."""
    backoff_factor: float = 2.0
    backoff_cap: float = 300.0
    min_delay: float = 0.5
    """Floor of a rescheduled wait (full jitter alone can draw zero)."""
    max_age: float = 24 * 3600.0
    """How long a history event is retried before it fails."""
    live_ttl: float = 60.0
    """How long a live ring event is worth delivering."""
    retry_after_max: float = 3600.0
    """A server's ``Retry-After`` is honoured up to this much."""

    def __post_init__(self) -> None:
        checks = {
            "quick_retries": self.quick_retries >= 0,
            "quick_delay_min": 0 <= self.quick_delay_min <= self.quick_delay_max,
            "backoff_base": self.backoff_base > 0,
            "backoff_factor": self.backoff_factor >= 1,
            "backoff_cap": self.backoff_cap >= self.backoff_base,
            "min_delay": 0 <= self.min_delay <= self.backoff_cap,
            "max_age": self.max_age > 0,
            "live_ttl": self.live_ttl > 0,
            "retry_after_max": self.retry_after_max >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid retry policy: {', '.join(bad)}")


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class DeliverNow:
    """Deliver (again) now, in place, after sleeping ``delay`` seconds (0 for a first attempt)."""

    delay: float = 0.0
    reason: str = "deliver"
    status: ClassVar[str] = "pending"


@dataclass(frozen=True)
class RetryAt:
    """Put the event back in the queue until ``when`` (``delay`` seconds from now)."""

    when: datetime
    delay: float
    reason: str
    status: ClassVar[str] = "pending"


@dataclass(frozen=True)
class Fail:
    reason: str
    status: ClassVar[str] = "failed"


@dataclass(frozen=True)
class Expire:
    reason: str
    status: ClassVar[str] = "expired"


@dataclass(frozen=True)
class Pause:
    """The unit must act; keep the event, do not count the attempt."""

    reason: str
    status: ClassVar[str] = "paused"


Decision = DeliverNow | RetryAt | Fail | Expire | Pause


def decide_before_attempt(
    *,
    created_at: datetime,
    now: datetime,
    live: bool,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> DeliverNow | Expire:
    """Deliver a claimed event, unless it is a ring event already past its TTL.

    History never expires here, however old: events of a paused unit wait for it to be fixed.
    """
    age = _seconds(now - created_at)
    if live and age >= policy.live_ttl:
        return Expire(f"ring event is {age:.0f}s old, TTL {policy.live_ttl:.0f}s")
    return DeliverNow()


def decide_after_failure(
    *,
    error: ErrorClass,
    attempts: int,
    created_at: datetime,
    now: datetime,
    live: bool,
    rand: Rand,
    retry_after: float | None = None,
    retry_window_start: datetime | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Decision:
    """What to do after a failed delivery attempt (see the module docstring)."""
    if error is ErrorClass.PERMANENT:
        return Fail("permanent error")
    if error is ErrorClass.UNIT_MUST_ACT:
        return Pause("the unit must fix its RetailCRM settings")

    live_deadline = created_at + timedelta(seconds=policy.live_ttl)
    if live and now >= live_deadline:
        return Expire("ring event outlived its TTL while failing")
    window_start = retry_window_start if retry_window_start is not None else created_at
    history_deadline = window_start + timedelta(seconds=policy.max_age)
    if not live and now >= history_deadline:
        return Fail(f"still failing after {policy.max_age:.0f}s of retries")

    server_wait = _server_wait(retry_after, policy)
    if attempts <= policy.quick_retries and server_wait <= policy.quick_delay_max:
        quick = policy.quick_delay_min + _unit(rand) * (
            policy.quick_delay_max - policy.quick_delay_min
        )
        return DeliverNow(max(quick, server_wait), f"quick retry {max(attempts, 1)}")

    step = max(attempts - policy.quick_retries, 1)
    ceiling = _ceiling(step, policy)
    delay = max(_unit(rand) * ceiling, policy.min_delay, server_wait)
    when = now + timedelta(seconds=delay)
    if live and when >= live_deadline:
        return Expire("the next retry would come after the ring event's TTL")
    if not live and when > history_deadline:
        when = history_deadline
        delay = _seconds(when - now)
        return RetryAt(when, delay, "last retry at the end of the retry window")
    reason = "server asked to retry later" if server_wait >= delay else f"backoff step {step}"
    return RetryAt(when, delay, reason)


def _ceiling(step: int, policy: RetryPolicy) -> float:
    """``min(cap, base·factor^(step-1))`` without overflowing for absurd attempt counts."""
    base, factor, cap = policy.backoff_base, policy.backoff_factor, policy.backoff_cap
    if factor == 1:
        return min(base, cap)
    steps_to_cap = math.ceil(math.log(cap / base, factor))
    return min(cap, base * factor ** min(step - 1, steps_to_cap))


def _server_wait(retry_after: float | None, policy: RetryPolicy) -> float:
    if retry_after is None or retry_after != retry_after or retry_after <= 0:  # None, NaN, <= 0
        return 0.0
    return min(retry_after, policy.retry_after_max)


def _unit(rand: Rand) -> float:
    """``rand()`` clamped to ``[0, 1]``: a bad random source must not produce a negative wait."""
    value = rand()
    if value != value:  # NaN
        return 0.0
    return min(max(value, 0.0), 1.0)


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()
