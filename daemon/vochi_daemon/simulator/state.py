"""The simulated RetailCRM's memory: accounts (told apart by API key), rate limits, failure plans.

All of it is plain data mutated from one event loop, so no locks. Accounts are created and changed
through ``POST /_sim/control`` (:func:`apply_control`); :func:`demo_account` is what ``vochi-crm
simulator`` serves when given nothing else.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Every method the simulator serves, in the form ``GET /api/credentials`` lists them (reference
#: A12: the PHP fixture shows ``/api/integration-modules/{code}``; the telephony strings are
#: unconfirmed). An account may be granted fewer to simulate a key without a permission.
ALL_CREDENTIALS: tuple[str, ...] = (
    "/api/integration-modules/{code}",
    "/api/integration-modules/{code}/edit",
    "/api/telephony/call/event",
    "/api/telephony/calls/upload",
    "/api/telephony/manager",
    "/api/users",
    "/api/users/{id}",
    "/api/users/{id}/status",
    "/api/reference/sites",
)
#: Go client ``rate.go``: 10 req/s per key, 40 req/s for ``/telephony`` methods (reference A4).
DEFAULT_RATE_LIMITS: dict[str, int] = {"general": 10, "telephony": 40}
FAIL_MODES = frozenset({"none", "503", "429", "500", "timeout", "html", "garbage", "invalid_key"})
EVENTS_KEPT = 10_000
DEMO_ACCOUNT = "demo"
#: A documented fake: the demo account's key is public by design, never a real secret.
DEMO_API_KEY = "demo-key-not-secret-0001"


class ControlError(ValueError):
    """A ``/_sim/control`` body the simulator cannot apply (answered 400 with this text)."""


@dataclass
class FailPlan:
    """Answer the next ``count`` requests (``None``: all) under ``paths`` with ``mode``."""

    mode: str = "none"
    count: int | None = None
    paths: tuple[str, ...] = ()
    retry_after: int | None = 1
    hang_seconds: float = 30.0

    def take(self, path: str) -> str | None:
        """The failure mode for this request, consuming one from ``count``; ``None``: no failure."""
        if self.mode == "none" or self.count == 0:
            return None
        if self.paths and not any(path.startswith(prefix) for prefix in self.paths):
            return None
        if self.count is not None:
            self.count -= 1
        return self.mode


@dataclass
class Account:
    name: str
    api_key: str
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: list[dict[str, Any]] = field(default_factory=list)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    credentials: tuple[str, ...] = ALL_CREDENTIALS
    latency_ms: float = 0.0
    fail: FailPlan = field(default_factory=FailPlan)
    rate_limits: dict[str, int] | None = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    throttle_retry_after: int | None = 1
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    anonymous_calls: list[dict[str, Any]] = field(default_factory=list)
    #: Call events received, newest last; bounded so a benchmark cannot exhaust memory.
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))

    def telephony_codes(self) -> dict[int, str]:
        """userId → extension from the ``additionalCodes`` of every active telephony module."""
        codes: dict[int, str] = {}
        for module in self.active_telephony_modules():
            for item in module["integrations"]["telephony"].get("additionalCodes") or []:
                user_id = _int_or_none(item.get("userId"))
                if user_id is not None and item.get("code") not in (None, ""):
                    codes.setdefault(user_id, str(item["code"]))
        return codes

    def active_telephony_modules(self) -> list[dict[str, Any]]:
        return [
            module
            for module in self.modules.values()
            if module.get("active")
            and isinstance(module.get("integrations"), dict)
            and isinstance(module["integrations"].get("telephony"), dict)
        ]

    def summary(self) -> dict[str, Any]:
        """The account as ``/_sim/state`` shows it (no API key: tests must not need it back)."""
        return {
            "account": self.name,
            "users": list(self.users.values()),
            "customers": self.customers,
            "modules": self.modules,
            "sites": self.sites,
            "credentials": list(self.credentials),
            "latency_ms": self.latency_ms,
            "fail": {"mode": self.fail.mode, "count": self.fail.count, "paths": self.fail.paths},
            "rate_limits": self.rate_limits,
            "calls": [*self.calls.values(), *self.anonymous_calls],
            "events": list(self.events),
        }


class RateLimiter:
    """Sliding one-second window per (API key, bucket); refused requests do not count."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def check(self, key: str, bucket: str, limit: int, now: float | None = None) -> float | None:
        """``None`` when the request may pass (and is counted); else seconds until a slot frees."""
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault((key, bucket), deque())
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) >= limit:
            return max(hits[0] + 1.0 - now, 0.0)
        hits.append(now)
        return None


