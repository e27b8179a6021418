"""Подключение / Connection and Сотрудники / Mapping: forms over the config, test-connection,
RetailCRM users and registration use-cases. Every POST checks the session's CSRF token and the
form's version (the config it was rendered from), so a double-submitted or stale form changes
nothing and says why."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from vochi_crm.admin_auth import AccessDenied
from vochi_crm.admin_views import (
    CrmUser,
    MappingPlan,
    fetch_crm_users,
    mapping_by_user,
    plan_mapping,
    unit_extensions,
)
from vochi_crm.errors import InvalidInput, VochiError
from vochi_crm.registration.problems import NotConfigured, hint_for
from vochi_crm.retailcrm import RetailCrmError
from vochi_crm.retailcrm_config import ConfigChange, validate_url
from vochi_crm.units import Unit
from vochi_daemon.admin.auth import Access, page_access
from vochi_daemon.admin.http import ADMIN_PREFIX, first, read_form
from vochi_daemon.admin.render import page, render
from vochi_daemon.app_state import runtime_of

router = APIRouter(prefix=ADMIN_PREFIX + "/units/{unit}", include_in_schema=False)
MAX_KEY = 200


def form_version(request: Request, unit: Unit) -> str:
    """A keyed digest of the stored config the form was rendered from (no secret leaks)."""
    secret = request.app.state.settings.admin.jwt_secret
    key = hashlib.sha256(b"form-version:" + secret.get_secret_value().encode()).digest()
    body = json.dumps(unit.stored_retailcrm, sort_keys=True, default=str).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()[:32]


def _plausible_host(host: str) -> bool:
    """A domain with a dot, an IP address or localhost: ``https://nope`` is a typo, not an
    account."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "." in host.strip(".") or host == "localhost"
    return True


async def checked_form(request: Request, access: Access) -> dict[str, list[str]]:
    try:
        form = await read_form(request)
    except InvalidInput:  # not our form at all: no token either
        raise AccessDenied("expected this page's form", "csrf") from None
    if not access.csrf_ok(first(form, "csrf_token")):
        raise AccessDenied("the form's CSRF token does not match this session", "csrf")
    return form


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# -- Подключение / Connection -------------------------------------------------------------------


def _connection(
    request: Request,
    access: Access,
    unit: Unit,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    report: Any = None,
    notice: str | None = None,
    detail: str | None = None,
) -> Response:
    config = unit.retailcrm
    shown = values or {"api_url": config.api_url or "", "enabled": config.enabled}
    return render(
        request,
        "connection.html",
        status=status,
        access=access,
        unit=unit,
        nav="connection",
        config=config.public(),
        unreadable=unit.api_key_unreadable,
        values=shown,
        errors=errors or {},
        report=report,
        notice=notice or {"saved": "notice.saved"}.get(request.query_params.get("done", "")),
        detail=detail,
        version=form_version(request, unit),
    )


