"""The simulator's own control surface under ``/_sim`` — for tests, demos and benchmarks.

No API key, but loopback callers only: it can create accounts and read everything received.

``POST /_sim/control``        create/update one account (body: see :func:`state.apply_control`)
``GET  /_sim/requests``       the journal (``?account=&path=&limit=``), API keys never in it
``POST /_sim/reset``          back to the start state (accounts given at creation, the demo)
``GET  /_sim/state/{name}``   one account: users, modules, uploaded calls, received events
``POST /_sim/make-call``      act as RetailCRM: call the module's ``makeCallUrl`` (GET)
``POST /_sim/user-status``    act as RetailCRM: set a user's status, call ``changeUserStatusUrl``
``GET  /_sim/health``         readiness probe
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vochi_daemon.simulator import rules
from vochi_daemon.simulator.state import Account, ControlError

if TYPE_CHECKING:
    from vochi_daemon.simulator.app import Simulator

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
CALLBACK_TIMEOUT = 5.0

Endpoint = Callable[[Request], Awaitable[Response]]


def control_routes(sim: Simulator) -> list[Route]:
    def guarded(handler: Callable[[Simulator, Request], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if request.client is None or request.client.host not in LOOPBACK:
                return _error(403, "the simulator's control surface answers loopback only")
            try:
                return await handler(sim, request)
            except (ValueError, TypeError, KeyError) as exc:  # ControlError is a ValueError
                return _error(400, f"{type(exc).__name__}: {exc}")

        return endpoint

    return [
        Route("/_sim/control", guarded(_control), methods=["POST"]),
        Route("/_sim/requests", guarded(_requests), methods=["GET"]),
        Route("/_sim/reset", guarded(_reset), methods=["POST"]),
        Route("/_sim/state/{account}", guarded(_state), methods=["GET"]),
        Route("/_sim/make-call", guarded(_make_call), methods=["POST"]),
        Route("/_sim/user-status", guarded(_user_status), methods=["POST"]),
        Route("/_sim/health", guarded(_health), methods=["GET"]),
    ]


async def _control(sim: Simulator, request: Request) -> Response:
    account = sim.control(await _json_body(request))
    return JSONResponse(
        {
            "ok": True,
            "account": account.name,
            "users": len(account.users),
            "modules": sorted(account.modules),
        }
    )


async def _requests(sim: Simulator, request: Request) -> Response:
    params = request.query_params
    entries = sim.requests(
        account=params.get("account"),
        path=params.get("path"),
        limit=int(params["limit"]) if params.get("limit", "").isdigit() else None,
    )
    return JSONResponse({"requests": entries})


async def _reset(sim: Simulator, request: Request) -> Response:
    sim.reset()
    return JSONResponse({"ok": True, "accounts": sorted(sim.accounts)})


async def _state(sim: Simulator, request: Request) -> Response:
    account = sim.accounts.get(request.path_params["account"])
    if account is None:
        return _error(404, "no such account")
    return JSONResponse(account.summary())


async def _health(sim: Simulator, request: Request) -> Response:
    return JSONResponse({"ok": True, "accounts": sorted(sim.accounts)})


async def _make_call(sim: Simulator, request: Request) -> Response:
    """What RetailCRM does when a user clicks a number: GET ``makeCallUrl`` (reference A13)."""
    body = await _json_body(request)
    account, module, telephony = _telephony(sim, body)
    user_id = _user_id(body)
    code = body.get("code") or account.telephony_codes().get(user_id or 0, "")
    params = {
        "clientId": module.get("clientId") or "",
        "code": str(code),
        "phone": str(body.get("phone", "")),
        "userId": str(user_id or ""),
    }
    if body.get("externalPhone"):
        params["externalPhone"] = str(body["externalPhone"])
    return await _callback(telephony.get("makeCallUrl"), params)


async def _user_status(sim: Simulator, request: Request) -> Response:
    """A user changes status in RetailCRM: store it, GET ``changeUserStatusUrl`` (A13)."""
    body = await _json_body(request)
    account, module, telephony = _telephony(sim, body)
    user_id = _user_id(body)
    status = body.get("status")
    if user_id not in account.users or status not in rules.USER_STATUSES:
        raise ControlError(f"need a known 'userId' and 'status' in {rules.USER_STATUSES}")
    account.users[user_id]["status"] = status
    params = {
        "clientId": module.get("clientId") or "",
        "userId": str(user_id),
        "code": account.telephony_codes().get(user_id, ""),
        "status": status,
    }
    return await _callback(telephony.get("changeUserStatusUrl"), params)


async def _callback(url: Any, params: dict[str, str]) -> Response:
    if not isinstance(url, str) or not url:
        raise ControlError("the module has no callback URL for this")
    try:
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT, trust_env=False) as client:
            reply = await client.get(url, params=params)
    except httpx.HTTPError as exc:
        return _error(502, f"callback failed: {type(exc).__name__}: {exc}")
    return JSONResponse(
        {"url": url, "params": params, "status": reply.status_code, "body": reply.text[:2000]}
    )


def _telephony(
    sim: Simulator, body: dict[str, Any]
) -> tuple[Account, dict[str, Any], dict[str, Any]]:
    account = sim.accounts.get(str(body.get("account", "")))
    if account is None:
        raise ControlError("'account' names no account")
    modules = account.active_telephony_modules()
    if body.get("module"):
        modules = [m for m in modules if m.get("code") == body["module"]]
    if not modules:
        raise ControlError("the account has no active telephony module")
    return account, modules[0], modules[0]["integrations"]["telephony"]


def _user_id(body: dict[str, Any]) -> int | None:
    value = body.get("userId")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ControlError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _error(status: int, message: str) -> Response:
    return JSONResponse({"ok": False, "error": message}, status_code=status)
