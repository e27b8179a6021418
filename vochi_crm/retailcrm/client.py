"""Async RetailCRM API v5 client: one instance (one connection pool) per RetailCRM account.

It speaks the wire format of reference A1–A2 and nothing more: the key in the ``X-API-KEY`` header
only (never in a URL, where it would reach proxy and access logs), POST bodies form-encoded with
each entity (``event``, ``calls``, ``integrationModule``) as one JSON-string field, booleans as
``1``/``0``. Every call has a hard deadline covering connect, write, wait and read (default 2.5 s,
DESIGN §4), the body is always read and judged by :func:`~vochi_crm.retailcrm.classify.classify`,
and failures come out as one of the three classes of :mod:`vochi_crm.retailcrm.errors`.

No retries and no rate limiting here: those are delivery policy (queue, token bucket, breaker)
and belong to the caller, which knows whether a late pop-up is still worth sending.

Every call produces an :class:`~vochi_crm.retailcrm.exchange.Exchange` for the journal: on the
result (``result.exchange``), on the error (``err.exchange``), as ``client.last_exchange`` and
through the optional ``on_exchange`` callback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit

import httpx

from vochi_crm import __version__
from vochi_crm.errors import InvalidInput
from vochi_crm.masking import mask_secret
from vochi_crm.retailcrm.classify import classify, parse_json_object
from vochi_crm.retailcrm.errors import RetailCrmError, RetailCrmTransient
from vochi_crm.retailcrm.exchange import Exchange, clip, mask_payload, mask_text
from vochi_crm.retailcrm.transport import LeanTransport

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.5
USER_STATUSES = ("free", "busy", "dinner", "break")
#: ``/users`` accepts only these page sizes (reference A4).
USER_PAGE_LIMITS = (20, 50, 100)

ExchangeHook = Callable[[Exchange], None]
Query = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class CrmResult:
    """A successful call: RetailCRM's JSON object plus the journal record of the call."""

    data: dict[str, Any]
    exchange: Exchange

    @property
    def status(self) -> int:
        return self.exchange.status or 0

    @property
    def elapsed_ms(self) -> float:
        return self.exchange.elapsed_ms


