"""RetailCRM's wire format on the server side: form bodies in, ``{"success": …}`` JSON out.

Forms are parsed here with the standard library (``application/x-www-form-urlencoded``, and
``multipart/form-data`` which the legacy PHP client sent), not with Starlette's parser: it would
need python-multipart and costs more per request than the benchmarks can spare.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

#: Form fields RetailCRM expects to hold a JSON string (reference A2).
ENTITY_FIELDS = frozenset({"event", "calls", "integrationModule", "customer", "task", "order"})
#: Parameter names that carry the API key (never journaled).
KEY_PARAMS = frozenset({"apiKey"})

ACCOUNT_MISSING_HTML = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Account does not exist'
    "</title></head>\n<body><h1>Account does not exist.</h1><p>Check the address of your "
    "RetailCRM account.</p></body></html>\n"
)
GARBAGE_JSON = '{"success":true,"processedCallsCount":1,"duplicateCa'


class ApiFail(Exception):
    """Stop handling and answer RetailCRM's error body: ``{"success": false, "errorMsg": …}``."""

    def __init__(
        self,
        status: int,
        error_msg: str,
        errors: dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error_msg)
        self.status = status
        self.body: dict[str, Any] = {"success": False, "errorMsg": error_msg}
        if errors:
            self.body["errors"] = errors
        self.headers = headers or {}


def invalid(errors: dict[str, str], message: str = "Errors in the entity format") -> ApiFail:
    return ApiFail(400, message, errors)


def missing(name: str) -> ApiFail:
    return ApiFail(400, f"Parameter '{name}' is missing")


def non_scalar(name: str) -> ApiFail:
    return ApiFail(400, f'Input value "{name}" contains a non-scalar value')


def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def html_page(status: int) -> Response:
    return Response(ACCOUNT_MISSING_HTML, status_code=status, media_type="text/html")


def garbage() -> Response:
    return Response(GARBAGE_JSON, status_code=200, media_type="application/json")


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The POST body's fields in order (a field may repeat, as ``codes[]`` does)."""
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if not body:
        return []
    if content_type.startswith("multipart/form-data"):
        return parse_multipart(content_type, body)
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: list[tuple[str, str]] = []
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.append((name, payload.decode("utf-8", "replace")))
    return fields


def last_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``a=1&a=2`` → ``{"a": "2"}`` (PHP's rule for repeated scalar parameters)."""
    return dict(pairs)


def for_journal(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Fields as the journal shows them: key parameters dropped, JSON entities decoded,
    ``x[]`` collected into a list, other repeated names last-wins (as PHP reads them)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in KEY_PARAMS:
            continue
        decoded: Any = value
        if name in ENTITY_FIELDS:
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
        if name.endswith("[]"):
            out.setdefault(name, []).append(decoded)
        else:
            out[name] = decoded
    return out


def entity(form_pairs: list[tuple[str, str]], form: dict[str, str], name: str) -> Any:
    """The decoded JSON entity ``name``; RetailCRM's errors for a nested, missing or bad field."""
    if any(key.startswith(name + "[") for key, _ in form_pairs):
        raise non_scalar(name)
    raw = form.get(name)
    if raw is None or raw == "":
        raise missing(name)
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid({name: "This value is not valid JSON."}) from None
