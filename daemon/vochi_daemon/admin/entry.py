"""The way in and out: ``/retailcrm-admin/`` (token exchange, or where to go), the units list of
a super-admin, and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vochi_crm.admin_auth import AccessDenied
from vochi_crm.errors import NotFound
from vochi_crm.units import UNIT_NUMBER
from vochi_daemon.admin import auth
from vochi_daemon.admin.http import ADMIN_PREFIX
from vochi_daemon.admin.pages import checked_form, see_other
from vochi_daemon.admin.render import error_page, page, render
from vochi_daemon.app_state import runtime_of

router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)


@router.get("/")
@page
async def entry(request: Request) -> Response:
    """``?token=`` (the platform's link, or ``vochi-crm admin-link``) → session → 303 to the clean
    URL. Without one: the admin's home when signed in, else how to sign in."""
    token = request.query_params.get("token")
    unit = request.query_params.get("enterprise_number") or None
    if unit is not None and not UNIT_NUMBER.match(unit):
        raise NotFound(f"{unit[:40]!r} is not a unit number")
    if token is not None:
        return await auth.exchange(request, token, unit)
    if request.query_params.get("signed_out"):
        return error_page(request, 200, "signed_out")
    try:
        access = await auth.page_access(request)
    except AccessDenied as exc:
        key = "denied.disabled" if exc.reason == "disabled" else "sign_in"
        return error_page(request, 200 if key == "sign_in" else 403, key)
    if unit is not None and not access.scope.allows(unit):
        raise AccessDenied(f"no access to unit {unit}", "scope")
    return see_other(auth.home_of(access.scope, unit))


@router.get("", include_in_schema=False)
async def bare(request: Request) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return see_other(f"{ADMIN_PREFIX}/{query}")


@router.get("/units")
@page
async def units(request: Request) -> Response:
    access = await auth.page_access(request)
    if not access.scope.super:
        return see_other(auth.home_of(access.scope))
    listed = await runtime_of(request).units.list()
    return render(request, "units.html", access=access, units=listed)


@router.get("/units/{unit}")
@page
async def unit_home(request: Request, unit: str) -> Response:
    await auth.page_access(request, unit)
    return see_other(f"{ADMIN_PREFIX}/units/{unit}/connection")


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    try:
        access = await auth.page_access(request)
    except AccessDenied:
        return await auth.logout(request)  # nothing to protect: just clear the cookie
    await checked_form(request, access)
    return await auth.logout(request)
