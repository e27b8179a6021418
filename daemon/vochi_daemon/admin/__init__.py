"""The enterprise admin web UI at ``/retailcrm-admin/``: server-rendered pages over the core's
use-cases, authenticated by platform-signed tokens exchanged for server-side sessions.

:func:`install` mounts it on the daemon's app: the security middleware (headers, body limits),
the pages and the admin's static files.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from vochi_daemon.admin import diagnostics, entry, journal, pages
from vochi_daemon.admin.http import ADMIN_PREFIX, AdminHttpMiddleware

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    app.add_middleware(AdminHttpMiddleware)
    for module in (entry, pages, journal, diagnostics):
        app.include_router(module.router)
    # the daemon's static files (the admin's CSS/JS in admin/, the logo) under the UI's prefix,
    # which is the only one nginx forwards to the admin
    app.mount(
        ADMIN_PREFIX + "/static", StaticFiles(directory=STATIC_DIR), name="admin-static"
    )


__all__ = ["ADMIN_PREFIX", "install"]
