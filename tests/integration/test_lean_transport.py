"""LeanTransport on real loopback sockets, driven through ``httpx.AsyncClient``.

A scripted raw TCP server (``serve``) answers each request with the exact bytes a test chooses and
counts the connections it accepts, so keep-alive, framing, errors and pooling are observed from
the wire, never from the transport's inside (but for the pool check of the real client).
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vochi_crm.retailcrm import transport as transport_module
from vochi_crm.retailcrm.client import RetailCrmClient, default_transport
from vochi_crm.retailcrm.transport import LeanTransport
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

WAIT = 5.0  # the bound of every wait on the server's side


# -- the scripted server ---------------------------------------------------------------------------


class Peer:
    """The server's side of one accepted connection."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.reader, self.writer = server, reader, writer
        self.index = server.accepts  # 0 for the first connection, 1 for the second, …

    async def request(self) -> bytes:
        """One whole request (head + Content-Length body) as received; b"" at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        raw = head + await self.reader.readexactly(length)
        self.server.requests.append(raw)
        return raw

    async def send(self, *pieces: bytes, pause: float = 0.0) -> None:
        """Write ``pieces`` with ``pause`` seconds between them (to split them on the wire)."""
        for i, piece in enumerate(pieces):
            await asyncio.sleep(pause if i else 0)
            self.writer.write(piece)
            await self.writer.drain()

    async def until_eof(self) -> None:
        while await self.reader.read(65536):
            pass


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepts = 0
        self.requests: list[bytes] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = Peer(self, reader, writer)
        self.accepts += 1
        try:
            await self.handler(peer)
        # cancelled at teardown: end normally (3.11's start_server logs a cancelled handler task)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server.accept, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server.tasks:
            task.cancel()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*server.tasks, return_exceptions=True)
            await listener.wait_closed()


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


async def serve_ok(peer: Peer) -> None:
    """Answer every request with 200 "ok" until the client closes."""
    while await peer.request():
        await peer.send(ok())


def first_then_ok(first: Handler) -> Handler:
    """``first`` on the first connection, ``serve_ok`` on every later one."""

    async def handler(peer: Peer) -> None:
        await (first(peer) if peer.index == 0 else serve_ok(peer))

    return handler


def once(answer: bytes, *, wait_eof: bool) -> Handler:
    """Read one request, write ``answer``, then wait for the client to close or close first."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)
        if wait_eof:
            await peer.until_eof()

    return handler


def client(**transport: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(**transport), timeout=WAIT)


# -- keep-alive and the bytes on the wire ----------------------------------------------------------


async def test_keep_alive_reuses_one_connection_and_writes_the_exact_request() -> None:
    async with serve(serve_ok) as srv, client() as http:
        http.headers["X-Trace"] = "t-1"
        for _ in range(5):
            response = await http.post(f"{srv.url}/path?q=1", data={"a": "1", "b": "x y"})
            assert (response.status_code, response.text) == (200, "ok")
            assert response.http_version == "HTTP/1.1"
        defaults = [b"%s: %s" % pair for pair in http.headers.raw]
    assert srv.accepts == 1
    head = [b"POST /path?q=1 HTTP/1.1", b"Host: 127.0.0.1:%d" % srv.port, *defaults]
    head += [b"Content-Length: 9", b"Content-Type: application/x-www-form-urlencoded"]
    assert b"X-Trace: t-1" in head and b"Connection: keep-alive" in head
    assert srv.requests == [b"\r\n".join(head) + b"\r\n\r\na=1&b=x+y"] * 5


# -- response framing ------------------------------------------------------------------------------

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = (CHUNKED_HEAD + b"5\r\nhello\r\n", b"6\r\n world\r\n0\r\n\r\n")
GZIPPED = gzip.compress(b"hello world")


@pytest.mark.parametrize(
    ("pieces", "close", "accepts"),
    [
        pytest.param(CHUNKED, False, 1, id="chunked"),
        pytest.param((b"HTTP/1.1 200 OK\r\n\r\nhello ", b"world"), True, 2, id="until-close"),
        pytest.param(
            (ok(GZIPPED, b"Content-Encoding: gzip")[:-5], GZIPPED[-5:]), False, 1, id="gzip"
        ),
    ],
)
async def test_body_framing(pieces: tuple[bytes, ...], close: bool, accepts: int) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.request():
            await peer.send(*pieces, pause=0.02)  # the body arrives in two reads
            if close:
                return

    async with serve(handler) as srv, client() as http:
        for _ in range(2):
            response = await http.get(srv.url)
            assert (response.status_code, response.text) == (200, "hello world")
    assert srv.accepts == accepts  # a body delimited by closing leaves nothing to reuse


# -- when connections end --------------------------------------------------------------------------


async def test_connection_close_is_not_reused() -> None:
    async def handler(peer: Peer) -> None:  # says close, yet keeps answering: must not be used
        while await peer.request():
            await peer.send(ok(b"ok", b"Connection: close"))

    async with serve(handler) as srv, client() as http:
        assert (await http.get(srv.url)).text == "ok"
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


async def test_idle_connection_closed_by_server_is_not_reused() -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok())
        await asyncio.sleep(0.05)  # then the server's idle timeout closes it

    async with serve(handler) as srv, client() as http:
        assert (await http.get(srv.url)).text == "ok"
        await asyncio.sleep(0.2)
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


async def test_keepalive_expiry() -> None:
    async with serve(serve_ok) as srv, client(keepalive_expiry=0.1) as http:
        await http.get(srv.url)
        await http.get(srv.url)
        assert srv.accepts == 1
        await asyncio.sleep(0.3)
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


# -- errors are httpx's ----------------------------------------------------------------------------


