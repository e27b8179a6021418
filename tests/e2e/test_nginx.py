"""The daemon behind nginx (Debian's), configured with ``deploy/nginx``: events, smart redirect and
RetailCRM's callbacks through the platform's locations; the caller's address from the trusted
proxy (a remote caller relayed by nginx is not loopback); links and redirects under the prefix."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import require
from tests.e2e.daemons import Daemon, cli, free_port, running_daemon, scrubbed_env
from tests.e2e.pbx import (
    Sshd,
    journal_rows,
    running_nginx,
    running_sshd,
    wait_until,
)
from tests.simulator_helpers import SimControl, running_simulator
from tests.ssh_fakes import Keys, make_keys
from vochi_daemon.simulator import DEMO_API_KEY, create_simulator_app

pytestmark = [pytest.mark.slow, pytest.mark.pbx]
TOKEN = "375290000000"
INTERNAL = "e2e-internal-token"
REMOTE = {"X-Test-Remote-Addr": "203.0.113.9"}  # the test nginx's realip: a caller from outside


@dataclass
class Stack:
    nginx: str
    daemon: Daemon
    sshd: Sshd
    sim: SimControl
    database_url: str
    nginx_dir: Path


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    require(
        shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists(),
        "nginx (apt-get install nginx)",
    )
    require(
        shutil.which("sshd") is not None or Path("/usr/sbin/sshd").exists(),
        "OpenSSH sshd (apt-get install openssh-server)",
    )
    require(os.geteuid() == 0, "root (sshd's root login by key for the PBX's asterisk)")
    keys: Keys = make_keys(tmp_path / "keys")
    nginx_port = free_port()
    public = f"http://127.0.0.1:{nginx_port}"
    with (
        running_simulator(create_simulator_app()) as simulator,
        running_sshd(keys, tmp_path / "sshd") as sshd,
    ):
        env = scrubbed_env(
            VOCHI_DATABASE_URL=database_url,
            VOCHI_INTERNAL_TOKEN=INTERNAL,
            VOCHI_PUBLIC_BASE_URL=public,  # RetailCRM's callbacks come through nginx
            VOCHI_SSH__KEY_PATH=str(keys.client_key),
            VOCHI_SSH__KNOWN_HOSTS=str(sshd.known_hosts),
        )
        for step in (
            (
                "units",
                "add",
                "0367",
                "--name",
                "Pilot",
                "--token",
                TOKEN,
                "--host",
                "127.0.0.1",
                "--ssh-port",
                str(sshd.port),
            ),
            (
                "config",
                "set",
                "0367",
                f"api_url={simulator}",
                f"api_key={DEMO_API_KEY}",
                "enabled=true",
                "redirect_enabled=true",
            ),
            ("config", "map", "0367", "151=16", "152=18"),
        ):
            result = cli(env, *step)
            assert result.returncode == 0, result.stdout + result.stderr
        with running_daemon(env, tmp_path) as daemon:
            daemon_port = int(daemon.url.rsplit(":", 1)[1])
            with running_nginx(tmp_path / "nginx", daemon_port, nginx_port) as nginx:
                sim = SimControl(simulator)
                try:
                    yield Stack(nginx, daemon, sshd, sim, database_url, tmp_path / "nginx")
                finally:
                    sim.close()


def event(unique_id: str) -> dict[str, Any]:
    return {
        "token": TOKEN,
        "event_type": "dial",
        "payload": {
            "UniqueId": unique_id,
            "Phone": "375291112233",
            "CallType": 0,
            "Extensions": ["151"],
        },
    }


def test_events_through_nginx_and_remote_callers(stack: Stack) -> None:
    with httpx.Client(base_url=stack.nginx, timeout=10) as http:
        local = http.post("/retailcrm/api/events", json=event("1.1"))
        assert local.status_code == 202, local.text
        # a caller from outside, relayed by nginx, is not loopback: no token, no entry
        remote = http.post("/retailcrm/api/events", json=event("1.2"), headers=REMOTE)
        assert remote.status_code == 403, remote.text
        # ... even when it claims to be loopback itself
        spoof = http.post(
            "/retailcrm/api/events",
            json=event("1.3"),
            headers={**REMOTE, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"},
        )
        assert spoof.status_code == 403
        token = http.post(
            "/retailcrm/api/events",
            json=event("1.4"),
            headers={**REMOTE, "X-Internal-Token": INTERNAL},
        )
        assert token.status_code == 202
        assert (
            http.post(
                "/retailcrm/api/smart-redirect",
                headers=REMOTE,
                json={"token": TOKEN, "phone": "+375291234567"},
            ).status_code
            == 403
        )


def test_smart_redirect_through_nginx_redirects_over_ssh(stack: Stack) -> None:
    with httpx.Client(base_url=stack.nginx, timeout=10) as http:
        answer = http.post(
            "/retailcrm/api/smart-redirect",
            json={"token": TOKEN, "phone": "+375291234567", "channel": "PJSIP/trunk-00000031"},
        )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["extension"], answer.json()["redirect"]) == ("151", "scheduled")
    wait_until(lambda: stack.sshd.calls.read_text(), what="the redirect on the PBX")
    assert stack.sshd.calls.read_text().splitlines() == [
        "channel redirect PJSIP/trunk-00000031 inoffice,151,1"
    ]


def test_retailcrm_callbacks_through_nginx(stack: Stack) -> None:
    # our module reaches the simulated RetailCRM (the daemon registers it in the background)
    def registered() -> dict[str, Any] | None:
        module = stack.sim.state("demo")["modules"].get("vochi-telephony") or {}
        telephony = module.get("integrations", {}).get("telephony", {})
        return module if telephony.get("makeCallUrl", "").startswith(stack.nginx) else None

    module = wait_until(registered, within=30, what="the module registered in RetailCRM")
    assert (
        module["integrations"]["telephony"]["makeCallUrl"] == f"{stack.nginx}/retailcrm/make-call"
    )

    # a manager clicks a number in RetailCRM: it calls makeCallUrl with our clientId
    click = stack.sim.post(
        "/_sim/make-call", {"account": "demo", "userId": 18, "phone": "+375447654321"}
    )
    assert click.status_code == 200, click.text
    assert (click.json()["status"], click.json()["params"]["code"]) == (200, "152")
    status = stack.sim.post(
        "/_sim/user-status", {"account": "demo", "userId": 16, "status": "break"}
    )
    assert status.json()["status"] == 200, status.text
    wait_until(lambda: stack.sshd.calls.read_text(), what="the originate on the PBX")
    assert stack.sshd.calls.read_text().splitlines() == [
        "channel originate Local/152@web-originate application Dial Local/+375447654321@inoffice"
    ]
    [status_row] = wait_until(
        lambda: journal_rows(stack.database_url, "user_status"), what="the status change journaled"
    )
    assert status_row["request_data"]["status"] == "break"

    with httpx.Client(base_url=stack.nginx, timeout=10) as http:
        forged = http.get(
            "/retailcrm/make-call",
            headers=REMOTE,
            params={"clientId": "0367", "code": "151", "phone": "+375291234567"},
        )
        assert forged.status_code == 403
        assert forged.json()["error"] == "Forbidden"
        assert http.get("/retailcrm/status", params={"status": "free"}).status_code == 403

    # nginx logged the callbacks, without their query strings: the clientId is a credential
    client_id = module["clientId"]
    access_log = (stack.nginx_dir / "logs" / "access.log").read_text()
    assert '"GET /retailcrm/make-call HTTP/1.1" 200' in access_log
    assert "/retailcrm/status HTTP/1.1" in access_log
    assert client_id not in access_log and "clientId" not in access_log


def test_links_and_redirects_carry_the_prefix(stack: Stack) -> None:
    with httpx.Client(base_url=stack.nginx, timeout=10) as http:
        docs = http.get("/retailcrm/api/docs")
        assert docs.status_code == 200
        assert "/retailcrm/api/openapi.json" in docs.text
        spec = http.get("/retailcrm/api/openapi.json").json()
        assert "/api/smart-redirect" in spec["paths"]
        assert spec.get("servers") == [{"url": "/retailcrm"}]
        slash = http.get("/retailcrm/api/events/", follow_redirects=False)
        assert slash.status_code in (307, 308)
        assert urlsplit(slash.headers["location"]).path == "/retailcrm/api/events"
        # the admin location maps onto the daemon's own /retailcrm-admin/ path
        direct = httpx.get(stack.daemon.url + "/retailcrm-admin/", follow_redirects=False)
        proxied = http.get("/retailcrm-admin/", follow_redirects=False)
        assert proxied.status_code == direct.status_code
