"""Access to the process's runtime from a request (set by the app's lifespan)."""

from __future__ import annotations

from fastapi import Request

from vochi_crm.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
