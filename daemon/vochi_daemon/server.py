"""Run the daemon under uvicorn. SIGTERM/SIGINT shut it down gracefully: in-flight requests finish,
the lifespan closes the runtime (and stops the embedded database when this process was its last
user)."""

from __future__ import annotations

import gc
import logging

import uvicorn

from vochi_crm.runtime import Notice
from vochi_crm.settings import Settings
from vochi_daemon.app import create_app
from vochi_daemon.fast_path import IngestFastPath


def serve(settings: Settings, *, notice: Notice | None = None) -> None:
    logging.basicConfig(
        level=settings.daemon.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if settings.daemon.log_level != "debug":
        # httpx logs every request at INFO: one line per RetailCRM call, which the journal
        # (integration_logs) already records with its outcome
        logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(settings, notice=notice)
    config = uvicorn.Config(
        IngestFastPath(app, settings.daemon.trusted_proxy_networks()),
        host=settings.daemon.host,
        port=settings.daemon.port,
        log_level=settings.daemon.log_level,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        access_log=settings.daemon.access_log,
        # client address, scheme and prefix come from vochi_daemon.guards.ProxyHeaders, governed
        # by VOCHI_DAEMON__TRUSTED_PROXIES; uvicorn's own rewriting would hide the proxy from it
        proxy_headers=False,
    )
    # Everything imported and built so far (FastAPI, pydantic, the app) lives as long as the
    # process: keep it out of the cyclic GC's scans, or each full collection walks it all and
    # stalls every request in flight for milliseconds (docs/performance.md).
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run()
