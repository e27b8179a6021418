"""A lean HTTP/1.1 keep-alive transport for the RetailCRM clients.

httpx stays the client API (requests, responses, timeouts, content decoding, the exception tree);
this replaces only what sits under it: httpcore's connection pool, h11 and the anyio streams, which
cost about half of the daemon's CPU per delivered event (docs/performance.md). Here a connection is
an :class:`asyncio.Protocol` whose bytes go straight into ``httptools`` (llhttp, the parser
uvicorn uses), and a request is one ``transport.write``.

It speaks exactly what RetailCRM needs: HTTP/1.1 over TCP or TLS, one request at a time per
connection, bodies sized by ``Content-Length``, chunked or delimited by the server closing.
Idle connections are reused LIFO for ``keepalive_expiry`` seconds (httpx's default, 5 s: shorter
than the idle timeouts servers use, so a reused connection is rarely one the server is closing).
Errors are httpx's own: ``ConnectError``/``ConnectTimeout``, ``ReadTimeout``, ``PoolTimeout``,
``RemoteProtocolError``, ``ReadError``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, cast

import httptools
import httpx

Origin = tuple[str, str, int]
MAX_BODY = 16 * 1024 * 1024
"""A RetailCRM answer larger than this is not an answer (the biggest, a users page, is ~100 kB)."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Connection(asyncio.Protocol):
    """One TCP/TLS connection; :meth:`exchange` sends a request and reads its whole response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._until_eof = False
        self._status = 0
        self._keep_alive = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and self._until_eof:
            self._waiter.set_result(None)  # a body delimited by the server closing
        elif not self._headers_done and not self._headers:
            self._waiter.set_exception(
                httpx.RemoteProtocolError("server disconnected without sending a response")
            )
        else:
            self._waiter.set_exception(httpx.ReadError("server disconnected mid-response"))

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            # a second answer in the same read as the first, nobody asked for it: it must not
            # reach the answer already delivered (the callbacks below skip it) nor the next one
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.closed:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.closed:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self._headers.clear()
            return
        self._headers_done = True
        self._status = status
        names = {name.lower() for name, _ in self._headers}
        self._until_eof = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        if self.closed:
            return
        self._size += len(body)
        if self._size > MAX_BODY:
            self._fail(httpx.RemoteProtocolError(f"response body over {MAX_BODY} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done and self._waiter is not None and not self._waiter.done():
            self._keep_alive = self._parser.should_keep_alive()  # llhttp resets it after this
            self._waiter.set_result(None)

    # -- use ----------------------------------------------------------------------------------

    async def exchange(
        self, request: bytes, read_timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """Send ``request``; → status, headers, body, whether the connection may be reused."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._size = [], [], 0
        self._headers_done = self._until_eof = self._keep_alive = False
        self.transport.write(request)
        try:
            async with asyncio.timeout(read_timeout):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("no complete answer in time") from None
        keep = self._keep_alive and not self.closed
        return self._status, self._headers, b"".join(self._body), keep

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=LeanTransport(ssl_context=ctx))``: HTTP/1.1 with keep-alive,
    at most ``max_connections`` connections per origin (waiting for one is bounded by the
    request's ``pool`` timeout)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_idle: int = 20,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, list[_Connection]] = {}
        self._slots: dict[Origin, asyncio.Semaphore] = {}
        self._active: set[_Connection] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} is not http or https", request=request)
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        wire = _serialise(request, await request.aread())
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self._max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        try:
            conn = self._reuse(origin) or await self._connect(origin, timeouts.get("connect"))
            self._active.add(conn)
            try:
                status, headers, body, keep = await conn.exchange(wire, timeouts.get("read"))
            except BaseException:
                conn.close()
                raise
            finally:
                self._active.discard(conn)
            self._release(origin, conn, keep)
        except httpx.TransportError as exc:
            exc.request = request
            raise
        finally:
            slots.release()
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._active):
            conn.close()

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
        return None

    def _release(self, origin: Origin, conn: _Connection, keep: bool) -> None:
        idle = self._idle.setdefault(origin, [])
        if not keep or conn.closed or len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls: dict[str, Any] = {}
        if scheme == "https":
            tls = {"ssl": self._ssl or ssl.create_default_context(), "server_hostname": host}
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port, **tls)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} in time") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return conn


def _serialise(request: httpx.Request, body: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(b"%s: %s" % (name, value) for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
