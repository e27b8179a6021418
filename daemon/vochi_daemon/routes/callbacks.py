"""RetailCRM's callbacks: ``GET|POST /retailcrm/make-call`` (``makeCallUrl``) and
``GET|POST /retailcrm/status`` (``changeUserStatusUrl``), reference A13.

RetailCRM calls these from outside, so they are not internal-only: the ``clientId`` secret is the
credential (unknown or missing → 403). Parameters come from the query string (what RetailCRM sends)
and, for POST, from a form or JSON body."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

from vochi_crm.click_to_call import CallbackAnswer, CallbackRefused
from vochi_crm.errors import VochiError
from vochi_daemon.app_state import runtime_of
from vochi_daemon.guards import PayloadTooLarge, client_address

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024
MAX_VALUE = 200


async def make_call(request: Request) -> JSONResponse:
    return await _callback(request, "make_call")


async def user_status(request: Request) -> JSONResponse:
    return await _callback(request, "user_status")


async def _callback(request: Request, kind: str) -> JSONResponse:
    try:
        params = await _params(request)
        callbacks = runtime_of(request).callbacks
        if callbacks is None:
            raise VochiError("callbacks are not served by this process")
        answer: CallbackAnswer = await (
            callbacks.make_call(params) if kind == "make_call" else callbacks.user_status(params)
        )
    except CallbackRefused as exc:
        log.warning(
            "%s callback refused from %s: %s",
            kind,
            client_address(request),
            exc.message,
            extra={"action": "callback_refused"},
        )
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)
    except VochiError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)
    return JSONResponse(answer.body, status_code=answer.status)


async def _params(request: Request) -> dict[str, str]:
    """Query parameters, overlaid by a POST's form or JSON body; first value per name."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, value[:MAX_VALUE])
    if request.method != "POST":
        return params
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    extra: dict[str, str] = {}
    if content_type == "application/json" and body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            extra = {
                str(k): str(v)[:MAX_VALUE]
                for k, v in data.items()
                if isinstance(v, str | int) and not isinstance(v, bool)
            }
    elif content_type in ("application/x-www-form-urlencoded", ""):
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            extra.setdefault(name, value[:MAX_VALUE])
    params.update(extra)
    return params


def _operation(summary: str, description: str, names: dict[str, str]) -> dict[str, object]:
    return {
        "tags": ["RetailCRM callbacks"],
        "summary": summary,
        "description": description,
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": name in ("clientId",),
                "schema": {"type": "string"},
                "description": text,
            }
            for name, text in names.items()
        ],
        "responses": {
            "200": {"description": "done"},
            "202": {"description": "make-call: the PBX is slow; the originate goes on"},
            "400": {"description": "make-call: no mapped extension for code/userId"},
            "403": {"description": "clientId missing, unknown, or the integration is off"},
            "422": {"description": "a parameter is invalid (names it); nothing executed"},
            "502": {"description": "make-call: the PBX refused or is unreachable"},
        },
    }


_MAKE_CALL = _operation(
    "Click-to-call from RetailCRM (makeCallUrl)",
    "Originates `Local/<ext>@<originate_context>` → `Dial Local/<phone>@<outbound_context>` on "
    "the unit's PBX over SSH; the extension is `code` if mapped, else the mapping of `userId`. "
    "Also accepts POST (form or JSON).",
    {
        "clientId": "the unit's secret clientId (from the module registration)",
        "code": "the user's extension (may be empty)",
        "phone": "the number to call",
        "userId": "the RetailCRM user id",
        "externalPhone": "optional: which company line",
    },
)
_STATUS = _operation(
    "User status change from RetailCRM (changeUserStatusUrl)",
    "Validated and journaled as user_status. Also accepts POST (form or JSON).",
    {
        "clientId": "the unit's secret clientId",
        "userId": "the RetailCRM user id",
        "code": "the user's extension",
        "status": "free, busy, dinner or break",
    },
)
OPENAPI_MAKE_CALL = {"get": _MAKE_CALL, "post": _MAKE_CALL}
OPENAPI_STATUS = {"get": _STATUS, "post": _STATUS}
