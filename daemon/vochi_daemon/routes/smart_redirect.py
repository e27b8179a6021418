"""``POST /api/smart-redirect`` (via nginx ``/retailcrm/api/smart-redirect``): who is this caller's
manager, within the unit's deadline; the channel redirect, if asked for, runs in the background.
Lean like ``/api/events``: a raw Starlette endpoint, the body parsed once by the core."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from vochi_crm.errors import VochiError
from vochi_crm.smart_redirect import MAX_BODY_BYTES, parse_request
from vochi_daemon.app_state import runtime_of
from vochi_daemon.guards import internal_body


async def post_smart_redirect(request: Request) -> JSONResponse:
    try:
        redirect_request = parse_request(await internal_body(request, MAX_BODY_BYTES))
        service = runtime_of(request).smart_redirect
        if service is None:
            raise VochiError("smart redirect is not running in this process")
        answer = await service.handle(redirect_request)
    except VochiError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)
    return JSONResponse(answer)


_ANSWER = {
    "type": "object",
    "properties": {
        "extension": {"type": ["string", "null"], "description": "from the unit's own mapping"},
        "manager_id": {"type": ["integer", "null"]},
        "customer_name": {"type": ["string", "null"]},
        "source": {"type": "string", "enum": ["cache", "crm", "fallback"]},
        "reason": {
            "type": "string",
            "description": "manager_code, manager_mapping, no_manager, manager_not_mapped, "
            "crm_timeout, crm_breaker_open, crm_<kind>:<reason>, integration_disabled, "
            "unit_inactive",
        },
        "elapsed_ms": {"type": "number", "description": "our whole answer time"},
        "crm_ms": {
            "type": ["number", "null"],
            "description": "RetailCRM's part of it (null: not asked, or answered from the cache)",
        },
        "redirect": {
            "type": "string",
            "enum": ["scheduled", "not_requested", "disabled", "no_extension", "no_ssh"],
        },
    },
}

OPENAPI = {
    "post": {
        "tags": ["smart redirect"],
        "summary": "Find the caller's manager (and optionally redirect the channel)",
        "description": (
            "Loopback callers or X-Internal-Token only. Answers within the unit's lookup "
            "deadline (default 1,500 ms) from a short-TTL cache or RetailCRM "
            "telephony/manager; only extensions of the unit's own mapping are returned, else "
            "the unit's fallback_extension (or null). With a channel and redirect_enabled, "
            '`asterisk -rx "channel redirect <channel> <redirect_context>,<ext>,1"` runs on '
            "the unit's PBX over SSH in the background (journal: channel_redirect)."
        ),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["phone"],
                        "properties": {
                            "enterprise_number": {"type": "string", "example": "0367"},
                            "token": {"type": "string", "description": "enterprises.name2"},
                            "phone": {"type": "string", "example": "+375291234567"},
                            "unique_id": {"type": "string", "example": "1757765248.123"},
                            "channel": {"type": "string", "example": "PJSIP/trunk-0000002a"},
                            "trunk": {"type": "string"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "the decision",
                "content": {"application/json": {"schema": _ANSWER}},
            },
            "403": {"description": "not loopback and no valid X-Internal-Token"},
            "404": {"description": "unknown unit or token"},
            "413": {"description": "body too large"},
            "422": {"description": "invalid input (names the field); nothing executed"},
        },
    }
}
