"""The outermost ASGI layer of the served daemon: ``POST /api/events`` goes straight to its lean
endpoint, skipping FastAPI's middleware stack (DESIGN §8: the ingest route must be lean; the stack
cost ~40 % of the CPU per event, docs/performance.md). Everything else goes to the app."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from vochi_crm.settings import IPNetwork
from vochi_daemon.guards import forwarded_scope
from vochi_daemon.routes.events import post_event

EVENTS_PATH = "/api/events"


class IngestFastPath:
    def __init__(self, app: ASGIApp, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if self.trusted:
                scope = forwarded_scope(scope, self.trusted)  # the same trust rules as the app
            if scope["path"][len(scope.get("root_path", "")) :] == EVENTS_PATH:
                # the endpoint finds the runtime through request.app, as inside the app
                response = await post_event(Request({**scope, "app": self.app}, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
