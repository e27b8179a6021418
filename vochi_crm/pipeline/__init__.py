"""The pure decisions of the delivery pipeline (DESIGN §2 rule 5, §4 "Delivery").

No I/O, no clock reads, no randomness of their own: time and random sources are parameters, so
every decision is a plain function (or a small state machine) with unit tests.

* :mod:`~vochi_crm.pipeline.mapping` — Asterisk events → RetailCRM requests (+ call state);
  helpers in ``payload`` (tolerant field readers), ``callstate``, ``history`` (outcome and the
  ``calls/upload`` record) and ``plan`` (request and result types).
* :mod:`~vochi_crm.pipeline.policy` — retry / expiry / pause decisions for a queued event.
* :mod:`~vochi_crm.pipeline.breaker` — circuit breaker per RetailCRM account.
* :mod:`~vochi_crm.pipeline.ratelimit` — token buckets per RetailCRM account.
"""

from __future__ import annotations

from vochi_crm.pipeline.breaker import BreakerConfig, BreakerState, CircuitBreaker
from vochi_crm.pipeline.callstate import CallState
from vochi_crm.pipeline.history import Outcome
from vochi_crm.pipeline.mapping import is_live, plan_event
from vochi_crm.pipeline.plan import (
    CallEventRequest,
    CallsUploadRequest,
    Plan,
    PlannedRequest,
    Skip,
    SkipCode,
    UnmappableEvent,
)
from vochi_crm.pipeline.policy import (
    DEFAULT_POLICY,
    Decision,
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
from vochi_crm.pipeline.ratelimit import (
    AccountLimiter,
    BucketKind,
    RateLimitConfig,
    TokenBucket,
    bucket_for_path,
)

__all__ = [
    "DEFAULT_POLICY",
    "AccountLimiter",
    "BreakerConfig",
    "BreakerState",
    "BucketKind",
    "CallEventRequest",
    "CallState",
    "CallsUploadRequest",
    "CircuitBreaker",
    "Decision",
    "DeliverNow",
    "ErrorClass",
    "Expire",
    "Fail",
    "Outcome",
    "Pause",
    "Plan",
    "PlannedRequest",
    "RateLimitConfig",
    "RetryAt",
    "RetryPolicy",
    "Skip",
    "SkipCode",
    "TokenBucket",
    "UnmappableEvent",
    "bucket_for_path",
    "decide_after_failure",
    "decide_before_attempt",
    "is_live",
    "plan_event",
]
