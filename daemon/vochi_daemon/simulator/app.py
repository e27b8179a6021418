"""A RetailCRM API v5 simulator, faithful to ``reference/retailcrm-api.md`` PART A (DESIGN §7).

RetailCRM cannot be reached from the test machines, so tests, the demo and the benchmarks talk
to this instead. It behaves like RetailCRM where the reference knows how RetailCRM behaves:

* accounts are told apart by API key (``X-API-KEY`` header, or ``apiKey`` query/form parameter);
  no key → 403 ``"apiKey" is missing.``, unknown key → 403 ``Wrong "apiKey" value.``; a method
  the key is not granted (see ``GET /api/credentials``) → 403 ``Access denied.``;
* unknown paths and methods → 404 ``API method not found`` (e.g. ``/api/v5/credentials``);
* POST bodies are forms whose entity fields are JSON strings; a missing one → 400
  ``Parameter 'x' is missing``, bracketed ``x[…]`` fields → 400 ``Input value "x" contains a
  non-scalar value``; the documented enums and formats are validated (:mod:`.rules`);
* rate limits per key, sliding one-second window: 10 req/s, 40 req/s for ``/api/v5/telephony/*``
  (separate buckets, as the Go client's limiter has them), answered with 503 and ``Retry-After``.

Where the reference is silent the simulator picks something plausible and says so: the 503 body,
``Retry-After`` on throttling, error paths of list items, phone matching, ``ignoreStatus``.
Injected latency and failures (``fail`` in ``/_sim/control``) apply per account, after the key
is checked. Everything received is journaled without API keys (``GET /_sim/requests``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vochi_daemon.simulator.api import METHODS, Ctx, Method
from vochi_daemon.simulator.control import control_routes
from vochi_daemon.simulator.state import (
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    Account,
    RateLimiter,
    apply_control,
    build_accounts,
    demo_account,
    retry_after_header,
)
from vochi_daemon.simulator.wire import (
    ApiFail,
    answer,
    for_journal,
    garbage,
    html_page,
    last_values,
    read_form,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090
JOURNAL_SIZE = 10_000
ALL_VERBS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
THROTTLED = "Rate limit exceeded"


class Simulator:
    """All state of one simulator instance, and the pipeline every API request goes through."""

    def __init__(self, accounts: Iterable[Mapping[str, Any]], journal_size: int) -> None:
        self._initial = [copy.deepcopy(dict(body)) for body in accounts]
        self.journal: deque[dict[str, Any]] = deque(maxlen=journal_size)
        self.accounts: dict[str, Account] = {}
        self.by_key: dict[str, Account] = {}
        self.limiter = RateLimiter()
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        self.accounts = build_accounts(copy.deepcopy(self._initial))
        self.by_key = {a.api_key: a for a in self.accounts.values()}
        self.journal.clear()
        self.limiter = RateLimiter()

    def control(self, body: Mapping[str, Any]) -> Account:
        account = apply_control(self.accounts, body)
        self.by_key = {a.api_key: a for a in self.accounts.values()}
        return account

    def requests(
        self, *, account: str | None = None, path: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        entries = [
            e
            for e in self.journal
            if (account is None or e["account"] == account)
            and (path is None or e["path"].startswith(path))
        ]
        return entries[-limit:] if limit else entries

    async def handle(self, request: Request, method: Method | None) -> Response:
        started = time.perf_counter()
        query_pairs = parse_qsl(request.url.query, keep_blank_values=True)
        form_pairs = await read_form(request) if request.method == "POST" else []
        self._seq += 1
        entry: dict[str, Any] = {
            "seq": self._seq,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": request.method,
            "path": request.url.path,
            "query": for_journal(query_pairs),
            "form": for_journal(form_pairs),
            "account": None,
            "status": None,
        }
        try:
            response = await self._dispatch(request, method, query_pairs, form_pairs, entry)
        except ApiFail as fail:
            response = answer(fail.status, fail.body, fail.headers)
            entry["errorMsg"] = fail.body["errorMsg"]
        except Exception:  # a simulator bug must still answer and be journaled
            log.exception("simulator handler failed", extra={"action": "simulator_error"})
            response = answer(500, {"success": False, "errorMsg": "Internal simulator error"})
            entry["errorMsg"] = "Internal simulator error"
        entry["status"] = response.status_code
        entry["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        self.journal.append(entry)
        return response

    async def _dispatch(
        self,
        request: Request,
        method: Method | None,
        query_pairs: list[tuple[str, str]],
        form_pairs: list[tuple[str, str]],
        entry: dict[str, Any],
    ) -> Response:
        query, form = last_values(query_pairs), last_values(form_pairs)
        key = request.headers.get("x-api-key") or query.get("apiKey") or form.get("apiKey")
        account = self.by_key.get(key) if key else None
        entry["account"] = account.name if account else None
        if method is None:
            raise ApiFail(404, "API method not found")
        if not key:
            raise ApiFail(403, '"apiKey" is missing.')
        if account is None:
            raise ApiFail(403, 'Wrong "apiKey" value.')
        mode = account.fail.take(request.url.path)
        if mode is not None:
            return await self._inject(request, account, mode)
        limit = (account.rate_limits or {}).get(method.bucket)
        if limit:
            wait = self.limiter.check(account.name, method.bucket, limit)
            if wait is not None:
                headers = retry_after_header(wait, account.throttle_retry_after)
                raise ApiFail(503, THROTTLED, headers=headers)
        if account.latency_ms > 0:
            await asyncio.sleep(account.latency_ms / 1000.0)
        if method.credential is not None and method.credential not in account.credentials:
            raise ApiFail(403, "Access denied.")
        ctx = Ctx(
            account=account,
            query=query,
            query_pairs=query_pairs,
            form=form,
            form_pairs=form_pairs,
            path_params=dict(request.path_params),
            origin=str(request.base_url).rstrip("/"),
        )
        status, body = await method.handler(ctx)
        return answer(status, body)

    async def _inject(self, request: Request, account: Account, mode: str) -> Response:
        plan = account.fail
        if mode in ("503", "429"):
            headers = retry_after_header(0.0, plan.retry_after)
            message = "Service temporary unavailable" if mode == "503" else "Too many requests"
            raise ApiFail(int(mode), message, headers=headers)
        if mode == "500":
            raise ApiFail(500, "Internal server error")
        if mode == "invalid_key":
            raise ApiFail(403, 'Wrong "apiKey" value.')
        if mode == "html":  # what RetailCRM answers for an account that does not exist (A1)
            return html_page(404 if request.method == "GET" else 405)
        if mode == "garbage":
            return garbage()
        await _wait_for_disconnect(request, plan.hang_seconds)  # mode == "timeout"
        raise ApiFail(504, "Gateway Timeout")


async def _wait_for_disconnect(request: Request, seconds: float) -> None:
    """Hang like an overloaded RetailCRM, but let go as soon as the client gives up."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), timeout=seconds)


