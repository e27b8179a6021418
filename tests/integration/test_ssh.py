"""The SSH pool and the PBX runner against asyncssh's own SSH server, in process, on 127.0.0.1:
pooling, reconnects, timeouts, auth and host-key failures, the breaker, the concurrency cap."""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from pathlib import Path

import pytest

from tests.ssh_fakes import FakeAsterisk, InProcessPbx, Keys, make_keys
from vochi_crm import asterisk
from vochi_crm.pipeline.breaker import BreakerConfig
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.settings import SshSettings
from vochi_crm.ssh import PbxAddress, PbxRunner, SshError, SshPool
from vochi_crm.units import Unit

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("ssh-keys"))


def settings(keys: Keys, known_hosts: Path | None, **extra: object) -> SshSettings:
    values: dict[str, object] = {
        "key_path": keys.client_key,
        "known_hosts": known_hosts,
        "connect_timeout_seconds": 2.0,
        "command_timeout_seconds": 1.0,
        **extra,
    }
    return SshSettings.model_validate(values)


def unit(port: int, host: str | None = "127.0.0.1") -> Unit:
    return Unit("0367", "Pilot", None, host, port, "root", True, RetailCrmConfig(), None)


def address(pbx: InProcessPbx) -> PbxAddress:
    return PbxAddress("127.0.0.1", pbx.port, "root")


async def test_commands_share_one_connection_and_are_quoted(keys: Keys) -> None:
    async with InProcessPbx(keys) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts()))
        runner = PbxRunner(pool)
        command = asterisk.redirect("PJSIP/trunk-0000002a", "inoffice", "151")
        first = await runner.run(unit(pbx.port), command)
        second = await runner.run(unit(pbx.port), asterisk.show_channels())
        await pool.aclose()
    assert first.ok and first.reason == "ok"
    assert "successfully redirected to inoffice,151,1" in first.message
    assert second.ok
    assert pbx.accepted == 1  # the second command reused the pooled connection
    assert pbx.asterisk.commands == [
        "channel redirect PJSIP/trunk-0000002a inoffice,151,1",
        "core show channels concise",
    ]
    # what the PBX's shell got: exactly three words, the CLI text single-quoted
    assert (
        pbx.asterisk.raw[0] == "asterisk -rx 'channel redirect PJSIP/trunk-0000002a inoffice,151,1'"
    )
    assert (
        shlex.split(pbx.asterisk.raw[0])[2]
        == "channel redirect PJSIP/trunk-0000002a inoffice,151,1"
    )


async def test_no_such_channel_is_a_failure_although_asterisk_exits_0(keys: Keys) -> None:
    async with InProcessPbx(keys, FakeAsterisk(channels={"SIP/known-01"})) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts()))
        outcome = await PbxRunner(pool).run(
            unit(pbx.port), asterisk.redirect("SIP/gone-02", "inoffice", "151")
        )
        await pool.aclose()
    assert not outcome.ok
    assert outcome.reason == "channel_not_found"
    assert "SIP/gone-02" in outcome.message
    assert pool.stats()[f"root@127.0.0.1:{pbx.port}"]["failures"] == 0  # SSH itself worked


async def test_a_dropped_connection_is_reopened(keys: Keys) -> None:
    async with InProcessPbx(keys) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts()))
        assert (
            await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
        ).exit_status == 0
        pbx.drop_all()  # the PBX (or a NAT box) drops the idle connection
        result = await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
        # and again while the client has not noticed yet: the stale connection is retried once
        await asyncio.sleep(0.05)
        pbx.drop_all()
        again = await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
        stats = pool.stats()[str(address(pbx))]
        await pool.aclose()
    assert result.exit_status == 0 and again.exit_status == 0
    assert pbx.accepted == 3
    assert stats["connects"] == 3
    assert stats["failures"] == 0


async def test_a_connection_lost_mid_command_is_reported_not_repeated(keys: Keys) -> None:
    async with InProcessPbx(keys, FakeAsterisk(mode="drop")) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts()))
        with pytest.raises(SshError) as failure:
            await pool.run(
                address(pbx),
                "asterisk -rx 'channel originate Local/151@x application Dial Local/1@y'",
            )
        await pool.aclose()
    assert failure.value.reason == "disconnected"
    assert failure.value.started is True
    assert len(pbx.asterisk.commands) == 1  # an originate may have run: never sent twice


