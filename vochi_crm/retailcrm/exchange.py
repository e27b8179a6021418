"""The record of one RetailCRM call, safe to journal (``integration_logs``) and to show.

Callers journal every call — success or failure — with method, path, the request fields, the
response, the HTTP status and the time taken (DESIGN §3, reference B2). The client builds one
:class:`Exchange` per call and hands it out three ways: on the result, on the exception, and to an
optional ``on_exchange`` callback. Secrets are masked *here*, once, so no caller has to remember:
the API key never enters a record; per-unit secrets RetailCRM echoes or that we send
(``integrationModule.clientId``, ``token=`` in URLs) keep only their last four characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vochi_crm.masking import mask_secret

#: Keys whose values are secrets wherever they appear (compared case-insensitively).
SECRET_KEYS = frozenset(
    {
        "apikey",
        "api_key",
        "x-api-key",
        "password",
        "secret",
        "token",
        "clientsecret",
        "client_secret",
    }
)
#: Containers in which ``clientId`` is *our* per-unit callback secret. (In ``calls/upload`` the
#: same name is a Google Analytics id and stays readable.)
_CLIENT_ID_CONTAINERS = frozenset({"integrationModule"})
_URL_SECRET = re.compile(
    r"(?P<head>[?&](?:token|apiKey|api_key|key|secret)=)(?P<value>[^&#\s\"']+)"
)
#: Longest response text kept in a record when the body is not JSON (HTML pages can be big).
MAX_TEXT = 2000


@dataclass
class Exchange:
    """One request/response pair with secrets masked; ``to_dict`` is JSON-serialisable."""

    method: str
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    response: Any = None
    elapsed_ms: float = 0.0
    started_at: datetime | None = None
    outcome: str = "pending"
    reason: str | None = None
    error_msg: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "request": self.request,
            "status": self.status,
            "response": self.response,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "outcome": self.outcome,
            "reason": self.reason,
            "error_msg": self.error_msg,
        }


def mask_payload(value: Any, *, secret: str | None = None, _container: str | None = None) -> Any:
    """A copy of ``value`` (JSON-like) with every secret masked; the input is not modified.

    ``secret`` (the API key) is additionally cut out of any string it appears in, in case
    RetailCRM or a proxy echoes it (an HTML error page quoting the URL, say).
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if name.lower() in SECRET_KEYS or (
                name == "clientId" and _container in _CLIENT_ID_CONTAINERS
            ):
                out[name] = mask_secret(item) if isinstance(item, str) else "••••"
            else:
                out[name] = mask_payload(item, secret=secret, _container=name)
        return out
    if isinstance(value, list | tuple):
        return [mask_payload(item, secret=secret, _container=_container) for item in value]
    if isinstance(value, str):
        return mask_text(value, secret=secret)
    return value


def mask_text(text: str, *, secret: str | None = None) -> str:
    """Mask secrets inside free text: ``token=…`` URL parameters and the literal API key."""
    if secret and secret in text:
        text = text.replace(secret, mask_secret(secret) or "••••")
    if "=" in text:
        text = _URL_SECRET.sub(lambda m: m["head"] + (mask_secret(m["value"]) or "••••"), text)
    return text


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Long non-JSON bodies are kept only in part: enough to recognise an HTML page or a proxy."""
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
