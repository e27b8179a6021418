"""Request guards shared by routes, and the proxy-aware client address they rely on.

Behind nginx the daemon's direct peer is the proxy, so :class:`ProxyHeaders` (a pure ASGI
middleware, installed by the app factory) rewrites the request's client address from
``X-Forwarded-For`` (the rightmost address that is not itself a trusted proxy, so a caller cannot
spoof it by sending its own header) or ``X-Real-IP``, the scheme from ``X-Forwarded-Proto`` and the
path prefix (``root_path``) from ``X-Forwarded-Prefix`` — only when the peer is one of
``VOCHI_DAEMON__TRUSTED_PROXIES``; from any other peer those headers are ignored. The guards below
then see the real caller: a remote request relayed by nginx is not loopback.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vochi_crm.errors import VochiError
from vochi_crm.settings import IPNetwork

_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~-]+)+$")
_SCHEMES = {"http": ("http", "https"), "websocket": ("ws", "wss")}


class Forbidden(VochiError):
    http_status = 403
    exit_code = 1
    title = "Forbidden"


@functools.lru_cache(maxsize=4096)
def is_loopback(host: str | None) -> bool:
    """Cached: the ingest path asks for every event, callers are few."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def internal_only(request: Request) -> None:
    """Loopback callers, or callers presenting ``X-Internal-Token`` (compared in constant time).
    The address is the one :class:`ProxyHeaders` resolved: through a trusted proxy, the caller's
    own, so nginx relaying a remote request does not make it loopback."""
    if is_loopback(client_address(request)):
        return
    expected = request.app.state.settings.internal_token
    given = request.headers.get("x-internal-token", "")
    if expected is not None and hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        return
    raise Forbidden("internal endpoint: loopback callers or X-Internal-Token only")


class PayloadTooLarge(VochiError):
    http_status = 413
    exit_code = 2
    title = "Payload too large"


async def internal_body(request: Request, limit: int) -> bytes:
    """The body of a call service's request: internal callers only, at most ``limit`` bytes
    (refused from the declared length before reading when it says so)."""
    await internal_only(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    return body


def client_address(request: Request) -> str | None:
    """The caller's address as :class:`ProxyHeaders` resolved it."""
    return request.client.host if request.client else None


def _trusted(host: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def forwarded_scope(scope: Scope, networks: Sequence[IPNetwork]) -> Scope:
    """``scope`` as the client sent it to the proxy, if the peer is a trusted proxy (pure)."""
    client = scope.get("client")
    if not networks or not client or not _trusted(client[0], networks):
        return scope
    headers: dict[bytes, list[bytes]] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(name, []).append(value)
    updated: dict[str, Any] = {}
    chain = [
        part.strip()
        for value in headers.get(b"x-forwarded-for", ())
        for part in value.decode("latin-1").split(",")
    ]
    real_ip = headers.get(b"x-real-ip", [b""])[-1].decode("latin-1").strip()
    host = _client_from_chain(chain, networks) if any(chain) else (real_ip or None)
    if host is not None:
        updated["client"] = (_valid_ip(host), 0)
    proto = headers.get(b"x-forwarded-proto", [b""])[-1].decode("latin-1").strip().lower()
    if proto in ("http", "https"):
        plain, secure = _SCHEMES.get(scope["type"], ("http", "https"))
        updated["scheme"] = secure if proto == "https" else plain
    prefix = headers.get(b"x-forwarded-prefix", [b""])[-1].decode("latin-1").strip().rstrip("/")
    if prefix and _PREFIX.fullmatch(prefix):
        updated["root_path"] = prefix + scope.get("root_path", "")
        updated["path"] = prefix + scope["path"]
        if scope.get("raw_path") is not None:
            updated["raw_path"] = prefix.encode() + scope["raw_path"]
    return {**scope, **updated} if updated else scope


def _client_from_chain(chain: list[str], networks: Sequence[IPNetwork]) -> str:
    """The rightmost entry that is not a trusted proxy (proxies append, so the entries left of
    the first untrusted one are the client's own claims and worth nothing)."""
    entries = [entry for entry in chain if entry]
    for entry in reversed(entries):
        if not _trusted(entry, networks):
            return entry
    return entries[0]


def _valid_ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"  # never loopback, never trusted


class ProxyHeaders:
    """Pure ASGI middleware applying :func:`forwarded_scope` (see the module docstring)."""

    def __init__(self, app: ASGIApp, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in _SCHEMES and self.trusted:
            scope = forwarded_scope(scope, self.trusted)
        await self.app(scope, receive, send)
