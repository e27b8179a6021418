"""Per-RetailCRM-account state of the dispatcher: one HTTP client, one token bucket pair and one
circuit breaker per account (an API key at an address), shared by every unit that uses it, plus the
units paused because they must act.

These live in the one elected dispatcher process (DESIGN §8: limits must hold across daemon
instances; only the advisory-lock holder delivers), so they are per account, not per instance.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from vochi_crm.masking import mask_secret
from vochi_crm.pipeline.breaker import CircuitBreaker
from vochi_crm.pipeline.ratelimit import AccountLimiter, RateLimitConfig
from vochi_crm.retailcrm import RetailCrmClient
from vochi_crm.retailcrm.errors import UNIT_REASONS
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.settings import DeliverySettings


def account_key(config: RetailCrmConfig) -> str:
    """Identifies an account without holding its key in clear: the address and a key digest."""
    digest = hashlib.sha256((config.api_key or "").encode()).hexdigest()[:16]
    return f"{config.api_url}#{digest}"


def account_label(config: RetailCrmConfig) -> str:
    """How ``/stats`` names an account: the address and the key's last four characters (two keys
    at one address, before and after a key change, stay apart)."""
    return f"{config.api_url} (key {mask_secret(config.api_key)})"


@dataclass
class Account:
    key: str
    label: str
    client: RetailCrmClient
    limiter: AccountLimiter
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)


@dataclass(frozen=True)
class Alert:
    unit: str
    reason: str
    message: str
    since: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "reason": self.reason,
            "message": self.message,
            "hint": "fix the unit's RetailCRM address or API key (vochi-crm config set "
            f"{self.unit} …); delivery resumes by itself on the next config change",
            "since": self.since,
        }


RATE_MARGIN = 0.9
"""RetailCRM counts requests in a sliding one-second window: a token bucket with a burst of one at
90 % of the limit never puts more than the limit in any window, whatever our clocks disagree on."""


def limits(settings: DeliverySettings) -> RateLimitConfig:
    return RateLimitConfig(
        general_rate=settings.rate_per_second * RATE_MARGIN,
        telephony_rate=settings.telephony_rate_per_second * RATE_MARGIN,
        general_burst=1.0,
        telephony_burst=1.0,
    )


class Accounts:
    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._accounts: dict[str, Account] = {}
        self.paused: dict[str, Alert] = {}

    def for_config(self, config: RetailCrmConfig) -> Account:
        key = account_key(config)
        account = self._accounts.get(key)
        if account is None:
            assert config.api_url is not None
            assert config.api_key is not None
            account = Account(
                key=key,
                label=account_label(config),
                client=RetailCrmClient(
                    config.api_url,
                    config.api_key,
                    timeout=self._settings.retailcrm_timeout_seconds,
                ),
                limiter=AccountLimiter(limits(self._settings)),
            )
            self._accounts[key] = account
        return account

    def pause(self, unit: str, reason: str) -> None:
        if unit not in self.paused:
            message = UNIT_REASONS.get(reason, reason)
            self.paused[unit] = Alert(unit, reason, message, time.time())

    def resume(self, unit: str) -> bool:
        return self.paused.pop(unit, None) is not None

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            account.label: {
                "breaker": account.breaker.snapshot(now),
                "rate_limit": account.limiter.snapshot(now),
            }
            for account in self._accounts.values()
        }

    async def aclose(self) -> None:
        for account in self._accounts.values():
            await account.client.aclose()
        self._accounts.clear()