def retry_after_header(wait: float, configured: int | None) -> dict[str, str]:
    """``Retry-After`` in whole seconds (RFC 9110 has no fractions), at least the configured one."""
    if configured is None:
        return {}
    return {"Retry-After": str(max(configured, math.ceil(wait)))}


def apply_control(accounts: dict[str, Account], body: Mapping[str, Any]) -> Account:
    """Create or update one account from a ``/_sim/control`` body; only given keys change.

    Works on a copy, so a body that fails half-way leaves the account as it was.
    """
    name = body.get("account")
    if not isinstance(name, str) or not name:
        raise ControlError("'account' must be a non-empty string")
    account = copy.deepcopy(accounts.get(name))
    api_key = body.get("api_key")
    if account is None:
        if not isinstance(api_key, str) or not api_key:
            raise ControlError("'api_key' is required to create an account")
        account = Account(name=name, api_key=api_key, sites=_default_sites(name))
    elif api_key is not None:
        if not isinstance(api_key, str) or not api_key:
            raise ControlError("'api_key' must be a non-empty string")
        account.api_key = api_key
    for other in accounts.values():
        if other.name != name and other.api_key == account.api_key:
            raise ControlError(f"api_key already belongs to account {other.name!r}")
    _apply_fields(account, body)
    accounts[name] = account
    return account


def _apply_fields(account: Account, body: Mapping[str, Any]) -> None:
    if "users" in body:
        account.users = {u["id"]: u for u in (_user(raw) for raw in _list(body, "users"))}
    if "customers" in body:
        account.customers = [_customer(raw, n) for n, raw in enumerate(_list(body, "customers"))]
    if "modules" in body:
        account.modules = {}
        for raw in _list(body, "modules"):
            if not isinstance(raw, dict) or not isinstance(raw.get("code"), str):
                raise ControlError("each module needs a string 'code'")
            account.modules[raw["code"]] = {"freeze": False, "native": False, "active": True, **raw}
    if "sites" in body:
        account.sites = {s["code"]: s for s in _list(body, "sites") if isinstance(s, dict)}
    if "credentials" in body:
        creds = body["credentials"]
        account.credentials = ALL_CREDENTIALS if creds is None else tuple(str(c) for c in creds)
    if "latency_ms" in body:
        account.latency_ms = float(body["latency_ms"] or 0)
    if "rate_limits" in body:
        limits = body["rate_limits"]
        account.rate_limits = None if limits is None else {**DEFAULT_RATE_LIMITS, **limits}
    if "retry_after" in body:
        account.throttle_retry_after = _int_or_none(body["retry_after"])
    if "fail" in body:
        account.fail = _fail_plan(body["fail"])


def _fail_plan(raw: Any) -> FailPlan:
    if raw is None:
        return FailPlan()
    if not isinstance(raw, dict) or str(raw.get("mode", "")) not in FAIL_MODES:
        raise ControlError(f"'fail.mode' must be one of {sorted(FAIL_MODES)}")
    count = raw.get("count")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ControlError("'fail.count' must be a non-negative integer or null (always)")
    paths = raw.get("paths") or ()
    return FailPlan(
        mode=str(raw["mode"]),
        count=count,
        paths=(paths,) if isinstance(paths, str) else tuple(str(p) for p in paths),
        retry_after=_int_or_none(raw.get("retry_after", 1)),
        hang_seconds=float(raw.get("hang_seconds", 30.0)),
    )


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body[key]
    if not isinstance(value, list):
        raise ControlError(f"'{key}' must be a list")
    return value


