"""The RetailCRM API v5 methods the simulator serves, one handler each (reference A5–A12).

A handler gets the authenticated account and the parsed request (:class:`Ctx`) and returns
``(status, body)``, or raises :class:`~vochi_daemon.simulator.wire.ApiFail` with RetailCRM's error
body. Authentication, permissions, rate limits, failure injection and the journal are done once,
around every handler, by :mod:`vochi_daemon.simulator.app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from vochi_daemon.simulator import rules
from vochi_daemon.simulator.state import Account
from vochi_daemon.simulator.wire import ApiFail, entity, invalid, missing, non_scalar

Handler = Callable[["Ctx"], Awaitable[tuple[int, dict[str, Any]]]]
NOT_FOUND = "Not found"
_USER_FILTERS = {
    "active": "bool",
    "isManager": "bool",
    "isAdmin": "bool",
    "online": "bool",
    "status": "str",
    "email": "str",
    "groups": "list",
}


@dataclass
class Ctx:
    account: Account
    query: dict[str, str]
    query_pairs: list[tuple[str, str]]
    form: dict[str, str]
    form_pairs: list[tuple[str, str]]
    path_params: dict[str, Any]
    origin: str

    def entity(self, name: str) -> Any:
        return entity(self.form_pairs, self.form, name)


@dataclass(frozen=True)
class Method:
    """One API method: where it lives, which credential grants it, which rate bucket it uses."""

    verb: str
    path: str
    credential: str | None
    handler: Handler

    @property
    def bucket(self) -> str:
        return "telephony" if self.path.startswith("/api/v5/telephony/") else "general"


async def api_versions(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    return 200, {"success": True, "versions": ["3.0", "4.0", "5.0"]}


async def credentials(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    account = ctx.account
    return 200, {
        "success": True,
        "credentials": list(account.credentials),
        "siteAccess": "access_full",
        "sitesAvailable": list(account.sites),
        "scopes": [
            "integration_read",
            "integration_write",
            "telephony_write",
            "user_read",
            "user_write",
            "customer_read",
            "reference_read",
        ],
    }


async def sites(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    return 200, {"success": True, "sites": ctx.account.sites}


async def users_list(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    limit = _int_param(ctx.query, "limit", 20)
    page = _int_param(ctx.query, "page", 1)
    errors: dict[str, str] = {}
    if limit not in rules.PAGE_LIMITS:
        errors["limit"] = rules.CHOICE
    if page < 1:
        errors["page"] = "This value should be greater than or equal to 1."
    filters = _user_filters(ctx.query_pairs, errors)
    if errors:
        raise invalid(errors, "Errors in the input parameters")
    users = [u for u in ctx.account.users.values() if _user_matches(u, filters)]
    chunk = users[(page - 1) * limit : page * limit]
    pagination = {
        "limit": limit,
        "totalCount": len(users),
        "currentPage": page,
        "totalPageCount": max(1, -(-len(users) // limit)),
    }
    return 200, {"success": True, "users": chunk, "pagination": pagination}


async def user_get(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    user = ctx.account.users.get(ctx.path_params["id"])
    if user is None:
        raise ApiFail(404, NOT_FOUND)
    return 200, {"success": True, "user": user}


async def user_status(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    user = ctx.account.users.get(ctx.path_params["id"])
    if user is None:
        raise ApiFail(404, NOT_FOUND)
    status = ctx.form.get("status")
    if not status:
        raise missing("status")
    if status not in rules.USER_STATUSES:
        raise invalid({"status": rules.CHOICE})
    user["status"] = status
    return 200, {"success": True}


async def call_event(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    event = ctx.entity("event")
    errors = rules.validate_event(event)
    if errors:
        raise invalid(errors)
    account = ctx.account
    if not account.active_telephony_modules():
        raise ApiFail(400, "Telephony not enabled")
    known_codes = set(account.telephony_codes().values())
    body: dict[str, Any] = {"success": True}
    unknown_codes = [str(c) for c in event.get("codes") or [] if str(c) not in known_codes]
    unknown_users = [u for u in event.get("userIds") or [] if u not in account.users]
    if unknown_codes:
        body["notExistCodes"] = unknown_codes
    if unknown_users:
        body["notExistUsers"] = unknown_users
    received = {**event, "receivedAt": _now()}
    if "clientId" in ctx.form:  # the original sent its enterprise number here (reference A7)
        received["formClientId"] = ctx.form["clientId"]
    account.events.append(received)
    return 200, body


async def calls_upload(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    calls = ctx.entity("calls")
    errors = rules.validate_calls(calls)
    if errors:
        raise invalid(errors)
    account = ctx.account
    if not account.active_telephony_modules():
        raise ApiFail(400, "Telephony not enabled or not supports calls upload")
    processed, duplicates = 0, []
    for call in calls:
        external_id = call.get("externalId")
        stored = {**call, "uploadedAt": _now()}
        if external_id in (None, ""):
            account.anonymous_calls.append(stored)
        elif str(external_id) in account.calls:
            duplicates.append(str(external_id))
            continue
        else:
            account.calls[str(external_id)] = stored
        processed += 1
    return 200, {"success": True, "processedCallsCount": processed, "duplicateCalls": duplicates}


async def manager(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    if any(key.startswith("phone[") for key, _ in ctx.query_pairs):
        raise non_scalar("phone")
    phone = ctx.query.get("phone", "")
    if not phone.strip():
        raise missing("phone")
    details = rules.parse_flag(ctx.query.get("details"), False)
    ignore_status = rules.parse_flag(ctx.query.get("ignoreStatus"), False)
    bad = {
        n: "This value is not valid."
        for n, v in (("details", details), ("ignoreStatus", ignore_status))
        if v is None
    }
    if bad:
        raise invalid(bad, "Errors in the input parameters")
    account = ctx.account
    customer = rules.find_customer(account.customers, phone)
    body: dict[str, Any] = {"success": True}
    user = account.users.get(customer.get("managerId") or 0) if customer else None
    if user and user.get("active") and (ignore_status or user.get("status") == "free"):
        body["manager"] = {
            key: user.get(key) for key in ("id", "firstName", "lastName", "patronymic", "email")
        }
        body["manager"]["code"] = account.telephony_codes().get(user["id"])
    if details:
        if customer is not None:
            body["customer"] = {
                key: customer.get(key)
                for key in (
                    "id",
                    "externalId",
                    "firstName",
                    "lastName",
                    "patronymic",
                    "email",
                    "phones",
                )
            }
        body["links"] = _links(ctx.origin, ctx.account.name, phone, customer)
    return 200, body


async def module_get(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    module = ctx.account.modules.get(ctx.path_params["code"])
    if module is None:
        raise ApiFail(404, NOT_FOUND)
    return 200, {"success": True, "integrationModule": module}


async def module_edit(ctx: Ctx) -> tuple[int, dict[str, Any]]:
    code: str = ctx.path_params["code"]
    incoming = ctx.entity("integrationModule")
    account = ctx.account
    errors, merged = rules.validate_module(code, incoming, account.modules.get(code))
    if errors:
        raise invalid(errors)
    account.modules[code] = merged
    info: dict[str, Any] = {}
    telephony = merged["integrations"].get("telephony")
    if isinstance(telephony, dict):
        ids = [int(c["userId"]) for c in telephony.get("additionalCodes") or []]
        missing_ids = [i for i in ids if i not in account.users]
        if missing_ids:
            info["notExistUsersIds"] = missing_ids
    return 200, {"success": True, "info": info}


METHODS: tuple[Method, ...] = (
    Method("GET", "/api/api-versions", None, api_versions),
    Method("GET", "/api/credentials", None, credentials),
    Method("GET", "/api/v5/reference/sites", "/api/reference/sites", sites),
    Method("GET", "/api/v5/users", "/api/users", users_list),
    Method("GET", "/api/v5/users/{id:int}", "/api/users/{id}", user_get),
    Method("POST", "/api/v5/users/{id:int}/status", "/api/users/{id}/status", user_status),
    Method("POST", "/api/v5/telephony/call/event", "/api/telephony/call/event", call_event),
    Method("POST", "/api/v5/telephony/calls/upload", "/api/telephony/calls/upload", calls_upload),
    Method("GET", "/api/v5/telephony/manager", "/api/telephony/manager", manager),
    Method(
        "GET", "/api/v5/integration-modules/{code}", "/api/integration-modules/{code}", module_get
    ),
    Method(
        "POST",
        "/api/v5/integration-modules/{code}/edit",
        "/api/integration-modules/{code}/edit",
        module_edit,
    ),
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        error = invalid({name: rules.type_error("integer")}, "Errors in the input parameters")
        raise error from None


def _user_filters(pairs: list[tuple[str, str]], errors: dict[str, str]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for key, value in pairs:
        if not key.startswith("filter["):
            continue
        name = key[len("filter[") :].split("]", 1)[0]
        kind = _USER_FILTERS.get(name)
        if kind is None:
            errors[key] = "This form should not contain extra fields."
        elif kind == "list":
            filters.setdefault(name, []).append(value)
        elif kind == "bool":
            flag = rules.parse_flag(value, False)
            if flag is None:
                errors[key] = "This value is not valid."
            filters[name] = flag
        else:
            filters[name] = value
    return filters


def _user_matches(user: dict[str, Any], filters: dict[str, Any]) -> bool:
    for name, wanted in filters.items():
        if name == "groups":
            codes = {str(g.get("code")) for g in user.get("groups") or [] if isinstance(g, dict)}
            if not codes.intersection(wanted):
                return False
        elif isinstance(wanted, bool):
            if bool(user.get(name)) != wanted:
                return False
        elif user.get(name) != wanted:
            return False
    return True


def _links(
    origin: str, account: str, phone: str, customer: dict[str, Any] | None
) -> dict[str, Any]:
    base = f"{origin}/crm/{quote(account)}"
    links: dict[str, Any] = {
        "newOrderLink": f"{base}/orders/add?phone={quote(phone)}",
        "newCustomerLink": f"{base}/customers/add?phone={quote(phone)}",
    }
    if customer is not None:
        links["customerLink"] = f"{base}/customers/{customer['id']}"
        links["lastOrderLink"] = None
    return links
