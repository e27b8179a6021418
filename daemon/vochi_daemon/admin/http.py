"""HTTP hygiene of the admin UI and the config API: security headers, body size limits, form
parsing, and who the client is (behind a trusted reverse proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vochi_crm.errors import InvalidInput
from vochi_daemon.guards import PayloadTooLarge

ADMIN_PREFIX = "/retailcrm-admin"
STATIC_PREFIX = ADMIN_PREFIX + "/static/"
CONFIG_PREFIXES = ("/api/config/", ADMIN_PREFIX + "/api/config/")
MAX_FORM_BYTES = 64 * 1024
MAX_API_BYTES = 256 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
NO_STORE: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
)


def guarded(path: str) -> bool:
    return path.startswith((ADMIN_PREFIX + "/", *CONFIG_PREFIXES)) or path == ADMIN_PREFIX


class AdminHttpMiddleware:
    """For admin and config paths: security headers and ``no-store`` on every response (static
    assets may be cached), and request bodies over the limit refused with 413 before any handler
    reads them (declared or streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not guarded(path):
            await self.app(scope, receive, send)
            return
        limit = MAX_API_BYTES if path.startswith(CONFIG_PREFIXES) else MAX_FORM_BYTES
        static = path.startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if static or k.lower() not in (b"cache-control", b"pragma")
                ]
                headers += SECURITY_HEADERS if static else (*SECURITY_HEADERS, *NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        if scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            body = await _bounded_body(scope, receive, limit)
            if body is None:
                response = PlainTextResponse(
                    f"Request body too large (limit {limit // 1024} KiB)", status_code=413
                )
                await response(scope, receive, send_with_headers)
                return
            receive = _replay(body)
        await self.app(scope, receive, send_with_headers)


async def _bounded_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def read_form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (the only kind our forms send) as
    name → values; anything else is refused."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise _bad_form()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the form is over {MAX_FORM_BYTES // 1024} KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError):
        raise _bad_form() from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _bad_form() -> InvalidInput:
    return InvalidInput.one("form", "expected an application/x-www-form-urlencoded form")


def first(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def client_address(request: Request) -> str:
    """The real client (behind nginx: as :class:`~vochi_daemon.guards.ProxyHeaders` resolved it
    from a trusted proxy's headers)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    """The admin reached us over TLS (nginx's ``X-Forwarded-Proto``, believed from a trusted
    proxy only, is already applied to the scheme)."""
    return request.url.scheme == "https"
