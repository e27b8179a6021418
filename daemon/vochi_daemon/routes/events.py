"""``POST /api/events``: the call services' ingest. Lean on purpose (DESIGN §8): a raw Starlette
endpoint, the body parsed once by the core's validator, the answer sent after COMMIT."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from vochi_crm.errors import VochiError
from vochi_crm.events import EVENT_TYPES, MAX_BODY_BYTES, parse_event
from vochi_daemon.app_state import runtime_of
from vochi_daemon.guards import internal_body


async def post_event(request: Request) -> JSONResponse:
    try:
        event = parse_event(await internal_body(request, MAX_BODY_BYTES))
        runtime = runtime_of(request)
        unit = await runtime.unit_for_event(event)
        assert runtime.ingest is not None
        result = await runtime.ingest.submit(unit, event)
    except VochiError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)
    status = 202 if result.status == "accepted" else 200
    return JSONResponse(result.as_dict(), status_code=status)


OPENAPI = {
    "post": {
        "tags": ["events"],
        "summary": "Accept one Asterisk call event",
        "description": (
            "Body: {enterprise_number | token, event_type, payload}. 202 after the event is "
            "committed; 200 with duplicate=true for a retransmission; 200 with skipped=<reason> "
            "when the unit has no RetailCRM integration enabled or the event type is not sent "
            "to RetailCRM; 404 unknown unit; 413 body too large; 422 names the bad field."
        ),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["event_type", "payload"],
                        "properties": {
                            "enterprise_number": {"type": "string", "example": "0367"},
                            "token": {"type": "string", "description": "enterprises.name2"},
                            "event_type": {
                                "type": "string",
                                "enum": list(EVENT_TYPES),
                            },
                            "payload": {"type": "object", "required": ["UniqueId"]},
                        },
                    }
                }
            },
        },
        "responses": {
            code: {"description": text}
            for code, text in {
                "202": "stored",
                "200": "duplicate or skipped",
                "404": "unknown unit",
                "413": "body too large",
                "422": "invalid input",
            }.items()
        },
    }
}
