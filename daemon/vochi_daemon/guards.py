"""Request guards shared by routes."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from vochi_crm.errors import VochiError


class Forbidden(VochiError):
    http_status = 403
    exit_code = 1
    title = "Forbidden"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def internal_only(request: Request) -> None:
    """Loopback callers, or callers presenting ``X-Internal-Token`` (compared in constant time)."""
    client = request.client.host if request.client else None
    if is_loopback(client):
        return
    expected = request.app.state.settings.internal_token
    given = request.headers.get("x-internal-token", "")
    if expected is not None and hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        return
    raise Forbidden("internal endpoint: loopback callers or X-Internal-Token only")
