"""The ASGI app factory. The lifespan opens the core's runtime (migrations, cache, listener)
once and closes it on shutdown; routes are thin views over the runtime's use-cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from vochi_crm import __version__
from vochi_crm.errors import FieldError, InvalidInput, VochiError
from vochi_crm.runtime import Notice, open_runtime
from vochi_crm.settings import Settings
from vochi_daemon import admin
from vochi_daemon.guards import ProxyHeaders
from vochi_daemon.routes import callbacks, config, events, health, smart_redirect

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings, *, notice: Notice | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, migrate=True, daemon=True, notice=notice) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="vochi-crm",
        version=__version__,
        description="RetailCRM integration of the Vochi telephony platform.",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.router.add_route("/api/events", events.post_event, methods=["POST"])
    app.router.add_route(
        "/api/smart-redirect", smart_redirect.post_smart_redirect, methods=["POST"]
    )
    # called by RetailCRM from outside: authenticated by clientId, not internal-only
    app.router.add_route("/retailcrm/make-call", callbacks.make_call, methods=["GET", "POST"])
    app.router.add_route("/retailcrm/status", callbacks.user_status, methods=["GET", "POST"])
    # behind nginx: the caller's address, scheme and prefix from a trusted proxy's headers
    app.add_middleware(ProxyHeaders, trusted=settings.daemon.trusted_proxy_networks())
    app.include_router(health.router)
    app.include_router(config.router)
    # the same config API under the admin UI's prefix (the original's ./api/config/{n}), and the UI
    app.include_router(config.router, prefix=admin.ADMIN_PREFIX, include_in_schema=False)
    admin.install(app)
    # the module logo RetailCRM shows (must be SVG) and, later, the admin UI's assets
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(VochiError, _core_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    _document_raw_routes(app)
    return app


def _document_raw_routes(app: FastAPI) -> None:
    """Raw Starlette routes skip FastAPI's body machinery; describe them in OpenAPI by hand."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"]["/api/events"] = events.OPENAPI
            schema["paths"]["/api/smart-redirect"] = smart_redirect.OPENAPI
            schema["paths"]["/retailcrm/make-call"] = callbacks.OPENAPI_MAKE_CALL
            schema["paths"]["/retailcrm/status"] = callbacks.OPENAPI_STATUS
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _core_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VochiError)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        FieldError(".".join(str(p) for p in err["loc"] if p != "body") or "body", err["msg"])
        for err in exc.errors()
    ]
    error = InvalidInput(fields)
    return JSONResponse(error.to_dict(), status_code=error.http_status)
