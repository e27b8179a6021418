"""With no VOCHI_DATABASE_URL the real console script runs on an embedded PostgreSQL, says so on
stderr, and stops the cluster when its last user leaves."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.admin_helpers import bearer
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.daemons import cli, running_daemon, scrubbed_env

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # not under pytest's 0700 tmp root: as root the cluster runs as `nobody`, who must reach it
    path = Path(tempfile.mkdtemp(prefix="vochi-embedded-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_cli_and_daemon_share_the_embedded_cluster(data_dir: Path, tmp_path: Path) -> None:
    env = scrubbed_env(VOCHI_DATA_DIR=str(data_dir), VOCHI_ADMIN__JWT_SECRET=TEST_JWT_SECRET)
    pidfile = data_dir / "pgdata" / "postmaster.pid"

    added = cli(env, "units", "add", "0367", "--name", "Pilot")
    assert added.returncode == 0, added.stderr
    assert added.stderr.count("embedded PostgreSQL") == 1
    assert not pidfile.exists(), "the CLI must stop the cluster it started"

    with running_daemon(env, tmp_path) as daemon:
        assert pidfile.exists()
        # a CLI command while the daemon runs reuses the cluster and leaves it running
        changed = cli(env, "config", "map", "0367", "151=16")
        assert changed.returncode == 0, changed.stderr
        assert "using the running embedded PostgreSQL" in changed.stderr
        assert pidfile.exists()
        body = httpx.get(daemon.url + "/api/config/0367", headers=bearer("0367")).json()
        assert body["retailcrm"]["user_mappings"] == {"151": 16}
    assert not pidfile.exists(), "the daemon must stop the cluster on SIGTERM"
