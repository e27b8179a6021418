"""Rendering admin pages: one Jinja2 environment (autoescaped), the catalogue's translator, times
in the admin's time zone, and the page decorator that turns failures into pages."""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache
from typing import Any, ParamSpec
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from vochi_crm import __version__
from vochi_crm.admin_auth import AccessDenied
from vochi_crm.errors import NotFound, VochiError
from vochi_daemon.admin.http import ADMIN_PREFIX
from vochi_daemon.admin.i18n import COOKIE, LANGUAGES, Translator, language, requested_language

log = logging.getLogger(__name__)
P = ParamSpec("P")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("vochi_daemon", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2)
    return env


def zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.admin.timezone)


def render(
    request: Request, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    lang = language(request)
    tz = zone(request)

    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    html = environment().get_template(f"admin/{template}").render(
        t=Translator(lang),
        lang=lang,
        languages=LANGUAGES,
        path=request.url.path,
        prefix=ADMIN_PREFIX,
        app_version=__version__,
        when=when,
        **{"access": None, "unit": None, "nav": None, "notice": None, "detail": None, **context},
    )
    response = HTMLResponse(html, status_code=status)
    asked = requested_language(request)
    if asked is not None:
        response.set_cookie(
            COOKIE, asked, max_age=365 * 86400, path=ADMIN_PREFIX + "/", samesite="lax"
        )
    return response


def error_page(
    request: Request, status: int, key: str, *, detail: str | None = None, **params: Any
) -> HTMLResponse:
    return render(request, "message.html", status=status, title_key=key, detail=detail, **params)


_DENIED_KEYS = {
    "disabled": "denied.disabled",
    "missing": "denied.missing",
    "invalid": "denied.invalid",
    "expired": "denied.expired",
    "unit_mismatch": "denied.unit_mismatch",
    "scope": "denied.scope",
    "csrf": "denied.csrf",
    "rate_limited": "denied.rate_limited",
}


def page(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Run a page handler; a refusal, an unknown thing or a crash becomes a page in the
    admin's language. A crash shows an incident id only: what failed is in the log."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        assert isinstance(request, Request)
        try:
            return await handler(*args, **kwargs)
        except AccessDenied as exc:
            response = error_page(request, exc.http_status, _DENIED_KEYS.get(exc.reason, "denied"))
            retry = getattr(exc, "retry_after", None)
            if retry is not None:
                response.headers["Retry-After"] = str(retry)
            return response
        except NotFound:
            return error_page(request, 404, "error.not_found")
        except VochiError as exc:  # core messages never carry secrets
            return error_page(request, exc.http_status, "error.generic", detail=exc.message)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception(
                "admin page %s failed (incident %s)",
                request.url.path,
                incident,
                extra={"action": "admin_page_error"},
            )
            return error_page(request, 500, "error.internal", incident=incident)

    return wrapper
