"""Token buckets per RetailCRM account, as pure values (DESIGN §4, reference A4).

RetailCRM allows 10 requests/s per API key, 40 requests/s for ``/telephony/*`` methods (the
official Go client's limiter; 503/429 answer anything faster). Like that client, a request draws
from exactly one bucket: telephony methods from the telephony bucket, all others from the general
one. ``try_acquire(now, cost)`` returns ``0.0`` when granted, else how many seconds to wait before
asking again (nothing is reserved meanwhile).

Time is passed in. These states must eventually be shared across daemon instances (RetailCRM
counts per key, not per instance; the lead decides between one elected dispatcher and limiter state
in PostgreSQL), so they are plain data with ``to_dict``/``from_dict``, and ``now`` should then be
epoch seconds (``time.time()``) rather than a monotonic clock. A clock that goes backwards (another
instance's) never refills a bucket and never moves its timestamp back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class BucketKind(StrEnum):
    GENERAL = "general"
    TELEPHONY = "telephony"


_EPSILON = 1e-9
_VERSIONED_API = re.compile(r"^/api(?:/v\d+)?(/.*)?$")


def bucket_for_path(path: str) -> BucketKind:
    """The bucket a request draws from: ``/api/v5/telephony/...`` (or ``telephony/...``, or a full
    URL to one) → ``TELEPHONY``; anything else → ``GENERAL``."""
    route = urlsplit(path.strip()).path if "://" in path else path.strip().split("?", 1)[0]
    if not route.startswith("/"):
        route = "/" + route
    match = _VERSIONED_API.match(route)
    if match is not None:
        route = match.group(1) or "/"
    return BucketKind.TELEPHONY if route.startswith("/telephony/") else BucketKind.GENERAL


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity`` (the burst); starts full."""

    rate: float
    capacity: float
    tokens: float = float("inf")
    """Current tokens; clamped to ``[0, capacity]``, so the default means "full"."""
    updated_at: float | None = None
    granted: int = 0
    denied: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be > 0")
        if not self.capacity >= 1:
            raise ValueError("capacity must be >= 1")
        self.tokens = min(max(self.tokens, 0.0), self.capacity)

    def try_acquire(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: ``0.0`` when granted, else the seconds until they will be there."""
        if not 0 < cost <= self.capacity:
            raise ValueError(f"cost must be in (0, {self.capacity}], got {cost}")
        self._refill(now)
        if self.tokens >= cost - _EPSILON:
            # The tolerance absorbs float error: a caller that waited exactly the returned time
            # must be granted, not told to wait another 1e-15 s.
            self.tokens = max(self.tokens - cost, 0.0)
            self.granted += 1
            return 0.0
        self.denied += 1
        return (cost - self.tokens) / self.rate

    def available(self, now: float) -> float:
        """Tokens available at ``now``, without taking any (and without changing the state)."""
        if self.updated_at is None or now <= self.updated_at:
            return self.tokens
        return min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)

    def _refill(self, now: float) -> None:
        self.tokens = self.available(now)
        if self.updated_at is None or now > self.updated_at:
            self.updated_at = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "capacity": self.capacity,
            "tokens": self.tokens,
            "updated_at": self.updated_at,
            "granted": self.granted,
            "denied": self.denied,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenBucket:
        try:
            updated_at = data.get("updated_at")
            return cls(
                rate=float(data["rate"]),
                capacity=float(data["capacity"]),
                tokens=float(data.get("tokens", float("inf"))),
                updated_at=None if updated_at is None else float(updated_at),
                granted=int(data.get("granted", 0)),
                denied=int(data.get("denied", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed token bucket: {exc}") from exc


@dataclass(frozen=True)
class RateLimitConfig:
    """Requests per second and bursts (a burst of ``None`` = one second's worth)."""

    general_rate: float = 10.0
    telephony_rate: float = 40.0
    general_burst: float | None = None
    telephony_burst: float | None = None

    def bucket(self, kind: BucketKind) -> TokenBucket:
        if kind is BucketKind.TELEPHONY:
            return TokenBucket(self.telephony_rate, self.telephony_burst or self.telephony_rate)
        return TokenBucket(self.general_rate, self.general_burst or self.general_rate)


@dataclass
class AccountLimiter:
    """The two buckets of one RetailCRM account (one API key)."""

    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    buckets: dict[BucketKind, TokenBucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in BucketKind:
            self.buckets.setdefault(kind, self.config.bucket(kind))

    def try_acquire(self, now: float, path: str, cost: float = 1.0) -> float:
        """Take a token for a request to ``path``; ``0.0`` when granted, else seconds to wait."""
        return self.buckets[bucket_for_path(path)].try_acquire(now, cost)

    def snapshot(self, now: float) -> dict[str, Any]:
        """For ``/stats``: available tokens and grant/deny counters per bucket."""
        return {
            str(kind): {
                "available": round(bucket.available(now), 3),
                "rate": bucket.rate,
                "granted": bucket.granted,
                "denied": bucket.denied,
            }
            for kind, bucket in self.buckets.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {str(kind): bucket.to_dict() for kind, bucket in self.buckets.items()}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], config: RateLimitConfig | None = None
    ) -> AccountLimiter:
        """Rebuild: tokens and counters from ``data``, rates and bursts from ``config`` (settings
        may have changed since the state was stored); missing buckets start full."""
        config = config or RateLimitConfig()
        buckets: dict[BucketKind, TokenBucket] = {}
        for kind in BucketKind:
            stored = data.get(str(kind))
            if isinstance(stored, Mapping):
                template = config.bucket(kind)
                loaded = TokenBucket.from_dict(
                    {**stored, "rate": template.rate, "capacity": template.capacity}
                )
                buckets[kind] = loaded
        return cls(config=config, buckets=buckets)