class RetailCrmClient:
    """``async with RetailCrmClient(url, key) as crm: await crm.call_event({...})``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        on_exchange: ExchangeHook | None = None,
    ) -> None:
        if not api_key or any(ch.isspace() for ch in api_key):
            raise InvalidInput.one("api_key", "must be a non-empty value without spaces")
        if not timeout > 0:
            raise InvalidInput.one("timeout", "must be a positive number of seconds")
        self.base_url = normalise_base_url(base_url)
        self.timeout = timeout
        self.on_exchange = on_exchange
        self.last_exchange: Exchange | None = None
        self._api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "X-API-KEY": api_key,
                "Accept": "application/json",
                "User-Agent": f"vochi-crm/{__version__}",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport or default_transport(),
            follow_redirects=False,
            verify=shared_tls_context(),
        )

    def __repr__(self) -> str:
        return f"RetailCrmClient({self.base_url!r}, api_key={mask_secret(self._api_key)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- unversioned service methods (reference A1, A12) -------------------------------------

    async def api_versions(self) -> CrmResult:
        """``GET /api/api-versions`` → ``versions``; the cheapest check that key and URL work."""
        return await self._request("GET", "/api/api-versions")

    async def credentials(self) -> CrmResult:
        """``GET /api/credentials`` → ``credentials`` (allowed methods), ``siteAccess``, …"""
        return await self._request("GET", "/api/credentials")

    # -- users (reference A10) ---------------------------------------------------------------

    async def users(
        self, *, page: int = 1, limit: int = 100, filters: Mapping[str, Any] | None = None
    ) -> CrmResult:
        """``GET /api/v5/users`` → ``users[]``, ``pagination``; ``filters`` as ``filter[x]``."""
        if limit not in USER_PAGE_LIMITS:
            raise InvalidInput.one("limit", f"must be one of {USER_PAGE_LIMITS}")
        if page < 1:
            raise InvalidInput.one("page", "must be 1 or more")
        query: dict[str, str | list[str]] = {"page": str(page), "limit": str(limit)}
        for name, value in (filters or {}).items():
            if isinstance(value, list | tuple | set | frozenset):
                query[f"filter[{name}][]"] = [_scalar(v) for v in value]
            elif value is not None:
                query[f"filter[{name}]"] = _scalar(value)
        return await self._request("GET", "/api/v5/users", query=query)

    async def user(self, user_id: int) -> CrmResult:
        """``GET /api/v5/users/{id}`` → ``user``."""
        return await self._request("GET", f"/api/v5/users/{_id(user_id, 'user_id')}")

    async def user_status(self, user_id: int, status: str) -> CrmResult:
        """``POST /api/v5/users/{id}/status`` with ``status`` free|busy|dinner|break."""
        if status not in USER_STATUSES:
            raise InvalidInput.one("status", f"must be one of {', '.join(USER_STATUSES)}")
        path = f"/api/v5/users/{_id(user_id, 'user_id')}/status"
        return await self._request("POST", path, form={"status": status})

    # -- telephony (reference A7–A9) ---------------------------------------------------------

    async def call_event(self, event: Mapping[str, Any]) -> CrmResult:
        """``POST /api/v5/telephony/call/event`` (pop-up); may answer ``notExistCodes``."""
        return await self._request(
            "POST", "/api/v5/telephony/call/event", form={"event": _json(event)}
        )

    async def calls_upload(self, calls: Sequence[Mapping[str, Any]]) -> CrmResult:
        """``POST /api/v5/telephony/calls/upload`` → ``processedCallsCount``, ``duplicateCalls``."""
        return await self._request(
            "POST", "/api/v5/telephony/calls/upload", form={"calls": _json(list(calls))}
        )

    async def manager(
        self, phone: str, *, details: bool = True, ignore_status: bool = True
    ) -> CrmResult:
        """``GET /api/v5/telephony/manager`` → ``manager`` (absent when nobody), ``customer``, …"""
        if not phone.strip():
            raise InvalidInput.one("phone", "must not be empty")
        query = {"phone": phone, "details": _flag(details), "ignoreStatus": _flag(ignore_status)}
        return await self._request("GET", "/api/v5/telephony/manager", query=query)

    # -- integration module (reference A6) ---------------------------------------------------

    async def integration_module_get(self, code: str) -> CrmResult:
        """``GET /api/v5/integration-modules/{code}`` → ``integrationModule``."""
        return await self._request("GET", f"/api/v5/integration-modules/{_segment(code)}")

    async def integration_module_edit(self, code: str, module: Mapping[str, Any]) -> CrmResult:
        """``POST /api/v5/integration-modules/{code}/edit``: create, update or deactivate.

        RetailCRM replaces the whole telephony block on every edit: send the complete
        ``additionalCodes`` list, never a partial one (reference A6, B9).
        """
        path = f"/api/v5/integration-modules/{_segment(code)}/edit"
        return await self._request("POST", path, form={"integrationModule": _json(module)})

    # -- the one request path ----------------------------------------------------------------

    async def _request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        query: Query | None = None,
        form: Mapping[str, str] | None = None,
    ) -> CrmResult:
        exchange = Exchange(
            method=method,
            path=path,
            query=mask_payload(dict(query or {}), secret=self._api_key),
            request=self._record_form(form),
            started_at=datetime.now(UTC),
        )
        started = time.perf_counter()
        try:
            outcome = await self._send(method, path, query, form, exchange)
        except RetailCrmError as exc:
            outcome = exc
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000.0
        if isinstance(outcome, RetailCrmError):
            exchange.outcome, exchange.reason = outcome.kind, outcome.reason
            exchange.error_msg = outcome.error_msg
            outcome.exchange = exchange
        else:
            exchange.outcome = "ok"
        self._publish(exchange)
        if isinstance(outcome, RetailCrmError):
            raise outcome
        return CrmResult(data=outcome, exchange=exchange)

    async def _send(
        self,
        method: str,
        path: str,
        query: Query | None,
        form: Mapping[str, str] | None,
        exchange: Exchange,
    ) -> dict[str, Any] | RetailCrmError:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.request(
                    method, path, params=_params(query), data=dict(form) if form else None
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _transport_error("timeout", f"no answer within {self.timeout:g} s") from exc
        except httpx.ConnectError as exc:
            raise _transport_error("connect", f"cannot connect ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _transport_error("network", f"connection failed ({type(exc).__name__})") from exc
        exchange.status = response.status_code
        text = response.text
        parsed = parse_json_object(text)
        exchange.response = (
            mask_payload(parsed, secret=self._api_key)
            if parsed is not None
            else clip(mask_text(text, secret=self._api_key))
        )
        return classify(response.status_code, response.headers, text, secret=self._api_key)

    def _record_form(self, form: Mapping[str, str] | None) -> dict[str, Any]:
        """The form as the journal shows it: JSON fields decoded, so they can be queried."""
        decoded: dict[str, Any] = {}
        for name, value in (form or {}).items():
            try:
                decoded[name] = json.loads(value) if value[:1] in ("[", "{") else value
            except ValueError:
                decoded[name] = value
        return mask_payload(decoded, secret=self._api_key)  # type: ignore[no-any-return]

    def _publish(self, exchange: Exchange) -> None:
        self.last_exchange = exchange
        if self.on_exchange is None:
            return
        try:
            self.on_exchange(exchange)
        except Exception:  # a broken journal hook must not turn a delivered call into a failure
            log.exception("retailcrm on_exchange hook failed", extra={"action": "retailcrm_hook"})


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """One TLS context for every account's client: building one costs ~30 ms of CPU, and the
    dispatcher keeps a client per RetailCRM account."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def default_transport() -> httpx.AsyncBaseTransport | None:
    """The lean keep-alive transport, unless the environment names a proxy (``HTTPS_PROXY`` …):
    then httpx's own transport, which knows proxies and ``NO_PROXY``."""
    proxies = urllib.request.getproxies()
    if any(scheme in proxies for scheme in ("http", "https", "all")):
        return None
    return LeanTransport(ssl_context=shared_tls_context())


def normalise_base_url(value: str) -> str:
    """``acme.retailcrm.ru/api/v5/`` → ``https://acme.retailcrm.ru``; rejects non-http(s)."""
    url = value.strip()
    if "://" not in url:
        url = "https://" + url
    url = url.rstrip("/")
    for suffix in ("/api/v5", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or " " in url:
        raise InvalidInput.one("api_url", f"{value!r} is not an http(s) address of an account")
    return url


def _transport_error(reason: str, detail: str) -> RetailCrmTransient:
    return RetailCrmTransient(f"RetailCRM unreachable: {detail}", reason=reason)


def _json(value: Any) -> str:
    """Compact JSON, non-ASCII kept (RetailCRM is UTF-8): the exact string inside a form field."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return _flag(value)
    return str(value)


def _params(query: Query | None) -> httpx.QueryParams | None:
    if not query:
        return None
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in query.items():
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return httpx.QueryParams(pairs)


def _id(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput.one(field, "must be a positive integer")
    return value


def _segment(code: str) -> str:
    if not code or not code.strip():
        raise InvalidInput.one("code", "must not be empty")
    return quote(code, safe="")
