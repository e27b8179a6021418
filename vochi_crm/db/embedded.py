"""The embedded PostgreSQL: a private cluster for a machine with no ``VOCHI_DATABASE_URL``.

Mechanism (see docs/configuration.md): the server binaries are taken from the system when present
(``pg_config --bindir``, ``/usr/lib/postgresql/<newest>/bin``, ``PATH``), else from the ``pgserver``
wheel that vochi-crm depends on. The cluster listens only on a Unix socket inside its own directory,
so it never collides with another PostgreSQL on the machine. PostgreSQL refuses to run as root: as
root the cluster belongs to the ``nobody`` account and lives in ``/var/lib/vochi-crm``.

Several processes may share one cluster. Each holds a shared lock on ``users.lock`` while it uses
it; starting and stopping happen under ``start.lock``; the last process to leave stops the server
("last one out turns off the lights").
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO

from vochi_crm.errors import StorageUnavailable

DATABASE = "vochi"
SUPERUSER = "postgres"
ROOT_RUN_AS = "nobody"


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/vochi-crm")
    from platformdirs import user_data_dir

    return Path(user_data_dir("vochi-crm", appauthor=False))


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    spec = find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise StorageUnavailable(
        "No PostgreSQL server binaries found for the embedded database: install PostgreSQL "
        "(apt-get install postgresql) or the 'pgserver' package, or set VOCHI_DATABASE_URL."
    )


@dataclass
class EmbeddedPostgres:
    """A private cluster under ``base_dir``; use :meth:`acquire` / :meth:`release`."""

    base_dir: Path

    def __post_init__(self) -> None:
        self._users_lock: IO[bytes] | None = None
        self.started_here = False

    @property
    def pgdata(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    def conninfo(self, dbname: str = DATABASE) -> str:
        return f"host={self.socket_dir} user={SUPERUSER} dbname={dbname}"

    # -- lifecycle -------------------------------------------------------------------------------

    def acquire(self) -> str:
        """Start the cluster unless it runs already; return the ``vochi`` database's conninfo."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with self._lock("start.lock", fcntl.LOCK_EX):
            bindir = find_bindir()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(bindir)
            if not self._running(bindir):
                self._start(bindir)
                self.started_here = True
            self._ensure_database(bindir)
            self._users_lock = self._open_lock("users.lock")
            fcntl.flock(self._users_lock, fcntl.LOCK_SH)
        return self.conninfo()

    def release(self) -> bool:
        """Leave the cluster; stop it when no other process uses it. True when it was stopped."""
        if self._users_lock is None:
            return False
        with self._lock("start.lock", fcntl.LOCK_EX):
            fcntl.flock(self._users_lock, fcntl.LOCK_UN)
            try:
                fcntl.flock(self._users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            finally:
                self._users_lock.close()
                self._users_lock = None
            self._pg_ctl(find_bindir(), "stop", "-m", "fast", "-w")
            return True

    # -- steps -----------------------------------------------------------------------------------

    def _initdb(self, bindir: Path) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._give_to_server_user(self.pgdata, self.socket_dir)
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            "initdb",
        )
        with (self.pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\n"
                "shared_buffers = 64MB\n"
            )

    def _start(self, bindir: Path) -> None:
        self._pg_ctl(bindir, "start", "-w", "-t", "60", "-l", str(self.base_dir / "postgres.log"))

    def _running(self, bindir: Path) -> bool:
        status = self._exec([str(bindir / "pg_ctl"), "status", "-D", str(self.pgdata)])
        return status.returncode == 0

    def _ensure_database(self, bindir: Path) -> None:
        psql = [
            str(bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            str(self.socket_dir),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-c",
        ]
        exists = self._run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"], "psql"
        )
        if exists.strip() != "1":
            self._run([*psql, f"CREATE DATABASE {DATABASE}"], "createdb")

    def _pg_ctl(self, bindir: Path, *args: str) -> None:
        self._run([str(bindir / "pg_ctl"), "-D", str(self.pgdata), *args], "pg_ctl " + args[0])

    # -- helpers ---------------------------------------------------------------------------------

    def _run(self, argv: list[str], what: str) -> str:
        result = self._exec(argv)
        if result.returncode != 0:
            log = self.base_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise StorageUnavailable(
                f"embedded PostgreSQL: {what} failed in {self.base_dir}: "
                f"{(result.stderr or result.stdout).strip()}\n{tail}".strip()
            )
        return result.stdout

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a server tool, as the server account when we are root."""
        uid = gid = None
        if os.geteuid() == 0:
            account = pwd.getpwnam(ROOT_RUN_AS)
            uid, gid = account.pw_uid, account.pw_gid
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            user=uid,
            group=gid,
            cwd="/" if uid is not None else None,
        )

    def _give_to_server_user(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        account = pwd.getpwnam(ROOT_RUN_AS)
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)
        # the server user must be able to reach its directories and write its log
        os.chmod(self.base_dir, 0o755)  # noqa: S103 - no secrets here; pgdata itself is 0700
        log = self.base_dir / "postgres.log"
        log.touch(exist_ok=True)
        os.chown(log, account.pw_uid, account.pw_gid)

    def _open_lock(self, name: str) -> IO[bytes]:
        return (self.base_dir / name).open("a+b")

    class _Locked:
        def __init__(self, handle: IO[bytes], mode: int) -> None:
            self.handle, self.mode = handle, mode

        def __enter__(self) -> None:
            fcntl.flock(self.handle, self.mode)

        def __exit__(self, *exc: object) -> None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()

    def _lock(self, name: str, mode: int) -> EmbeddedPostgres._Locked:
        return EmbeddedPostgres._Locked(self._open_lock(name), mode)
