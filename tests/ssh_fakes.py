"""SSH test doubles: throwaway keys, and asyncssh's own SSH server on 127.0.0.1 whose sessions
emulate ``asterisk -rx "…"`` (recording every command) with failure injection."""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

# -- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """A throwaway host key and client key, written as OpenSSH files under ``directory``."""

    directory: Path
    host_key: Path
    client_key: Path
    authorized_keys: Path

    def known_hosts(self, port: int, host: str = "127.0.0.1", *, key: Path | None = None) -> Path:
        public = asyncssh.read_private_key(str(key or self.host_key)).export_public_key().decode()
        path = self.directory / f"known_hosts-{port}"
        path.write_text(f"[{host}]:{port} {public}")
        return path


def make_keys(directory: Path) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("host_key", "client_key", "other_key"):
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = directory / name
        key.write_private_key(str(path))
        path.chmod(0o600)
        paths[name] = path
    client = asyncssh.read_private_key(str(paths["client_key"]))
    authorized = directory / "authorized_keys"
    authorized.write_bytes(client.export_public_key())
    return Keys(directory, paths["host_key"], paths["client_key"], authorized)


# -- asyncssh's own server with a fake asterisk --------------------------------------------------


@dataclass
class FakeAsterisk:
    """What the in-process PBX does with ``asterisk -rx "…"``; ``commands`` records every CLI text.

    ``mode``: ``ok``; ``hang`` (never answers); ``drop`` (closes the connection mid-command);
    ``slow`` (answers after ``delay``). ``channels``: the channels a redirect finds (``None``:
    any); others get Asterisk's "Channel '…' not found" with exit status 0.
    """

    mode: str = "ok"
    delay: float = 0.2
    channels: set[str] | None = None
    commands: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    running: int = 0
    max_running: int = 0

    def answer(self, cli: str) -> str:
        words = cli.split()
        if words[:2] == ["channel", "redirect"] and len(words) == 4:
            channel, target = words[2], words[3]
            if self.channels is not None and channel not in self.channels:
                return f"Channel '{channel}' not found\nCommand '{cli}' failed.\n"
            return f"Channel '{channel}' successfully redirected to {target}\n"
        if words[:2] == ["channel", "originate"]:
            return ""
        if cli == "core show channels concise":
            return "".join(f"{c}!test!100!3!Up!Wait!600!!!!3!1!!1.1\n" for c in self.channels or ())
        return f"No such command '{cli}' (type 'core show help' for other possible commands)\n"


class _Server(asyncssh.SSHServer):
    def __init__(self, pbx: InProcessPbx) -> None:
        self._pbx = pbx

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._pbx.connections.add(conn)
        self._pbx.accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._pbx.connections = {c for c in self._pbx.connections if not c.is_closed()}


class InProcessPbx:
    """``async with InProcessPbx(keys) as pbx:`` — an SSH server on 127.0.0.1:``pbx.port``."""

    def __init__(self, keys: Keys, asterisk: FakeAsterisk | None = None) -> None:
        self.keys = keys
        self.asterisk = asterisk or FakeAsterisk()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.accepted = 0
        self.port = 0
        self._server: asyncssh.SSHAcceptor | None = None

    async def __aenter__(self) -> InProcessPbx:
        self._server = await asyncssh.create_server(
            lambda: _Server(self),
            "127.0.0.1",
            0,
            server_host_keys=[str(self.keys.host_key)],
            authorized_client_keys=str(self.keys.authorized_keys),
            process_factory=self._process,
            password_auth=False,
            kbdint_auth=False,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def known_hosts(self) -> Path:
        return self.keys.known_hosts(self.port)

    def drop_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()

    async def _process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        fake = self.asterisk
        command = process.command or ""
        fake.raw.append(command)
        argv = shlex.split(command)
        if len(argv) != 3 or argv[:2] != ["asterisk", "-rx"]:
            process.stderr.write(f"sh: unexpected command: {command}\n")
            process.exit(127)
            return
        fake.commands.append(argv[2])
        fake.running += 1
        fake.max_running = max(fake.max_running, fake.running)
        try:
            if fake.mode == "hang":
                await asyncio.sleep(3600)
            if fake.mode == "drop":
                process.get_extra_info("connection").abort()
                return
            if fake.mode == "slow":
                await asyncio.sleep(fake.delay)
            process.stdout.write(fake.answer(argv[2]))
            process.exit(0)
        finally:
            fake.running -= 1