async def test_connection_refused_is_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{dead}/")
        async with serve(serve_ok) as srv:
            assert (await http.get(srv.url)).text == "ok"


TRUNCATED = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
STRAY = b"HTTP/1.1 500 No\r\nX-Stray: 1\r\nContent-Length: 1\r\n\r\n!"  # unasked for


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        pytest.param(once(b"", wait_eof=True), httpx.ReadTimeout, id="no-answer"),
        pytest.param(
            once(b"NOT HTTP\r\n\r\n", wait_eof=True), httpx.RemoteProtocolError, id="garbage"
        ),
        pytest.param(once(TRUNCATED, wait_eof=False), httpx.ReadError, id="truncated-body"),
        pytest.param(once(b"", wait_eof=False), httpx.RemoteProtocolError, id="closed-silently"),
    ],
)
async def test_server_failures_then_recovery(bad: Handler, error: type[Exception]) -> None:
    async with serve(first_then_ok(bad)) as srv, client() as http:
        started = time.monotonic()
        with pytest.raises(error) as caught:
            await http.get(srv.url, timeout=httpx.Timeout(0.3))
        assert type(caught.value) is error
        assert time.monotonic() - started < 2
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


async def test_stray_bytes_after_an_answer_are_neither_mixed_in_nor_reused() -> None:
    handler = first_then_ok(once(ok(b"first") + STRAY, wait_eof=True))
    async with serve(handler) as srv, client() as http:
        response = await http.get(srv.url)
        assert (response.status_code, response.text) == (200, "first")
        assert "X-Stray" not in response.headers
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


async def test_interim_100_continue_is_skipped() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.request():
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n", ok(b"final"), pause=0.02)

    async with serve(handler) as srv, client() as http:
        for _ in range(2):
            response = await http.post(srv.url, content=b"body")
            assert (response.status_code, response.text) == (200, "final")
    assert srv.accepts == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_over_max_body_is_refused(monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    monkeypatch.setattr(transport_module, "MAX_BODY", 1000)
    big = b"x" * 5000
    answer = CHUNKED_HEAD + b"1388\r\n%s\r\n0\r\n\r\n" % big if chunked else ok(big)
    async with serve(first_then_ok(once(answer, wait_eof=True))) as srv, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="over 1000 bytes"):
            await http.get(srv.url)
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepts == 2


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    """A self-signed certificate for localhost and 127.0.0.1 (its file) and a server using it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return str(cert_path), server


async def test_tls_with_a_trusted_certificate(tls: tuple[str, ssl.SSLContext]) -> None:
    trusting = ssl.create_default_context(cafile=tls[0])
    assert trusting.check_hostname and trusting.verify_mode == ssl.CERT_REQUIRED
    async with serve(serve_ok, tls=tls[1]) as srv, client(ssl_context=trusting) as http:
        for _ in range(2):
            response = await http.get(f"https://localhost:{srv.port}/")
            assert (response.status_code, response.text) == (200, "ok")
    assert srv.accepts == 1
    assert srv.requests[0].startswith(b"GET / HTTP/1.1\r\nHost: localhost:%d\r\n" % srv.port)


async def test_tls_with_an_untrusted_certificate_is_connect_error(
    tls: tuple[str, ssl.SSLContext],
) -> None:
    async with serve(serve_ok, tls=tls[1]) as srv:
        async with client(ssl_context=ssl.create_default_context()) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"https://localhost:{srv.port}/")
        assert srv.requests == []


# -- the pool --------------------------------------------------------------------------------------


async def _slow_ok(peer: Peer) -> None:
    while await peer.request():
        await asyncio.sleep(0.2)
        await peer.send(ok())


async def test_max_connections_serialises_requests_and_bounds_the_wait() -> None:
    async with serve(_slow_ok) as srv, client(max_connections=1) as http:
        started = time.monotonic()
        async with asyncio.timeout(WAIT):
            answers = await asyncio.gather(http.get(srv.url), http.get(srv.url))
        assert [a.text for a in answers] == ["ok", "ok"]
        assert time.monotonic() - started >= 0.4  # one after the other
        impatient = httpx.Timeout(WAIT, pool=0.05)
        async with asyncio.timeout(WAIT):
            outcomes = await asyncio.gather(
                *(http.get(srv.url, timeout=impatient) for _ in range(2)), return_exceptions=True
            )
        assert sorted(type(o).__name__ for o in outcomes) == ["PoolTimeout", "Response"]
        assert (await http.get(srv.url)).text == "ok"  # the slot came back
    assert srv.accepts == 1


async def test_aclose_closes_idle_connections() -> None:
    eof = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await serve_ok(peer)
        eof.set()

    async with serve(handler) as srv:
        http = client()
        await http.get(srv.url)
        assert not eof.is_set()
        await http.aclose()
        async with asyncio.timeout(WAIT):
            await eof.wait()


# -- through the product's client ------------------------------------------------------------------

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def test_retailcrm_client_reuses_one_connection(
    simulator: str, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with RetailCrmClient(simulator, DEMO_API_KEY) as crm:
        transport = crm._http._transport
        assert isinstance(transport, LeanTransport)
        await crm.api_versions()
        pooled = [conn for conns in transport._idle.values() for conn in conns]
        assert len(pooled) == 1
        await crm.credentials()
        await crm.users(limit=20)
        assert [conn for conns in transport._idle.values() for conn in conns] == pooled
        assert not pooled[0].closed
    assert pooled[0].closed  # aclose of the client closes the pool


def test_default_transport_follows_the_proxy_environment(no_proxy_env: pytest.MonkeyPatch) -> None:
    assert isinstance(default_transport(), LeanTransport)
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    assert default_transport() is None
