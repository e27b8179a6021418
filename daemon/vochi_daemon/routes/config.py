"""``/api/config/{unit}``: the same use-cases as ``vochi-crm config``.

Every route needs an admin session (the admin UI's cookie; state-changing requests then carry its
``X-CSRF-Token``) or ``Authorization: Bearer <token>`` for the unit it touches (a unit's token, or
a super token); anything else is 403 (see :mod:`vochi_daemon.admin.auth`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from vochi_crm.errors import FieldError, InvalidInput
from vochi_crm.retailcrm_config import ConfigChange, change_from_values, validate_mappings
from vochi_crm.units import Unit
from vochi_daemon.admin.auth import require_config_access
from vochi_daemon.app_state import runtime_of

router = APIRouter(
    prefix="/api/config", tags=["config"], dependencies=[Depends(require_config_access)]
)


@router.get("/{unit}")
async def read_config(unit: str, request: Request) -> dict[str, Any]:
    """The unit's config (API key masked), served from the config cache."""
    return _view(await runtime_of(request).cached_unit(unit))


@router.put("/{unit}")
async def replace_config(unit: str, request: Request) -> dict[str, Any]:
    """Set the given settings; a ``user_mappings`` object, if given, replaces the mapping.
    Settings not in the body (the API key, the mapping) are kept."""
    body = await _body(request)
    change = change_from_values(body)
    return _view(await runtime_of(request).configs.update(unit, change))


@router.patch("/{unit}")
async def patch_config(unit: str, request: Request) -> dict[str, Any]:
    """Like PUT, but ``user_mappings`` merges: ``{"151": 16}`` maps, ``{"152": null}`` unmaps."""
    body = await _body(request)
    mapping = body.pop("user_mappings", None)
    change = change_from_values(body)
    if mapping is not None:
        if not isinstance(mapping, Mapping):
            raise InvalidInput.one("user_mappings", "must be an object")
        unmap = tuple(str(k) for k, v in mapping.items() if v is None)
        merge = validate_mappings({k: v for k, v in mapping.items() if v is not None})
        change = ConfigChange(**{**change.__dict__, "map": merge, "unmap": unmap})
    return _view(await runtime_of(request).configs.update(unit, change))


@router.delete("/{unit}", status_code=204)
async def delete_config(unit: str, request: Request) -> Response:
    """Remove the unit's RetailCRM config (other integrations' keys are untouched)."""
    await runtime_of(request).configs.delete(unit)
    return Response(status_code=204)


@router.post("/{unit}/test")
async def test_connection(unit: str, request: Request) -> dict[str, Any]:
    """Test the unit's RetailCRM connection (as ``vochi-crm test-connection``): 200 with every
    check's status, detail and hint, ``"ok"`` true only when all pass; bounded to ~10 s.
    404 for an unknown unit, 409 for a unit with no RetailCRM address and key."""
    return (await runtime_of(request).test_connection(unit)).as_dict()


def _view(unit: Unit) -> dict[str, Any]:
    return {"enterprise_number": unit.number, "retailcrm": unit.retailcrm.public()}


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(FieldError("body", "is not valid JSON")) from None
    if isinstance(body, dict) and isinstance(body.get("config"), dict) and len(body) == 1:
        body = body["config"]  # the original admin page's {"config": {...}} envelope
    if not isinstance(body, dict):
        raise InvalidInput.one("body", "must be a JSON object")
    return body
