"""``/health`` (liveness + readiness) and ``/stats`` (JSON metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vochi_daemon.app_state import runtime_of

router = APIRouter(tags=["observability"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers and the config listener is connected, else 503."""
    runtime = runtime_of(request)
    database = await runtime.ping()
    listener = runtime.listener is not None and runtime.listener.status.connected
    body = {
        "status": "ok" if database and listener else "degraded",
        "database": "ok" if database else "unreachable",
        "listener": "ok" if listener else "disconnected",
    }
    return JSONResponse(body, status_code=200 if database and listener else 503)


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Cache, ingest, delivery, smart-redirect, SSH and journal metrics (DESIGN §6)."""
    return await runtime_of(request).stats()
