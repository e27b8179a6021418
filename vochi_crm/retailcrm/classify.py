"""Turn one RetailCRM answer into a payload or one of the three outcome errors — pure, no I/O.

RetailCRM reports failures three ways: an HTTP status, ``{"success": false, "errorMsg": …,
"errors": …}`` (also inside a 2xx), and — for an account that does not exist — an HTML page
(404 on GET, 405 on POST; reference A1/A3). Proxies add their own HTML and truncated bodies. The
rules, in the order they apply:

1. 408, 429 and every 5xx → transient (``http_<status>``), whatever the body says; ``Retry-After``
   (seconds or an HTTP-date) becomes ``retry_after``.
2. An ``errorMsg`` naming a unit-level cause → unit must act, whatever the status:
   ``"apiKey" is missing.`` (missing_key), ``Wrong "apiKey" value.`` (invalid_key),
   ``Access denied.`` (access_denied), ``Account does not exist.`` (account_missing),
   ``Telephony not enabled…`` (telephony_disabled).
3. 2xx → the JSON object when ``success`` is ``true`` (checked before rule 2); ``success: false``
   → permanent (``crm_error``); not a JSON object / no ``success`` → permanent (``bad_response``).
4. 3xx → unit must act (``redirect``): the configured address is not the API (http→https, moved).
5. 4xx with an HTML body (starts with ``<`` or ``text/html``), and 405 without JSON → unit must
   act (``account_missing``).
6. 401 → ``invalid_key``, 403 → ``access_denied`` (unit must act).
7. 404 → permanent: ``method_not_found`` for ``API method not found``, else ``not_found``.
8. 400 → permanent ``validation``; any other status → permanent ``http_<status>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from vochi_crm.retailcrm.errors import (
    RetailCrmError,
    RetailCrmPermanent,
    RetailCrmTransient,
    RetailCrmUnitMustAct,
)
from vochi_crm.retailcrm.exchange import mask_payload, mask_text

#: Longest ``Retry-After`` we honour; anything above is a misconfigured proxy, not advice.
MAX_RETRY_AFTER = 86400.0
_MESSAGE_LIMIT = 300

#: ``errorMsg`` fragments (lower case) → unit-must-act reason.
_UNIT_MESSAGES: tuple[tuple[str, str], ...] = (
    ('"apikey" is missing', "missing_key"),
    ('wrong "apikey" value', "invalid_key"),
    ("access denied", "access_denied"),
    ("account does not exist", "account_missing"),
    ("telephony not enabled", "telephony_disabled"),
)


def classify(
    status: int,
    headers: Mapping[str, str],
    body_text: str,
    *,
    now: datetime | None = None,
    secret: str | None = None,
) -> dict[str, Any] | RetailCrmError:
    """The parsed success payload, or the error to raise (returned, not raised, for easy tests).

    ``secret`` (the API key) is cut out of anything copied from the body into the error.
    """
    payload = parse_json_object(body_text)
    error_msg, errors = _error_fields(payload, secret)
    content_type = _header(headers, "content-type") or ""
    html = body_text.lstrip().startswith("<") or "html" in content_type.lower()

    def fail(cls: type[RetailCrmError], reason: str, what: str, **extra: Any) -> RetailCrmError:
        message = _message(what, status, error_msg, errors)
        return cls(
            message, reason=reason, status=status, error_msg=error_msg, errors=errors, **extra
        )

    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(_header(headers, "retry-after"), now=now)
        what = "RetailCRM is throttling" if status in (429, 503) else "RetailCRM failed"
        return fail(RetailCrmTransient, f"http_{status}", what, retry_after=retry_after)
    if 200 <= status < 300 and payload is not None and payload.get("success") is True:
        return payload
    unit_reason = _unit_reason(error_msg)
    if unit_reason is None and html and status >= 400:
        unit_reason = _unit_reason(body_text)
    if unit_reason is not None:
        return fail(RetailCrmUnitMustAct, unit_reason, "RetailCRM refused the unit's access")
    if 200 <= status < 300:
        if payload is None:
            what = "RetailCRM answered an HTML page" if html else "RetailCRM answered no JSON"
            return fail(RetailCrmPermanent, "bad_response", what)
        if payload.get("success") is False:
            return fail(RetailCrmPermanent, "crm_error", "RetailCRM reported a failure")
        return fail(RetailCrmPermanent, "bad_response", "RetailCRM answered without 'success'")
    if 300 <= status < 400:
        location = mask_text(_header(headers, "location") or "?", secret=secret)
        return fail(RetailCrmUnitMustAct, "redirect", f"RetailCRM redirects to {location}")
    if 400 <= status < 500 and (html or (status == 405 and payload is None)):
        return fail(RetailCrmUnitMustAct, "account_missing", "No RetailCRM account at this address")
    if status == 401:
        return fail(RetailCrmUnitMustAct, "invalid_key", "RetailCRM refused the API key")
    if status == 403:
        return fail(RetailCrmUnitMustAct, "access_denied", "RetailCRM denied access")
    if status == 404:
        if error_msg is not None and "api method not found" in error_msg.lower():
            return fail(RetailCrmPermanent, "method_not_found", "RetailCRM has no such API method")
        return fail(RetailCrmPermanent, "not_found", "RetailCRM found no such object")
    if status == 400:
        return fail(RetailCrmPermanent, "validation", "RetailCRM rejected the request")
    return fail(RetailCrmPermanent, f"http_{status}", "RetailCRM answered unexpectedly")


def parse_json_object(body_text: str) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` for anything else (HTML, truncated, a list, empty)."""
    if not body_text or body_text.lstrip()[:1] != "{":
        return None
    try:
        value = json.loads(body_text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date; junk → ``None``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        seconds = max(seconds, 0.0)
    if seconds != seconds or seconds < 0:  # NaN or a negative delta: not advice
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():  # plain dicts are case-sensitive; httpx.Headers is not
        if key.lower() == name:
            return item
    return None


def _error_fields(
    payload: dict[str, Any] | None, secret: str | None
) -> tuple[str | None, dict[str, Any] | list[Any] | None]:
    if payload is None:
        return None, None
    raw_msg = payload.get("errorMsg")
    error_msg = mask_text(str(raw_msg), secret=secret) if raw_msg is not None else None
    raw_errors = payload.get("errors")
    errors = None
    if isinstance(raw_errors, dict | list):
        errors = mask_payload(raw_errors, secret=secret)
    return error_msg, errors


def _unit_reason(text: str | None) -> str | None:
    if not text:
        return None
    lowered = text.lower()
    for fragment, reason in _UNIT_MESSAGES:
        if fragment in lowered:
            return reason
    return None


def _message(
    what: str, status: int, error_msg: str | None, errors: dict[str, Any] | list[Any] | None
) -> str:
    text = f"{what} (HTTP {status})"
    if error_msg:
        text += f": {error_msg}"
    if isinstance(errors, dict) and errors:
        text += " — " + "; ".join(f"{k}: {v}" for k, v in errors.items())
    elif isinstance(errors, list) and errors:
        text += " — " + "; ".join(str(e) for e in errors)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
