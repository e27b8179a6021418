"""A pool of SSH connections to the units' PBXes (asyncssh).

One connection per PBX (host, port, user), opened on first use and reused by every command after
it; keep-alives detect a dead peer, a lost connection is reopened on the next command (once, at
once, when it turns out dead while opening the session — the command had not started, so repeating
it is safe), and an idle one is closed after ``idle_close_seconds``. Every PBX has a concurrency cap
(a semaphore: at most ``max_sessions_per_pbx`` commands at once) and a circuit breaker
(:class:`~vochi_crm.pipeline.breaker.CircuitBreaker`): an unreachable PBX, a wrong host key, a
refused key or a timeout counts as a failure, and once it is open commands fail at once instead of
each waiting for the connect timeout.

Authentication is by key only (``ssh.key_path`` or the user's default keys; password and
keyboard-interactive authentication are switched off, no agent, no ``~/.ssh/config``). Host keys are
verified against ``ssh.known_hosts`` (default ``~/.ssh/known_hosts``); the lab opt-out
``ssh.insecure_no_host_key_check`` is logged as a warning at start and on every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from vochi_crm.errors import VochiError
from vochi_crm.pipeline.breaker import BreakerConfig, CircuitBreaker
from vochi_crm.settings import SshSettings

log = logging.getLogger(__name__)
KEEPALIVE_COUNT_MAX = 3


@dataclass(frozen=True, slots=True)
class PbxAddress:
    host: str
    port: int
    user: str

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int | None
    stdout: str
    stderr: str
    elapsed_ms: float
    reused: bool
    """The command ran on a connection that was already open (no handshake paid)."""


class SshError(VochiError):
    """A command could not be run (or finished) on a PBX; ``reason`` is a stable short code:
    ``connect``, ``connect_timeout``, ``host_key``, ``auth``, ``client_key``, ``ssh``,
    ``disconnected``, ``timeout``, ``busy``, ``breaker_open``."""

    http_status = 502
    title = "PBX unreachable over SSH"

    def __init__(
        self, message: str, *, reason: str, address: PbxAddress, started: bool = False
    ) -> None:
        super().__init__(f"{address}: {message}")
        self.reason = reason
        self.address = address
        self.started = started
        """Whether the command may have run on the PBX before the failure."""


@dataclass
class _Pbx:
    address: PbxAddress
    slots: asyncio.Semaphore
    breaker: CircuitBreaker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: asyncssh.SSHClientConnection | None = None
    last_used: float = 0.0
    running: int = 0
    connects: int = 0
    reconnects: int = 0
    commands: int = 0
    failures: int = 0
    last_error: str | None = None

    def live(self) -> asyncssh.SSHClientConnection | None:
        conn = self.conn
        return conn if conn is not None and not conn.is_closed() else None


class SshPool:
    def __init__(
        self,
        settings: SshSettings,
        *,
        breaker: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._breaker_config = breaker or BreakerConfig()
        self._clock = clock
        self._pbxes: dict[PbxAddress, _Pbx] = {}
        if settings.insecure_no_host_key_check:
            log.warning(
                "SSH host keys of the PBXes are NOT verified (ssh.insecure_no_host_key_check): "
                "labs only",
                extra={"action": "ssh_insecure"},
            )

    # -- public -----------------------------------------------------------------------------------

    async def run(
        self, address: PbxAddress, command: str, *, seconds: float | None = None
    ) -> CommandResult:
        """Run ``command`` on the PBX; raises :class:`SshError` (counted by the breaker)."""
        pbx = self._entry(address)
        if not pbx.breaker.allow(self._clock()):
            retry = pbx.breaker.retry_at(self._clock()) - self._clock()
            raise SshError(
                f"not tried: the PBX failed repeatedly, next attempt in {max(retry, 0):.0f} s "
                f"(last error: {pbx.last_error})",
                reason="breaker_open",
                address=address,
            )
        try:
            result = await self._run(pbx, command, seconds or self.settings.command_timeout_seconds)
        except SshError as exc:
            pbx.breaker.record_failure(self._clock())
            pbx.failures += 1
            pbx.last_error = f"{exc.reason}: {exc.message}"
            log.warning(
                "ssh command failed on %s: %s (%s)",
                address,
                exc.message,
                exc.reason,
                extra={"action": "ssh_error", "pbx": str(address), "reason": exc.reason},
            )
            raise
        pbx.breaker.record_success(self._clock())
        return result

    async def close_idle(self) -> int:
        """Close connections unused for ``idle_close_seconds``; returns how many."""
        horizon = self._clock() - self.settings.idle_close_seconds
        closing = [
            pbx
            for pbx in self._pbxes.values()
            if pbx.live() is not None and pbx.running == 0 and pbx.last_used < horizon
        ]
        for pbx in closing:
            await self._drop(pbx)
        return len(closing)

    async def run_janitor(self) -> None:
        """Close idle connections periodically until cancelled."""
        while True:
            await asyncio.sleep(max(1.0, self.settings.idle_close_seconds / 4))
            await self.close_idle()

    async def aclose(self) -> None:
        for pbx in self._pbxes.values():
            await self._drop(pbx)

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        return {
            str(address): {
                "connected": pbx.live() is not None,
                "running": pbx.running,
                "connects": pbx.connects,
                "reconnects": pbx.reconnects,
                "commands": pbx.commands,
                "failures": pbx.failures,
                "last_error": pbx.last_error,
                "breaker": pbx.breaker.snapshot(now),
            }
            for address, pbx in self._pbxes.items()
        }

    # -- internals --------------------------------------------------------------------------------

    def _entry(self, address: PbxAddress) -> _Pbx:
        pbx = self._pbxes.get(address)
        if pbx is None:
            pbx = _Pbx(
                address,
                asyncio.Semaphore(self.settings.max_sessions_per_pbx),
                CircuitBreaker(self._breaker_config),
            )
            self._pbxes[address] = pbx
        return pbx

    async def _run(self, pbx: _Pbx, command: str, limit: float) -> CommandResult:
        address = pbx.address
        try:
            async with asyncio.timeout(limit):
                await pbx.slots.acquire()
        except TimeoutError:
            raise SshError(
                f"all {self.settings.max_sessions_per_pbx} sessions stayed busy for {limit:g} s",
                reason="busy",
                address=address,
            ) from None
        pbx.running += 1
        try:
            for attempt in (1, 2):
                conn, reused = await self._connection(pbx)
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(limit):
                        process = await conn.create_process(command)
                except (asyncssh.Error, OSError) as exc:
                    await self._drop(pbx)
                    if reused and attempt == 1:  # a stale pooled connection: the command never
                        pbx.reconnects += 1  # started, so reconnecting and retrying is safe
                        continue
                    raise SshError(
                        f"cannot open a session: {_describe(exc)}",
                        reason="disconnected",
                        address=address,
                    ) from None
                except TimeoutError:
                    await self._drop(pbx)
                    raise SshError(
                        f"no session within {limit:g} s", reason="timeout", address=address
                    ) from None
                return await self._wait(pbx, process, limit, started, reused)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            pbx.running -= 1
            pbx.last_used = self._clock()
            pbx.slots.release()

    async def _wait(
        self,
        pbx: _Pbx,
        process: asyncssh.SSHClientProcess[Any],
        limit: float,
        started: float,
        reused: bool,
    ) -> CommandResult:
        try:
            async with asyncio.timeout(limit):
                completed = await process.wait(check=False)
        except TimeoutError:
            process.close()
            await self._drop(pbx)  # a PBX that does not answer: start afresh next time
            raise SshError(
                f"the command did not finish within {limit:g} s",
                reason="timeout",
                address=pbx.address,
                started=True,
            ) from None
        except (asyncssh.Error, OSError) as exc:
            await self._drop(pbx)
            raise SshError(
                f"connection lost while the command ran: {_describe(exc)}",
                reason="disconnected",
                address=pbx.address,
                started=True,
            ) from None
        if completed.exit_status is None and completed.exit_signal is None:
            await self._drop(pbx)  # the channel closed without an exit status: connection lost
            raise SshError(
                "the connection closed before the command reported its exit status",
                reason="disconnected",
                address=pbx.address,
                started=True,
            )
        pbx.commands += 1
        return CommandResult(
            exit_status=completed.exit_status,
            stdout=_text(completed.stdout),
            stderr=_text(completed.stderr),
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
            reused=reused,
        )

    async def _connection(self, pbx: _Pbx) -> tuple[asyncssh.SSHClientConnection, bool]:
        conn = pbx.live()
        if conn is not None:
            return conn, True
        async with pbx.lock:  # single flight: concurrent commands share one handshake
            conn = pbx.live()
            if conn is not None:
                return conn, True
            pbx.conn = await self._connect(pbx.address)
            pbx.connects += 1
            return pbx.conn, False

    async def _connect(self, address: PbxAddress) -> asyncssh.SSHClientConnection:
        settings = self.settings
        if settings.insecure_no_host_key_check:
            log.warning(
                "connecting to %s WITHOUT host key verification",
                address,
                extra={"action": "ssh_insecure", "pbx": str(address)},
            )
        timeout = settings.connect_timeout_seconds
        known = settings.known_hosts
        if not settings.insecure_no_host_key_check and known is not None and not known.is_file():
            raise SshError(
                f"the known_hosts file {known} does not exist", reason="host_key", address=address
            )
        try:
            async with asyncio.timeout(timeout):
                conn = await asyncssh.connect(
                    address.host,
                    address.port,
                    username=address.user,
                    known_hosts=_known_hosts(settings),
                    client_keys=[str(settings.key_path)] if settings.key_path else (),
                    agent_path=None,
                    password_auth=False,
                    kbdint_auth=False,
                    preferred_auth="publickey",
                    config=None,
                    connect_timeout=timeout,
                    login_timeout=timeout,
                    keepalive_interval=settings.keepalive_seconds,
                    keepalive_count_max=KEEPALIVE_COUNT_MAX,
                )
        except TimeoutError:
            raise SshError(
                f"no SSH connection within {timeout:g} s", reason="connect_timeout", address=address
            ) from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise SshError(
                f"host key not trusted ({exc.reason}); add it to "
                f"{settings.known_hosts or '~/.ssh/known_hosts'}",
                reason="host_key",
                address=address,
            ) from None
        except asyncssh.PermissionDenied:
            raise SshError("the PBX refused our key", reason="auth", address=address) from None
        except asyncssh.KeyImportError as exc:
            raise SshError(
                f"cannot read the client key: {exc}", reason="client_key", address=address
            ) from None
        except asyncssh.Error as exc:
            raise SshError(_describe(exc), reason="ssh", address=address) from None
        except OSError as exc:
            raise SshError(
                f"cannot connect: {exc.strerror or type(exc).__name__}",
                reason="connect",
                address=address,
            ) from None
        log.info("ssh connected to %s", address, extra={"action": "ssh_connect"})
        return conn

    async def _drop(self, pbx: _Pbx) -> None:
        conn, pbx.conn = pbx.conn, None
        if conn is None:
            return
        conn.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await conn.wait_closed()


def _known_hosts(settings: SshSettings) -> str | tuple[()] | None:
    if settings.insecure_no_host_key_check:
        return None
    if settings.known_hosts is not None:
        return str(settings.known_hosts)
    return ()


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = reason if isinstance(reason, str) and reason else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
