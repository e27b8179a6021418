"""End to end with a REAL Asterisk (Debian sid's, in a chroot built by the shared
``make-asterisk-root.sh``): sipp places a real SIP call; ``/api/smart-redirect`` finds the manager
in the simulated RetailCRM and the daemon redirects that channel over SSH (OpenSSH ``sshd`` whose
``asterisk`` runs the chroot's ``asterisk -rx``); ``/retailcrm/make-call`` originates a real call.
What Asterisk showed is printed (``pytest -s``) as the transcript."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.e2e.daemons import cli, free_port, running_daemon, scrubbed_env
from tests.e2e.pbx import (
    CHROOT_ASTERISK,
    Sshd,
    asterisk_cli,
    asterisk_root_ready,
    build_asterisk_root,
    journal_rows,
    running_asterisk,
    running_sshd,
    wait_until,
)
from tests.ssh_fakes import make_keys
from vochi_crm import asterisk
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = [pytest.mark.slow, pytest.mark.pbx]
PHONE = "+375291234567"  # demo customer 101, responsible manager 16
DIALPLAN = """
[web-originate]
exten => _X.,1,Answer()
 same => n,Set(GLOBAL(ORIGINATED)=${EXTEN} ${CHANNEL})
 same => n,Wait(60)
 same => n,Hangup()

[inoffice]
exten => _[+0-9].,1,Answer()
 same => n,Set(GLOBAL(DIALED)=${EXTEN} ${CHANNEL})
 same => n,Wait(60)
 same => n,Hangup()
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Sshd]]:
    """A running Asterisk and an sshd whose ``asterisk`` is the chroot's."""
    require(os.geteuid() == 0, "root (chroot for the Asterisk root, sshd root login)")
    require(shutil.which("sipp") is not None, "sipp (apt-get install sip-tester)")
    require(
        shutil.which("sshd") is not None or Path("/usr/sbin/sshd").exists(),
        "OpenSSH sshd (apt-get install openssh-server)",
    )
    require(
        asterisk_root_ready() or build_asterisk_root(),
        "the Asterisk root (make-asterisk-root.sh; .ci/run builds it)",
    )
    work = tmp_path_factory.mktemp("asterisk")
    keys = make_keys(work / "keys")
    with (
        running_asterisk(DIALPLAN, work / "asterisk.log"),
        running_sshd(keys, work / "sshd", CHROOT_ASTERISK) as sshd,
    ):
        yield keys.client_key, sshd
        asterisk_cli("channel request hangup all")



