"""The real command-line path: a ``vochi-crm daemon`` process redirects and originates through
OpenSSH ``sshd`` (Debian's openssh-server, started here on a loopback port with throwaway keys),
whose session runs a stand-in ``asterisk`` from PATH that records what it was asked."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.e2e.daemons import cli, running_daemon, scrubbed_env
from tests.e2e.pbx import Sshd, journal_rows, running_sshd, wait_until
from tests.ssh_fakes import Keys, make_keys
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.pbx]
CLIENT_ID = "e2e-sshd-client-id-0123456789abcdef"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[Keys, Sshd]]:
    require(
        shutil.which("sshd") is not None or Path("/usr/sbin/sshd").exists(),
        "OpenSSH sshd (apt-get install openssh-server)",
    )
    require(os.geteuid() == 0, "root (sshd's root login by key for the PBX's asterisk)")
    keys = make_keys(tmp_path / "keys")
    with running_sshd(keys, tmp_path / "sshd") as server:
        yield keys, server


def configure(env: dict[str, str], simulator: str, port: int) -> None:
    for step in (
        ("units", "add", "0367", "--name", "Pilot", "--host", "127.0.0.1", "--ssh-port", str(port)),
        (
            "config",
            "set",
            "0367",
            f"api_url={simulator}",
            f"api_key={DEMO_API_KEY}",
            "enabled=true",
            "redirect_enabled=true",
            f"client_id={CLIENT_ID}",
        ),
        ("config", "map", "0367", "151=16", "152=18"),
    ):
        result = cli(env, *step)
        assert result.returncode == 0, result.stdout + result.stderr


def daemon_env(database_url: str, keys: Keys, known_hosts: Path) -> dict[str, str]:
    return scrubbed_env(
        VOCHI_DATABASE_URL=database_url,
        VOCHI_SSH__KEY_PATH=str(keys.client_key),
        VOCHI_SSH__KNOWN_HOSTS=str(known_hosts),
    )


def calls(server: Sshd) -> list[str]:
    return server.calls.read_text().splitlines()


def test_redirect_and_originate_through_openssh(
    sshd: tuple[Keys, Sshd], simulator: str, database_url: str, tmp_path: Path
) -> None:
    keys, server = sshd
    env = daemon_env(database_url, keys, server.known_hosts)
    configure(env, simulator, server.port)
    with running_daemon(env, tmp_path) as daemon, httpx.Client(base_url=daemon.url) as http:
        answer = http.post(
            "/api/smart-redirect",
            json={
                "enterprise_number": "0367",
                "phone": "+375291234567",
                "channel": "PJSIP/trunk-0000002a",
                "unique_id": "1757765248.5",
            },
        ).json()
        assert (answer["extension"], answer["redirect"]) == ("151", "scheduled")
        wait_until(lambda: len(calls(server)) >= 1, what="the redirect reaching the PBX")

        gone = http.post(
            "/api/smart-redirect",
            json={
                "enterprise_number": "0367",
                "phone": "+375291234567",
                "channel": "SIP/151-gone",
                "unique_id": "1757765248.6",
            },
        ).json()
        assert gone["redirect"] == "scheduled"

        call = http.get(
            "/retailcrm/make-call",
            params={"clientId": CLIENT_ID, "code": "152", "phone": "+375447654321", "userId": "18"},
        )
        assert call.status_code == 200, call.text
        assert call.json()["status"] == "originated"
        wait_until(
            lambda: len(journal_rows(database_url, "channel_redirect")) == 2,
            what="both redirects journaled",
        )
        wait_until(lambda: journal_rows(database_url, "make_call"), what="make_call journaled")
        stats = http.get("/stats").json()

    # the redirects run in the background (the HTTP answer never waits for SSH): the second one
    # and the originate may reach the PBX in either order
    assert sorted(calls(server)) == sorted(
        [
            "channel redirect PJSIP/trunk-0000002a inoffice,151,1",
            "channel redirect SIP/151-gone inoffice,151,1",
            "channel originate Local/152@web-originate application Dial "
            "Local/+375447654321@inoffice",
        ]
    )
    ok, failed = journal_rows(database_url, "channel_redirect")
    assert (ok["status"], ok["call_unique_id"]) == ("success", "1757765248.5")
    assert "successfully redirected" in ok["response_data"]["message"]
    # asterisk exited 0, but said the channel was not there: a failure
    assert (failed["status"], failed["response_data"]["reason"]) == ("error", "channel_not_found")
    [made] = journal_rows(database_url, "make_call")
    assert (made["status"], made["internal_extension"]) == ("success", "152")
    # one SSH connection served all three commands
    log = server.log.read_text()
    assert log.count("Accepted publickey for root") == 1, log
    assert stats is not None


def test_a_wrong_host_key_is_refused_logged_and_the_caller_still_answered(
    sshd: tuple[Keys, Sshd], simulator: str, database_url: str, tmp_path: Path
) -> None:
    keys, server = sshd
    wrong = keys.known_hosts(server.port, key=keys.directory / "other_key")
    env = daemon_env(database_url, keys, wrong)
    configure(env, simulator, server.port)
    with running_daemon(env, tmp_path) as daemon, httpx.Client(base_url=daemon.url) as http:
        answer = http.post(
            "/api/smart-redirect",
            json={
                "enterprise_number": "0367",
                "phone": "+375291234567",
                "channel": "PJSIP/trunk-0000002a",
            },
        )
        assert answer.status_code == 200
        assert answer.json()["redirect"] == "scheduled"
        [row] = wait_until(
            lambda: journal_rows(database_url, "channel_redirect"),
            what="the refused redirect journaled",
        )
        output = wait_until(
            lambda: "host key not trusted" in daemon.output() and daemon.output(),
            what="the refusal logged",
        )
    assert (row["status"], row["response_data"]["reason"]) == ("error", "host_key")
    assert "ssh_error" in output or "host key" in output
    assert calls(server) == []  # nothing ran on the PBX
    assert "Accepted publickey" not in server.log.read_text()