async def test_a_pbx_that_never_answers_times_out(keys: Keys) -> None:
    async with InProcessPbx(keys, FakeAsterisk(mode="hang")) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts(), command_timeout_seconds=0.5))
        started = time.monotonic()
        outcome = await PbxRunner(pool).run(
            unit(pbx.port), asterisk.redirect("SIP/151-0001", "inoffice", "151")
        )
        elapsed = time.monotonic() - started
        await pool.aclose()
    assert not outcome.ok
    assert outcome.reason == "timeout"
    assert 0.4 < elapsed < 3


async def test_an_unknown_client_key_is_refused(keys: Keys, tmp_path: Path) -> None:
    stranger = make_keys(tmp_path / "stranger")
    async with InProcessPbx(keys) as pbx:
        pool = SshPool(settings(stranger, pbx.known_hosts()))
        with pytest.raises(SshError) as failure:
            await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
        await pool.aclose()
    assert failure.value.reason == "auth"
    assert pbx.asterisk.commands == []


async def test_a_wrong_host_key_is_refused_and_logged(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    async with InProcessPbx(keys) as pbx:
        wrong = keys.known_hosts(pbx.port, key=keys.directory / "other_key")
        pool = SshPool(settings(keys, wrong))
        with caplog.at_level(logging.WARNING, logger="vochi_crm.ssh.pool"):
            outcome = await PbxRunner(pool).run(unit(pbx.port), asterisk.show_channels())
        await pool.aclose()
    assert not outcome.ok
    assert outcome.reason == "host_key"
    assert pbx.asterisk.commands == []
    assert any(getattr(r, "reason", None) == "host_key" for r in caplog.records)


async def test_the_insecure_opt_out_connects_but_says_so(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    async with InProcessPbx(keys) as pbx:
        wrong = keys.known_hosts(pbx.port, key=keys.directory / "other_key")
        with caplog.at_level(logging.WARNING, logger="vochi_crm.ssh.pool"):
            pool = SshPool(settings(keys, wrong, insecure_no_host_key_check=True))
            outcome = await PbxRunner(pool).run(unit(pbx.port), asterisk.show_channels())
        await pool.aclose()
    assert outcome.ok
    messages = [r.getMessage() for r in caplog.records]
    assert any("NOT verified" in m for m in messages)
    assert any("WITHOUT host key verification" in m for m in messages)


async def test_the_breaker_stops_trying_a_dead_pbx(keys: Keys, tmp_path: Path) -> None:
    stranger = make_keys(tmp_path / "stranger")
    async with InProcessPbx(keys) as pbx:
        pool = SshPool(
            settings(stranger, pbx.known_hosts()),
            breaker=BreakerConfig(failure_threshold=3, cooldown=60),
        )
        reasons = []
        for _ in range(5):
            with pytest.raises(SshError) as failure:
                await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
            reasons.append(failure.value.reason)
        stats = pool.stats()[str(address(pbx))]
        await pool.aclose()
    assert reasons == ["auth", "auth", "auth", "breaker_open", "breaker_open"]
    assert pbx.accepted == 3  # once open, the PBX is not even contacted
    assert stats["breaker"]["state"] == "open"


async def test_an_unreachable_pbx_and_a_unit_without_host(keys: Keys) -> None:
    from tests.e2e.daemons import free_port

    pool = SshPool(settings(keys, None, insecure_no_host_key_check=True))
    runner = PbxRunner(pool)
    closed = await runner.run(unit(free_port()), asterisk.show_channels())
    no_host = await runner.run(unit(22, host=None), asterisk.show_channels())
    await pool.aclose()
    assert (closed.ok, closed.reason) == (False, "connect")
    assert (no_host.ok, no_host.reason) == (False, "no_pbx_host")


async def test_concurrency_is_capped_per_pbx(keys: Keys) -> None:
    async with InProcessPbx(keys, FakeAsterisk(mode="slow", delay=0.15)) as pbx:
        pool = SshPool(settings(keys, pbx.known_hosts(), max_sessions_per_pbx=2))
        results = await asyncio.gather(
            *(
                pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
                for _ in range(6)
            )
        )
        await pool.aclose()
    assert all(r.exit_status == 0 for r in results)
    assert pbx.asterisk.max_running == 2
    assert pbx.accepted == 1  # one handshake shared by concurrent first commands


async def test_idle_connections_are_closed(keys: Keys) -> None:
    now = [1000.0]
    async with InProcessPbx(keys) as pbx:
        pool = SshPool(
            settings(keys, pbx.known_hosts(), idle_close_seconds=60), clock=lambda: now[0]
        )
        await pool.run(address(pbx), "asterisk -rx 'core show channels concise'")
        assert await pool.close_idle() == 0
        now[0] += 61
        assert await pool.close_idle() == 1
        assert pool.stats()[str(address(pbx))]["connected"] is False
        await pool.aclose()
