"""Test a unit's RetailCRM connection: ``vochi-crm test-connection`` and
``POST /api/config/{unit}/test`` both run :meth:`ConnectionCheck.run`.

Each check yields a :class:`Check` (pass / warn / fail / skipped, a detail and, unless it passed,
a hint), so a person sees what is wrong *and* what to do. The whole run is bounded
(``VOCHI_RETAILCRM__CHECK_DEADLINE_SECONDS``, 10 s) on top of the client's per-request timeout:
a RetailCRM that hangs or answers HTML fails the first check, and the checks that depend on it are
reported as not run instead of each waiting in turn. After the first request the independent
checks run concurrently. The judging is pure (``judge_*``) and unit-tested without a network.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from vochi_crm.registration.module import ModuleSite, additional_codes
from vochi_crm.registration.problems import KEYS_PAGE, NotConfigured, hint_for
from vochi_crm.retailcrm import RetailCrmClient, RetailCrmError
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.units import UnitService

Status = Literal["pass", "warn", "fail", "skipped"]
MAX_USER_PAGES = 20
#: The API paths vochi-crm calls, as ``GET /api/credentials`` lists them (reference A12).
REQUIRED_METHODS = (
    "/api/integration-modules/{code}/edit",
    "/api/telephony/call/event",
    "/api/telephony/calls/upload",
    "/api/telephony/manager",
    "/api/users",
)
ORDER = ("address", "api_key", "api_version", "permissions", "users", "mapping", "module")
TITLES = {
    "address": "the address answers as RetailCRM",
    "api_key": "the API key is accepted",
    "api_version": "API v5 is available",
    "permissions": "the key may call every method vochi-crm uses",
    "users": "mapped users exist and are active",
    "mapping": "one extension per RetailCRM user",
    "module": "our telephony module in RetailCRM matches the config",
}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "warn")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class ConnectionReport:
    unit: str
    api_url: str
    enabled: bool
    checks: list[Check] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enterprise_number": self.unit,
            "api_url": self.api_url,
            "enabled": self.enabled,
            "ok": self.ok,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "checks": [check.as_dict() for check in self.checks],
        }


class ConnectionCheck:
    def __init__(
        self, units: UnitService, site: ModuleSite, *, timeout: float, deadline: float
    ) -> None:
        self._units = units
        self._site = site
        self._timeout = min(timeout, deadline)
        self._deadline = deadline

    async def run(self, number: str) -> ConnectionReport:
        """Raises ``NotFound`` (unknown unit) or :class:`NotConfigured`; changes nothing."""
        unit = await self._units.get(number)
        config = unit.retailcrm
        if not config.configured:
            raise NotConfigured.for_unit(number)
        assert config.api_url is not None
        assert config.api_key is not None
        started = time.monotonic()
        found: dict[str, Check] = {"mapping": judge_mapping(config.user_mappings, number)}
        async with RetailCrmClient(config.api_url, config.api_key, timeout=self._timeout) as crm:
            with anyio.move_on_after(self._deadline) as scope:
                found.update(await self._probe(crm, number))
                key = found.get("api_key")
                if key is not None and key.status == "pass":
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(self._permissions, crm, number, found)
                        tasks.start_soon(self._users, crm, number, config, found)
                        tasks.start_soon(self._module, crm, number, config, found)
        checks = [
            found.get(name) or self._not_run(name, found, scope.cancelled_caught) for name in ORDER
        ]
        return ConnectionReport(
            number, config.api_url, config.enabled, checks, (time.monotonic() - started) * 1000
        )

    def _not_run(self, name: str, found: Mapping[str, Check], out_of_time: bool) -> Check:
        if out_of_time:
            return Check(
                name,
                "skipped",
                f"not run: the whole test is limited to {self._deadline:g} s and RetailCRM "
                "answered too slowly",
                "RetailCRM is slow or hanging: try again later; check the network path to it",
            )
        failed = next((c.title for c in found.values() if c.status == "fail"), "an earlier check")
        return Check(
            name, "skipped", f"not run: it needs '{failed}', which failed", "fix that check first"
        )

    async def _probe(self, crm: RetailCrmClient, unit: str) -> dict[str, Check]:
        try:
            result = await crm.api_versions()
        except RetailCrmError as exc:
            return judge_probe_error(exc, unit)
        return judge_versions(result.data, crm.base_url)

    async def _permissions(self, crm: RetailCrmClient, unit: str, found: dict[str, Check]) -> None:
        try:
            result = await crm.credentials()
        except RetailCrmError as exc:
            found["permissions"] = _failed("permissions", exc, unit, "/api/credentials")
            return
        found["permissions"] = judge_credentials(result.data, self._site.code)

    async def _users(
        self, crm: RetailCrmClient, unit: str, config: RetailCrmConfig, found: dict[str, Check]
    ) -> None:
        users: dict[int, dict[str, Any]] = {}
        try:
            for page in range(1, MAX_USER_PAGES + 1):
                data = (await crm.users(page=page, limit=100)).data
                for user in data.get("users") or []:
                    if isinstance(user, dict) and isinstance(user.get("id"), int):
                        users[user["id"]] = user
                pages = (data.get("pagination") or {}).get("totalPageCount")
                if not isinstance(pages, int) or page >= pages:
                    break
        except RetailCrmError as exc:
            found["users"] = _failed("users", exc, unit, "/api/users")
            return
        found["users"] = judge_users(config.user_mappings, users, unit)

    async def _module(
        self, crm: RetailCrmClient, unit: str, config: RetailCrmConfig, found: dict[str, Check]
    ) -> None:
        code = self._site.code
        try:
            data = (await crm.integration_module_get(code)).data
        except RetailCrmError as exc:
            if exc.reason == "not_found":
                found["module"] = judge_module(None, config, unit, code)
            else:
                found["module"] = _failed("module", exc, unit, f"/api/integration-modules/{code}")
            return
        module = data.get("integrationModule")
        found["module"] = judge_module(
            module if isinstance(module, dict) else None, config, unit, code
        )


# -- pure judgement ------------------------------------------------------------------------------


def judge_probe_error(exc: RetailCrmError, unit: str) -> dict[str, Check]:
    """``api-versions`` failed: tell "not RetailCRM / unreachable" from "RetailCRM, wrong key"."""
    if exc.reason in ("invalid_key", "missing_key", "access_denied"):
        return {
            "address": Check("address", "pass", "RetailCRM answers at this address"),
            "api_key": _failed("api_key", exc, unit, "/api/api-versions"),
        }
    response = exc.exchange.response if exc.exchange is not None else None
    if isinstance(response, str) and response.lstrip().startswith("<"):
        detail = f"an HTML page came back (HTTP {exc.status}), not RetailCRM's API"
        return {"address": Check("address", "fail", detail, hint_for(exc, unit))}
    return {"address": _failed("address", exc, unit, None)}


def judge_versions(data: Mapping[str, Any], url: str) -> dict[str, Check]:
    versions = [str(v) for v in data.get("versions") or []]
    has_v5 = any(re.fullmatch(r"v?5(\.\d+)*", v.strip().lower()) for v in versions)
    shown = ", ".join(versions) or "none"
    return {
        "address": Check("address", "pass", f"RetailCRM API answers at {url}"),
        "api_key": Check("api_key", "pass", "RetailCRM accepts the key"),
        "api_version": Check("api_version", "pass", f"versions offered: {shown}")
        if has_v5
        else Check(
            "api_version",
            "fail",
            f"API v5 is not offered (versions: {shown})",
            "vochi-crm speaks RetailCRM API v5 only; check that api_url is a RetailCRM account",
        ),
    }


def normalise_method(path: str) -> str:
    """``/api/v5/integration-modules/{code}/edit/`` → ``/api/integration-modules/{}/edit``."""
    text = path.strip().lower().rstrip("/")
    text = re.sub(r"^/?api/v\d+(?=/|$)", "/api", text)
    if not text.startswith("/"):
        text = "/" + text
    return re.sub(r"\{[^}]*\}", "{}", text)


def missing_methods(
    granted: Iterable[str], code: str, required: Iterable[str] = REQUIRED_METHODS
) -> list[str]:
    """The required API paths no ``credentials`` entry grants (placeholders or concrete codes,
    with or without the version prefix, match)."""
    allowed = {normalise_method(g) for g in granted if isinstance(g, str)}
    missing = []
    for path in required:
        concrete = path.replace("{code}", code)
        if normalise_method(path) not in allowed and normalise_method(concrete) not in allowed:
            missing.append(concrete)
    return missing


def judge_credentials(data: Mapping[str, Any], code: str) -> Check:
    granted = data.get("credentials")
    if not isinstance(granted, list):
        return Check(
            "permissions",
            "fail",
            "RetailCRM's /api/credentials answer lists no credentials",
            f"check the key's permissions in {KEYS_PAGE}",
        )
    missing = missing_methods(granted, code)
    if missing:
        return Check(
            "permissions",
            "fail",
            "the key may not call: " + ", ".join(missing),
            f"allow these methods for the key in {KEYS_PAGE}",
        )
    return Check(
        "permissions", "pass", f"all {len(REQUIRED_METHODS)} methods vochi-crm calls are allowed"
    )


def judge_users(
    mapping: Mapping[str, int], users: Mapping[int, Mapping[str, Any]], unit: str
) -> Check:
    if not mapping:
        return Check(
            "users",
            "warn",
            "no extension is mapped to a RetailCRM user yet",
            f"map extensions to RetailCRM user ids: vochi-crm config map {unit} 151=16",
        )
    problems = []
    for ext, user_id in sorted(mapping.items()):
        user = users.get(user_id)
        if user is None:
            problems.append(f"{ext} → user {user_id} does not exist")
        elif not user.get("active", True):
            problems.append(f"{ext} → user {user_id} ({_name(user)}) is not active")
    if problems:
        return Check(
            "users",
            "fail",
            "; ".join(problems),
            f"map those extensions to existing, active users (vochi-crm config map {unit} "
            f"EXT=USER_ID) or unmap them (vochi-crm config unmap {unit} EXT)",
        )
    return Check("users", "pass", f"all {len(mapping)} mapped users exist and are active")


def judge_mapping(mapping: Mapping[str, int], unit: str) -> Check:
    """Our storage maps extension → user, so an extension cannot be mapped twice; a user mapped
    from several extensions can, and RetailCRM shows one code per user: a warning."""
    by_user: dict[int, list[str]] = {}
    for ext, user_id in sorted(mapping.items()):
        by_user.setdefault(user_id, []).append(ext)
    shared = {user: exts for user, exts in by_user.items() if len(exts) > 1}
    if not shared:
        return Check("mapping", "pass", "each mapped RetailCRM user has one extension")
    detail = "; ".join(f"user {u} has extensions {', '.join(e)}" for u, e in sorted(shared.items()))
    return Check(
        "mapping",
        "warn",
        detail,
        f"RetailCRM keeps one code per user: keep one (vochi-crm config unmap {unit} EXT)",
    )


def judge_module(
    module: Mapping[str, Any] | None, config: RetailCrmConfig, unit: str, code: str
) -> Check:
    register = f"register it now: vochi-crm register {unit}"
    if module is None:
        if not config.enabled:
            return Check(
                "module", "pass", f"'{code}' is not registered (the integration is disabled)"
            )
        return Check("module", "fail", f"'{code}' is not registered in RetailCRM", register)
    active = bool(module.get("active"))
    if not config.enabled:
        if active:
            return Check(
                "module",
                "warn",
                f"'{code}' is still active although the integration is disabled",
                f"deactivate it: vochi-crm register {unit}",
            )
        return Check("module", "pass", f"'{code}' is inactive, as the disabled integration wants")
    problems = [] if active else ["it is not active"]
    telephony = (module.get("integrations") or {}).get("telephony") or {}
    theirs = {
        (str(c.get("code")), _int(c.get("userId")))
        for c in telephony.get("additionalCodes") or []
        if isinstance(c, dict)
    }
    ours = {(c["code"], c["userId"]) for c in additional_codes(config)}
    unknown = sorted(f"{c} → user {u}" for c, u in theirs - ours)
    lacking = sorted(f"{c} → user {u}" for c, u in ours - theirs)
    if unknown:
        problems.append("codes we do not know: " + ", ".join(unknown))
    if lacking:
        problems.append("codes it lacks: " + ", ".join(lacking))
    if config.client_id and module.get("clientId") not in (None, config.client_id):
        problems.append("its clientId is not ours (click-to-call would be refused)")
    if problems:
        return Check("module", "fail", f"'{code}': " + "; ".join(problems), register)
    return Check("module", "pass", f"'{code}' is active with all {len(ours)} codes")


def _failed(name: str, exc: RetailCrmError, unit: str, method: str | None) -> Check:
    return Check(name, "fail", exc.message, hint_for(exc, unit, method=method))


def _name(user: Mapping[str, Any]) -> str:
    return " ".join(str(user[k]) for k in ("firstName", "lastName") if user.get(k)) or "no name"


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None
