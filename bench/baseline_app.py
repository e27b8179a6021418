"""The ingest baseline: a bare Starlette ``POST /api/events`` that parses the JSON body and answers
202, with no database. Served by uvicorn with exactly the daemon's ``uvicorn.Config`` (see
``vochi_daemon/server.py``: uvloop and httptools picked by ``auto``, log level info, so the access
log is on as in the daemon, lifespan on, no server header).

Usage: python bench/baseline_app.py --port 8500 [--log-level warning]
"""

from __future__ import annotations

import argparse
import json
import logging

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def post_event(request: Request) -> JSONResponse:
    data = json.loads(await request.body())
    body = {"status": "accepted", "enterprise_number": data.get("enterprise_number")}
    return JSONResponse(body, status_code=202)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/events", post_event, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--log-level", default="info", help="warning: no access log")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
