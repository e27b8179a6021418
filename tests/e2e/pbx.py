"""PBX-side test components (keys and the in-process SSH server are in tests/ssh_fakes.py):
OpenSSH ``sshd``, nginx in front of the daemon, and the real Asterisk chroot.

Everything listens on 127.0.0.1 only, on free ports, with throwaway keys in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.e2e.daemons import free_port
from tests.ssh_fakes import Keys

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
NGINX_SNIPPETS = REPO / "deploy" / "nginx"
ASTERISK_ROOT = Path(
    os.environ.get("VOCHI_TEST_ASTERISK_ROOT", "/var/cache/vochi-crm/asterisk-root")
)
MAKE_ROOT = Path(
    os.environ.get(
        "VOCHI_MAKE_ASTERISK_ROOT", str(REPO.parent / "shared/tools/make-asterisk-root.sh")
    )
)


# -- OpenSSH sshd --------------------------------------------------------------------------------


@dataclass
class Sshd:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    known_hosts: Path
    calls: Path
    """The fake asterisk's record: one CLI text per line."""


FAKE_ASTERISK = """#!/bin/sh
# a stand-in for asterisk on the PBX: records the -rx text, answers like Asterisk 22 (exit 0)
[ "$1" = "-rx" ] || {{ echo "usage: asterisk -rx CMD" >&2; exit 2; }}
printf '%s\\n' "$2" >> {calls}
case "$2" in
  "channel redirect "*" "*) set -- $2
     case "$3" in *-gone) echo "Channel '$3' not found"; echo "Command 'channel redirect' failed.";;
                  *) echo "Channel '$3' successfully redirected to $4";; esac ;;
  "channel originate "*) ;;
  *) echo "No such command '$2'" ;;
esac
exit 0
"""

CHROOT_ASTERISK = """#!/bin/sh
# the PBX's asterisk: the real one, inside the test's chroot
[ "$1" = "-rx" ] || {{ echo "usage: asterisk -rx CMD" >&2; exit 2; }}
printf '%s\\n' "$2" >> {calls}
exec chroot {root} /usr/sbin/asterisk -rx "$2"
"""


@contextlib.contextmanager
def running_sshd(keys: Keys, workdir: Path, asterisk_script: str = FAKE_ASTERISK) -> Iterator[Sshd]:
    """``sshd -D`` on a loopback port, root by key only, with ``asterisk`` (the given script) on
    the session's PATH."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    workdir.mkdir(parents=True, exist_ok=True)
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    calls = workdir / "asterisk-calls.log"
    calls.write_text("")
    script = bindir / "asterisk"
    script.write_text(asterisk_script.format(calls=shlex.quote(str(calls)), root=ASTERISK_ROOT))
    script.chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {keys.host_key}",
                "PermitRootLogin prohibit-password",
                f"AuthorizedKeysFile {keys.authorized_keys}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                f"PidFile {workdir / 'sshd.pid'}",
                f"SetEnv PATH={bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    log = workdir / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config), "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_port(port, process, log)
        yield Sshd(port, process, log, keys.known_hosts(port), calls)
    finally:
        _stop(process)


# -- nginx in front of the daemon ----------------------------------------------------------------


@contextlib.contextmanager
def running_nginx(workdir: Path, daemon_port: int, port: int | None = None) -> Iterator[str]:
    """The platform's location blocks (``deploy/nginx``) with the upstream pointed at the test
    daemon, in a throwaway server on a loopback port; yields its base URL. The wrapper server
    takes the client address from ``X-Test-Remote-Addr`` (realip), so a test can play a remote
    caller on loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    upstream = (NGINX_SNIPPETS / "retailcrm-upstream.conf").read_text()
    upstream = upstream.replace("127.0.0.1:8019", f"127.0.0.1:{daemon_port}")
    (workdir / "retailcrm-upstream.conf").write_text(upstream)
    locations = (NGINX_SNIPPETS / "retailcrm.conf").read_text()
    locations = locations.replace("/var/log/nginx/access.log", f"{workdir}/logs/access.log")
    (workdir / "retailcrm.conf").write_text(locations)
    port = port or free_port()
    for name in ("logs", "tmp"):
        (workdir / name).mkdir(exist_ok=True)
    (workdir / "nginx.conf").write_text(
        f"""daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/logs/access.log;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    include {workdir}/retailcrm-upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        server_name bot.test;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Test-Remote-Addr;
        include {workdir}/retailcrm.conf;
    }}
}}
"""
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    log = workdir / "logs" / "stderr.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [nginx, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


# -- the real Asterisk ---------------------------------------------------------------------------


def asterisk_root_ready() -> bool:
    return (ASTERISK_ROOT / "usr/sbin/asterisk").exists()


def build_asterisk_root() -> bool:
    """Build (or refresh) the cached root with the shared script; ``False`` when it cannot."""
    if os.geteuid() != 0 or not shutil.which("debootstrap") or not MAKE_ROOT.exists():
        return asterisk_root_ready()
    ASTERISK_ROOT.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["sh", str(MAKE_ROOT), str(ASTERISK_ROOT)], capture_output=True, text=True, timeout=900
    )
    return result.returncode == 0 and asterisk_root_ready()


def asterisk_cli(cli: str, timeout: float = 10) -> str:
    result = subprocess.run(
        ["chroot", str(ASTERISK_ROOT), "/usr/sbin/asterisk", "-rx", cli],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.stdout + result.stderr


@contextlib.contextmanager
def running_asterisk(extra_dialplan: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``asterisk -f`` in the chroot with ``extra_dialplan`` appended to extensions.conf."""
    conf = ASTERISK_ROOT / "etc/asterisk/extensions.conf"
    original = conf.read_text().split("\n; --- vochi-crm test contexts ---\n")[0]
    conf.write_text(
        original.rstrip("\n") + "\n; --- vochi-crm test contexts ---\n" + extra_dialplan
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                "chroot",
                "--userspec=asterisk:asterisk",
                str(ASTERISK_ROOT),
                "/usr/sbin/asterisk",
                "-f",
                "-n",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while "Asterisk Ready" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"asterisk did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield process
    finally:
        with contextlib.suppress(Exception):
            asterisk_cli("core stop now", timeout=5)
        _stop(process, grace=10)
        conf.write_text(original)


# -- process plumbing ----------------------------------------------------------------------------


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, within: float = 10) -> None:
    import socket

    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not listening on {port} in {within}s:\n{log.read_text()}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], grace: float = 5) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- small e2e helpers ---------------------------------------------------------------------------


def wait_until(check: Callable[[], T | None], within: float = 15, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.05)


def journal_rows(database_url: str, event_type: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT enterprise_number, status, error_message, call_unique_id, phone_number, "
            "internal_extension, request_data, response_data FROM integration_logs "
            "WHERE event_type = %s ORDER BY id",
            (event_type,),
        ).fetchall()