def _user(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or _int_or_none(raw.get("id")) is None:
        raise ControlError("each user needs an integer 'id'")
    user_id = int(raw["id"])
    return {
        "id": user_id,
        "createdAt": "2024-01-15 10:00:00",
        "active": True,
        "email": f"user{user_id}@example.test",
        "firstName": f"User{user_id}",
        "lastName": "Test",
        "patronymic": None,
        "position": "Manager",
        "phone": None,
        "status": "free",
        "online": True,
        "isAdmin": False,
        "isManager": True,
        "groups": [],
    } | {**raw, "id": user_id}


def _customer(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ControlError("each customer must be an object")
    phones = [p if isinstance(p, dict) else {"number": str(p)} for p in raw.get("phones", [])]
    customer_id = _int_or_none(raw.get("id")) or 1000 + index
    return {
        "externalId": None,
        "firstName": None,
        "lastName": None,
        "patronymic": None,
        "email": None,
        "managerId": None,
        **raw,
        "id": customer_id,
        "phones": phones,
    }


def _default_sites(name: str) -> dict[str, dict[str, Any]]:
    code = f"{name}-store"
    return {code: {"code": code, "name": f"{name} store", "url": f"https://{name}.example.test"}}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def demo_account() -> dict[str, Any]:
    """The control body of the ``demo`` account: three managers, one fired, three customers."""
    return {
        "account": DEMO_ACCOUNT,
        "api_key": DEMO_API_KEY,
        "users": [
            {"id": 16, "firstName": "Ivan", "lastName": "Petrov", "email": "ivan@demo.test"},
            {"id": 18, "firstName": "Anna", "lastName": "Sidorova", "email": "anna@demo.test"},
            {"id": 19, "firstName": "Oleg", "lastName": "Ivanov", "status": "busy"},
            {"id": 20, "firstName": "Olga", "lastName": "Former", "active": False, "online": False},
        ],
        "customers": [
            {
                "id": 101,
                "firstName": "Maria",
                "lastName": "Klim",
                "managerId": 16,
                "phones": ["+375291234567"],
            },
            {
                "id": 102,
                "firstName": "Pavel",
                "lastName": "Zhuk",
                "managerId": 19,
                "phones": ["375447654321"],
            },
            {"id": 103, "firstName": "Nobody", "lastName": "Assigned", "phones": ["+375255550000"]},
        ],
        "modules": [demo_module()],
    }


def demo_module() -> dict[str, Any]:
    """A registered telephony module, so the demo takes call events before any registration."""
    return {
        "code": "vochi-telephony",
        "integrationCode": "vochi-telephony",
        "active": True,
        "name": "Vochi-CRM",
        "logo": "http://127.0.0.1:8019/static/vochi_logo.svg",
        "baseUrl": "http://127.0.0.1:8019",
        "clientId": "demo-client-id-not-secret",
        "integrations": {
            "telephony": {
                "makeCallUrl": "http://127.0.0.1:8019/retailcrm/make-call",
                "changeUserStatusUrl": "http://127.0.0.1:8019/retailcrm/status",
                "allowEdit": False,
                "inputEventSupported": True,
                "outputEventSupported": True,
                "hangupEventSupported": True,
                "additionalCodes": [
                    {"userId": 16, "code": "151"},
                    {"userId": 18, "code": "152"},
                    {"userId": 19, "code": "153"},
                ],
                "externalPhones": [],
            }
        },
    }


def build_accounts(bodies: Iterable[Mapping[str, Any]]) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    for body in bodies:
        apply_control(accounts, body)
    return accounts
