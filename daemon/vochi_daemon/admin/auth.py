"""Who is calling: a session cookie (from a token exchange) or ``Authorization: Bearer <JWT>``.

``require_config_access`` guards ``/api/config/{unit}``; :func:`page_access` guards the admin
pages; :func:`exchange` turns the platform's link (``?enterprise_number=N&token=…``) into a
session and redirects to the clean URL; :func:`logout` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from vochi_crm.admin_auth import (
    AccessDenied,
    AdminScope,
    AdminSession,
    AdminSessions,
    ExchangeLimiter,
    verify_token,
)
from vochi_daemon.admin.http import ADMIN_PREFIX, client_address, is_https
from vochi_daemon.app_state import runtime_of

COOKIE = "vochi_admin_session"
COOKIE_PATH = ADMIN_PREFIX + "/"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class RateLimited(AccessDenied):
    http_status = 429
    title = "Too many requests"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many sign-in attempts: try again later", "rate_limited")
        self.retry_after = int(retry_after + 0.999)


@dataclass(frozen=True, slots=True)
class Access:
    scope: AdminScope
    session: AdminSession | None = None
    """``None`` for a bearer token (no cookie, so no CSRF either)."""

    def require(self, unit: str) -> None:
        self.scope.require(unit)

    def csrf_ok(self, given: str | None) -> bool:
        return self.session is None or self.session.csrf_ok(given)

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session is not None else ""


def _secret(request: Request) -> str | None:
    secret = request.app.state.settings.admin.jwt_secret
    return secret.get_secret_value() if secret is not None else None


def sessions(request: Request) -> AdminSessions:
    return AdminSessions(runtime_of(request).db)


def limiter(request: Request) -> ExchangeLimiter:
    state = request.app.state
    if getattr(state, "admin_limiter", None) is None:
        state.admin_limiter = ExchangeLimiter(state.settings.admin.exchange_per_minute)
    found: ExchangeLimiter = state.admin_limiter
    return found


async def authenticate(request: Request) -> Access:
    """The caller's access, or :class:`AccessDenied` saying what is missing."""
    secret = _secret(request)
    if secret is None:
        raise AccessDenied(
            "the admin UI and the config API are disabled: set VOCHI_ADMIN__JWT_SECRET",
            "disabled",
        )
    header = request.headers.get("authorization", "")
    if header:
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise AccessDenied("expected Authorization: Bearer <token>", "invalid")
        return Access(verify_token(secret, token.strip()))
    cookie = request.cookies.get(COOKIE)
    if cookie:
        session = await sessions(request).get(cookie)
        if session is None:
            raise AccessDenied("the session has expired or ended: open the link again", "expired")
        return Access(session.scope, session)
    raise AccessDenied(
        "sign in first: open the admin UI from the platform (or vochi-crm admin-link), "
        "or send Authorization: Bearer <token>",
        "missing",
    )


async def require_config_access(request: Request, unit: str) -> Access:
    """``/api/config/{unit}``: a token or session for this unit (403 otherwise); a session's
    state-changing requests must carry its CSRF token in ``X-CSRF-Token``."""
    access = await authenticate(request)
    access.require(unit)
    if request.method not in SAFE_METHODS and not access.csrf_ok(
        request.headers.get("x-csrf-token")
    ):
        raise AccessDenied("missing or wrong X-CSRF-Token for this session", "csrf")
    return access


async def page_access(request: Request, unit: str | None = None) -> Access:
    access = await authenticate(request)
    if unit is not None:
        access.require(unit)
    return access


def home_of(scope: AdminScope, unit: str | None = None) -> str:
    target = unit or (None if scope.super else scope.unit)
    return f"{ADMIN_PREFIX}/units/{target}/connection" if target else f"{ADMIN_PREFIX}/units"


def set_session_cookie(request: Request, response: Response, session_id: str, ttl: float) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(ttl),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


async def exchange(request: Request, token: str, unit: str | None) -> Response:
    """Validate the token (rate-limited per client), start a session, 303 to the clean URL."""
    wait = limiter(request).check(client_address(request))
    if wait is not None:
        raise RateLimited(wait)
    scope = verify_token(_secret(request), token)
    if unit and not scope.allows(unit):
        raise AccessDenied(f"the link is for unit {scope.unit}, not {unit}", "unit_mismatch")
    store = sessions(request)
    await store.end(request.cookies.get(COOKIE))
    ttl = request.app.state.settings.admin.session_hours * 3600
    session_id, _session = await store.create(scope, ttl)
    response = RedirectResponse(home_of(scope, unit), status_code=303)
    set_session_cookie(request, response, session_id, ttl)
    return response


async def logout(request: Request) -> Response:
    await sessions(request).end(request.cookies.get(COOKIE))
    response = RedirectResponse(f"{ADMIN_PREFIX}/?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
    return response