def daemon_env(
    database_url: str, key: Path, sshd: Sshd, simulator: str, *extra: str
) -> dict[str, str]:
    env = scrubbed_env(
        VOCHI_DATABASE_URL=database_url,
        VOCHI_SSH__KEY_PATH=str(key),
        VOCHI_SSH__KNOWN_HOSTS=str(sshd.known_hosts),
    )
    for step in (
        (
            "units",
            "add",
            "0367",
            "--name",
            "Pilot",
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
            *extra,
        ),
        # extensions of the root's [test] context: 200 is manager 16's
        ("config", "map", "0367", "200=16", "100=18"),
    ):
        result = cli(env, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    return env


def channels() -> list[asterisk.ChannelInfo]:
    return asterisk.parse_concise(asterisk_cli("core show channels concise"))


def dialed(globals_: str) -> str | None:
    return globals_ if "DIALED=" in globals_ and "ORIGINATED=" in globals_ else None


def show(title: str, text: str) -> None:
    print(f"\n--- {title} ---\n{text.rstrip()}")


def test_a_real_call_is_redirected_to_its_manager(
    pbx: tuple[Path, Sshd], simulator: str, database_url: str, tmp_path: Path
) -> None:
    key, sshd = pbx
    env = daemon_env(
        database_url, key, sshd, simulator, "redirect_enabled=true", "redirect_context=test"
    )
    sipp = subprocess.Popen(
        [
            "sipp",
            "-sn",
            "uac",
            "127.0.0.1:15060",
            "-s",
            "100",
            "-m",
            "1",
            "-d",
            "30000",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-nostdin",
            "-timeout",
            "60",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        call = wait_until(
            lambda: next(
                (
                    c
                    for c in channels()
                    if c.channel.startswith("PJSIP/sipp-") and c.extension == "100"
                ),
                None,
            ),
            what="sipp's call in the [test] context at 100",
        )
        before = asterisk_cli("core show channels concise")
        with running_daemon(env, tmp_path) as daemon:
            answer = httpx.post(
                daemon.url + "/api/smart-redirect",
                json={
                    "enterprise_number": "0367",
                    "phone": PHONE,
                    "channel": call.channel,
                    "unique_id": call.unique_id,
                },
                timeout=10,
            ).json()
            moved = wait_until(
                lambda: next(
                    (c for c in channels() if c.channel == call.channel and c.extension == "200"),
                    None,
                ),
                what="the channel redirected to 200",
            )
            [row] = wait_until(
                lambda: journal_rows(database_url, "channel_redirect"),
                what="the redirect journaled",
            )
        globals_ = asterisk_cli("dialplan show globals")
        after = asterisk_cli("core show channels concise")
    finally:
        sipp.terminate()
        sipp.wait(timeout=10)
    show("channels before", before)
    show("POST /api/smart-redirect", str(answer))
    show("asterisk -rx over SSH", sshd.calls.read_text())
    show("journal channel_redirect", str(row["response_data"]))
    show("channels after", after)
    show("dialplan show globals", globals_)
    assert (answer["extension"], answer["manager_id"], answer["redirect"]) == (
        "200",
        16,
        "scheduled",
    )
    assert (moved.context, moved.extension) == ("test", "200")
    assert f"LAST=200 {call.channel}" in globals_
    assert sshd.calls.read_text().splitlines()[-1:] == [
        f"channel redirect {call.channel} test,200,1"
    ]
    assert (row["status"], row["call_unique_id"]) == ("success", call.unique_id)
    assert row["response_data"]["message"] == (
        f"Channel '{call.channel}' successfully redirected to test,200,1"
    )


def test_make_call_originates_a_real_call(
    pbx: tuple[Path, Sshd], simulator: str, database_url: str, tmp_path: Path
) -> None:
    key, sshd = pbx
    client_id = "e2e-" + secrets.token_hex(16)
    env = daemon_env(database_url, key, sshd, simulator, f"client_id={client_id}")
    asterisk_cli("channel request hangup all")
    earlier = len(sshd.calls.read_text().splitlines())  # the PBX is shared by this module
    with running_daemon(env, tmp_path) as daemon:
        response = httpx.get(
            daemon.url + "/retailcrm/make-call",
            params={
                "clientId": client_id,
                "code": "",
                "userId": "16",
                "phone": "+375 29 765-43-21",
            },
            timeout=10,
        )
        globals_ = wait_until(
            lambda: dialed(asterisk_cli("dialplan show globals")), what="the customer leg dialed"
        )
        legs = [c for c in channels() if c.channel.startswith("Local/")]
        [row] = wait_until(
            lambda: journal_rows(database_url, "make_call"), what="make_call journaled"
        )
    show("GET /retailcrm/make-call", f"{response.status_code} {response.text}")
    show("asterisk -rx over SSH", "\n".join(sshd.calls.read_text().splitlines()[earlier:]))
    show("channels", asterisk_cli("core show channels concise"))
    show("dialplan show globals", globals_)
    asterisk_cli("channel request hangup all")
    assert response.status_code == 200
    assert response.json() == {"success": True, "status": "originated", "extension": "200"}
    assert sshd.calls.read_text().splitlines()[earlier:] == [
        "channel originate Local/200@web-originate application Dial Local/+375297654321@inoffice"
    ]
    assert "ORIGINATED=200 Local/200@web-originate-" in globals_
    assert "DIALED=+375297654321 Local/+375297654321@inoffice-" in globals_
    contexts = {(c.context, c.extension) for c in legs}
    assert ("web-originate", "200") in contexts
    assert ("inoffice", "+375297654321") in contexts
    assert (row["status"], row["internal_extension"]) == ("success", "200")