def create_simulator_app(
    accounts: Iterable[Mapping[str, Any]] | None = None,
    *,
    seed_demo: bool | None = None,
    journal_size: int = JOURNAL_SIZE,
) -> Starlette:
    """The ASGI app. ``accounts`` are ``/_sim/control`` bodies; ``seed_demo`` (default: when no
    accounts are given) adds the ``demo`` account (key ``demo-key-not-secret-0001``)."""
    bodies = list(accounts or [])
    if seed_demo if seed_demo is not None else not bodies:
        bodies.insert(0, demo_account())
    sim = Simulator(bodies, journal_size)

    def endpoint(method: Method | None) -> Any:
        async def run(request: Request) -> Response:
            return await sim.handle(request, method)

        return run

    routes = [Route(m.path, endpoint(m), methods=[m.verb]) for m in METHODS]
    routes += control_routes(sim)
    routes.append(Route("/{path:path}", endpoint(None), methods=ALL_VERBS))
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    seed_demo: bool = True,
    log_level: str = "info",
) -> None:
    """Run the simulator with uvicorn until interrupted (``vochi-crm simulator``)."""
    import uvicorn

    app = create_simulator_app(seed_demo=seed_demo)
    if seed_demo:
        print(  # the one line a demo user needs
            f"RetailCRM simulator on http://{host}:{port} — account {DEMO_ACCOUNT!r}, "
            f"API key {DEMO_API_KEY} (a public fake); control: /_sim/control",
            file=sys.stderr,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
