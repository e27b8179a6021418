"""Delivery counters and RetailCRM latency percentiles for ``/stats``."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

_SAMPLES = 2048


@dataclass
class DeliveryMetrics:
    outcomes: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """unit → {delivered, failed, expired, skipped, retried, paused}."""
    requests: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """unit → {ok, error} RetailCRM requests."""
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    last_success: dict[str, str] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def outcome(self, unit: str, name: str) -> None:
        self.outcomes[unit][name] += 1

    def request(self, unit: str, ok: bool, elapsed_ms: float) -> None:
        self.requests[unit]["ok" if ok else "error"] += 1
        self.latencies_ms.append(elapsed_ms)

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)

        def at(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "samples": len(ordered)}

    def as_dict(self) -> dict[str, Any]:
        units = sorted(set(self.outcomes) | set(self.requests))
        return {
            "per_unit": {
                unit: {
                    **dict(self.outcomes.get(unit, {})),
                    "requests_ok": self.requests.get(unit, Counter())["ok"],
                    "requests_error": self.requests.get(unit, Counter())["error"],
                    "last_success": self.last_success.get(unit),
                    "last_error": self.last_error.get(unit),
                }
                for unit in units
            },
            "retailcrm_latency_ms": self.percentiles(),
            "rate_limit_waits": self.rate_limit_waits,
            "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
        }
