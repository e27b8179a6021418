"""Unit tests of the per-account token buckets (vochi_crm.pipeline.ratelimit)."""

from __future__ import annotations

import json

import pytest

from vochi_crm.pipeline.ratelimit import (
    AccountLimiter,
    BucketKind,
    RateLimitConfig,
    TokenBucket,
    bucket_for_path,
)

TEL, GEN = BucketKind.TELEPHONY, BucketKind.GENERAL


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/v5/telephony/call/event", TEL),
        ("/api/v5/telephony/calls/upload", TEL),
        ("/api/v5/telephony/manager?phone=375291110001&details=1", TEL),
        ("/api/v4/telephony/setting/vochi-telephony", TEL),
        ("/api/telephony/call/event", TEL),
        ("telephony/call/event", TEL),
        ("/telephony/calls/upload", TEL),
        ("https://demo.retailcrm.ru/api/v5/telephony/call/event", TEL),
        ("  /api/v5/telephony/manager  ", TEL),
        ("/api/v5/users", GEN),
        ("/api/credentials", GEN),
        ("/api/api-versions", GEN),
        ("/api/v5/integration-modules/vochi-telephony/edit", GEN),
        ("/api/v5/customers?filter[name]=/telephony/", GEN),
        ("/api/v5/telephonyx/call", GEN),
        ("https://demo.retailcrm.ru/api/v5/users?x=/telephony/", GEN),
        ("", GEN),
        ("/api", GEN),
    ],
)
def test_bucket_for_path(path: str, kind: BucketKind) -> None:
    assert bucket_for_path(path) is kind


def test_bucket_starts_full_then_meters() -> None:
    bucket = TokenBucket(rate=10, capacity=10)
    assert [bucket.try_acquire(0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.try_acquire(0.0) == pytest.approx(0.1)
    assert bucket.try_acquire(0.05) == pytest.approx(0.05)
    assert bucket.try_acquire(0.1) == 0.0
    assert bucket.granted == 11 and bucket.denied == 2


def test_denial_takes_nothing() -> None:
    bucket = TokenBucket(rate=1, capacity=1)
    assert bucket.try_acquire(0.0) == 0.0
    for _ in range(5):
        assert bucket.try_acquire(0.5) == pytest.approx(0.5)
    assert bucket.try_acquire(1.0) == 0.0


def test_refill_is_capped_at_the_capacity() -> None:
    bucket = TokenBucket(rate=10, capacity=10)
    bucket.try_acquire(0.0, cost=10)
    assert bucket.available(1000.0) == 10
    grants = [bucket.try_acquire(1000.0) for _ in range(11)]
    assert grants.count(0.0) == 10


def test_cost_larger_than_one() -> None:
    bucket = TokenBucket(rate=10, capacity=10)
    assert bucket.try_acquire(0.0, cost=8) == 0.0
    assert bucket.try_acquire(0.0, cost=4) == pytest.approx(0.2)
    assert bucket.try_acquire(0.2, cost=4) == 0.0


@pytest.mark.parametrize("cost", [0, -1, 11])
def test_impossible_cost_is_a_programming_error(cost: float) -> None:
    with pytest.raises(ValueError, match="cost"):
        TokenBucket(rate=10, capacity=10).try_acquire(0.0, cost=cost)


@pytest.mark.parametrize(("rate", "capacity"), [(0, 10), (-1, 10), (10, 0.5)])
def test_invalid_bucket(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match=r"rate|capacity"):
        TokenBucket(rate=rate, capacity=capacity)


def test_clock_going_backwards_neither_refills_nor_rewinds() -> None:
    bucket = TokenBucket(rate=10, capacity=10)
    bucket.try_acquire(100.0, cost=10)
    assert bucket.try_acquire(50.0) == pytest.approx(0.1)
    assert bucket.updated_at == 100.0
    assert bucket.try_acquire(100.1) == 0.0


def test_sustained_throughput_never_exceeds_rate_plus_burst() -> None:
    bucket = TokenBucket(rate=40, capacity=40)
    granted = 0
    now = 0.0
    for _ in range(10_000):  # bounded: a livelock (waits too small to advance time) fails
        if now >= 10.0:
            break
        wait = bucket.try_acquire(now)
        if wait == 0.0:
            granted += 1
        else:
            assert wait > 1e-12
            now += wait
    assert now >= 10.0
    assert granted <= 40 * 10 + 40
    assert granted >= 40 * 10  # and a greedy client that honours the waits gets it all


def test_account_limiter_keeps_telephony_and_general_apart() -> None:
    limiter = AccountLimiter()
    tel = [limiter.try_acquire(0.0, "/api/v5/telephony/call/event") for _ in range(41)]
    assert tel.count(0.0) == 40 and tel[-1] == pytest.approx(1 / 40)
    gen = [limiter.try_acquire(0.0, "/api/v5/users") for _ in range(11)]
    assert gen.count(0.0) == 10 and gen[-1] == pytest.approx(0.1)


def test_configurable_rates_and_bursts() -> None:
    config = RateLimitConfig(general_rate=2, telephony_rate=5, telephony_burst=1)
    limiter = AccountLimiter(config)
    assert limiter.try_acquire(0.0, "/api/v5/telephony/call/event") == 0.0
    assert limiter.try_acquire(0.0, "/api/v5/telephony/call/event") == pytest.approx(0.2)
    assert [limiter.try_acquire(0.0, "/api/v5/users") for _ in range(3)][-1] == pytest.approx(0.5)


def test_snapshot_for_stats() -> None:
    limiter = AccountLimiter()
    limiter.try_acquire(0.0, "/api/v5/telephony/calls/upload")
    snap = limiter.snapshot(0.0)
    assert snap["telephony"] == {"available": 39.0, "rate": 40.0, "granted": 1, "denied": 0}
    assert snap["general"]["available"] == 10.0
    json.dumps(snap)


def test_limiter_round_trip() -> None:
    limiter = AccountLimiter()
    for _ in range(40):
        limiter.try_acquire(5.0, "/api/v5/telephony/call/event")
    stored = json.loads(json.dumps(limiter.to_dict()))
    copy = AccountLimiter.from_dict(stored)
    assert copy.to_dict() == limiter.to_dict()
    assert copy.try_acquire(5.0, "/api/v5/telephony/call/event") == pytest.approx(0.025)


def test_limiter_from_dict_takes_rates_from_config_and_fills_missing_buckets() -> None:
    stored = {"telephony": {"rate": 40, "capacity": 40, "tokens": 0, "updated_at": 5.0}}
    copy = AccountLimiter.from_dict(stored, RateLimitConfig(telephony_rate=20))
    assert copy.buckets[TEL].rate == 20 and copy.buckets[TEL].capacity == 20
    assert copy.try_acquire(5.0, "/api/v5/telephony/call/event") == pytest.approx(0.05)
    assert copy.buckets[GEN].available(0.0) == 10


@pytest.mark.parametrize(
    "stored",
    [{"rate": "fast", "capacity": 1}, {"capacity": 1}, {"rate": 1, "capacity": 1, "tokens": None}],
)
def test_malformed_bucket_is_rejected(stored: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed token bucket"):
        TokenBucket.from_dict(stored)
