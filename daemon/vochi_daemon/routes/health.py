"""``/health`` (liveness + readiness) and ``/stats`` (JSON metrics)."""

from __future__ import annotations

import time
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
    """Cache metrics, listener state and uptime."""
    runtime = runtime_of(request)
    listener = runtime.listener.status if runtime.listener else None
    ingest = runtime.ingest
    return {
        "uptime_seconds": round(time.time() - runtime.started_at, 3),
        "config_cache": runtime.config_cache.stats() if runtime.config_cache else None,
        "listener": listener.__dict__ if listener else None,
        "ingest": {
            "accepted": ingest.accepted,
            "duplicates": ingest.duplicates,
            "batches": ingest.batches,
        }
        if ingest
        else None,
        "delivery": await runtime.dispatcher.stats() if runtime.dispatcher else None,
    }