@router.get("/connection")
@page
async def connection(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    return _connection(request, access, await runtime_of(request).configs.get(unit))


@router.post("/connection")
@page
async def save_connection(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    form = await checked_form(request, access)
    runtime = runtime_of(request)
    current = await runtime.configs.get(unit)
    api_url = first(form, "api_url").strip()
    api_key = first(form, "api_key").strip()
    enabled = first(form, "enabled") == "on"
    values = {"api_url": api_url, "enabled": enabled}
    errors: dict[str, str] = {}
    if not api_url:
        errors["api_url"] = "err.api_url.required"
    else:
        try:
            api_url = validate_url(api_url)
            if not _plausible_host(urlsplit(api_url).hostname or ""):
                errors["api_url"] = "err.api_url.invalid"
        except InvalidInput:
            errors["api_url"] = "err.api_url.invalid"
    if api_key and any(ch.isspace() for ch in api_key):
        errors["api_key"] = "err.api_key.spaces"
    elif len(api_key) > MAX_KEY:
        errors["api_key"] = "err.api_key.long"
    elif enabled and not api_key and not current.retailcrm.api_key:
        errors["api_key"] = (
            "err.api_key.unreadable" if current.api_key_unreadable else "err.api_key.required"
        )
    if errors:
        return _connection(request, access, current, status=422, values=values, errors=errors)
    if first(form, "version") != form_version(request, current):
        return _connection(request, access, current, status=409, notice="err.conflict")
    change = ConfigChange(api_url=api_url, api_key=api_key or None, enabled=enabled)
    try:
        await runtime.configs.update(unit, change)
    except InvalidInput as exc:
        return _connection(
            request, access, current, status=422, values=values, notice="err.invalid",
            detail=exc.message,
        )
    return see_other(f"{ADMIN_PREFIX}/units/{unit}/connection?done=saved")


@router.post("/connection/test")
@page
async def test_connection(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    await checked_form(request, access)
    runtime = runtime_of(request)
    try:
        report = await runtime.test_connection(unit)
    except NotConfigured:
        current = await runtime.configs.get(unit)
        return _connection(request, access, current, status=409, notice="err.not_configured")
    return _connection(request, access, await runtime.configs.get(unit), report=report)


# -- Сотрудники / Mapping -------------------------------------------------------------------------


async def _users(request: Request, unit: Unit) -> tuple[list[CrmUser] | None, str | None]:
    """RetailCRM's users now, or why they cannot be had (a hint, never the key)."""
    timeout = request.app.state.settings.delivery.retailcrm_timeout_seconds
    if not unit.retailcrm.configured:
        return None, None
    try:
        return await fetch_crm_users(unit, request_timeout=timeout), None
    except RetailCrmError as exc:
        return None, hint_for(exc, unit.number, method="/api/users")


async def _mapping(
    request: Request,
    access: Access,
    unit: Unit,
    *,
    status: int = 200,
    users: list[CrmUser] | None = None,
    problem: str | None = None,
    plan: MappingPlan | None = None,
    typed: dict[int, str] | None = None,
    notice: str | None = None,
) -> Response:
    if users is None and problem is None:
        users, problem = await _users(request, unit)
    by_user = mapping_by_user(unit.retailcrm.user_mappings)
    known = {u.id for u in users or []}
    rows = typed or {uid: ", ".join(exts) for uid, exts in by_user.items()}
    # mapped users RetailCRM no longer has, and users a form named that it never had
    listed = set(by_user) | set(typed or {})
    missing = sorted(uid for uid in listed if uid not in known) if users is not None else []
    errors: dict[str, list[Any]] = {}
    for item in plan.problems if plan else []:
        errors.setdefault(item.field, []).append(item)
    extensions = await unit_extensions(runtime_of(request).db, unit)
    done = request.query_params.get("done")
    module = request.query_params.get("module")
    return render(
        request,
        "mapping.html",
        status=status,
        access=access,
        unit=unit,
        nav="mapping",
        users=users,
        names={u.id: u.name for u in users or []},
        problem=problem,
        rows=rows,
        missing=missing,
        errors=errors,
        extensions=extensions,
        unmapped=[e for e in extensions if e not in unit.retailcrm.user_mappings],
        notice=notice or ("notice.mapping_saved" if done == "saved" else None),
        module=module,
        version=form_version(request, unit),
    )


@router.get("/mapping")
@page
async def mapping(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    return await _mapping(request, access, await runtime_of(request).configs.get(unit))


@router.post("/mapping")
@page
async def save_mapping(request: Request, unit: str) -> Response:
    access = await page_access(request, unit)
    form = await checked_form(request, access)
    runtime = runtime_of(request)
    current = await runtime.configs.get(unit)
    typed: dict[int, str] = {}
    for name, values in form.items():
        user_id = name.removeprefix("user_")
        if name.startswith("user_") and user_id.isascii() and user_id.isdigit():
            typed[int(user_id)] = values[0][:500]
    users, problem = await _users(request, current)
    if users is None:
        return await _mapping(
            request, access, current, status=409, users=users, problem=problem, typed=typed,
            notice="err.users_unavailable",
        )
    plan = plan_mapping(typed, (u.id for u in users))
    if plan.problems:
        return await _mapping(
            request, access, current, status=422, users=users, plan=plan, typed=typed,
            notice="err.mapping",
        )
    if first(form, "version") != form_version(request, current):
        return await _mapping(request, access, current, status=409, users=users,
                              notice="err.conflict")
    saved = await runtime.configs.update(unit, ConfigChange(replace_mappings=plan.mapping))
    module = "skipped"
    if saved.retailcrm.enabled and saved.retailcrm.configured:
        try:
            outcome = await runtime.register_module(unit)
            module = "ok" if outcome.ok and not outcome.warnings else "error"
        except VochiError:
            module = "error"  # the queued registration retries; the journal tells the story
    return see_other(f"{ADMIN_PREFIX}/units/{unit}/mapping?done=saved&module={module}")
