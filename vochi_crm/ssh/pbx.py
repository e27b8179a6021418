"""Asterisk CLI commands on a unit's PBX: the SSH pool plus :mod:`vochi_crm.asterisk`'s verdict.

Nothing here raises for a PBX problem: every outcome (no host configured, SSH failure, Asterisk
saying "not found") comes back as a :class:`PbxOutcome` for the caller to journal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vochi_crm.asterisk import CliCommand, judge
from vochi_crm.ssh.pool import PbxAddress, SshError, SshPool
from vochi_crm.units import Unit


@dataclass(frozen=True, slots=True)
class PbxOutcome:
    ok: bool
    reason: str
    """``ok``; an SSH reason (``connect``, ``host_key``, ``auth``, ``timeout``, ``breaker_open``,
    …); an Asterisk verdict (``channel_not_found``, ``asterisk_down``, …); ``no_pbx_host``."""
    message: str
    command: str
    pbx: str | None
    elapsed_ms: float
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "command": self.command,
            "pbx": self.pbx,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "output": self.output[:2000],
        }


def address_of(unit: Unit) -> PbxAddress | None:
    return PbxAddress(unit.host, unit.ssh_port, unit.ssh_user) if unit.host else None


class PbxRunner:
    def __init__(self, pool: SshPool) -> None:
        self.pool = pool

    async def run(self, unit: Unit, command: CliCommand) -> PbxOutcome:
        address = address_of(unit)
        started = time.perf_counter()
        if address is None:
            return PbxOutcome(
                False,
                "no_pbx_host",
                f"unit {unit.number} has no PBX host (vochi-crm units add … --host)",
                command.cli,
                None,
                0.0,
            )
        try:
            result = await self.pool.run(address, command.command_line)
        except SshError as exc:
            return PbxOutcome(
                False,
                exc.reason,
                exc.message,
                command.cli,
                str(address),
                (time.perf_counter() - started) * 1000.0,
            )
        verdict = judge(command.kind, result.exit_status, result.stdout, result.stderr)
        return PbxOutcome(
            verdict.ok,
            verdict.reason,
            verdict.message,
            command.cli,
            str(address),
            (time.perf_counter() - started) * 1000.0,
            output=(result.stdout + result.stderr).strip(),
        )
