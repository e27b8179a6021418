"""SSH to the units' PBXes: a pooled asyncssh client (:mod:`.pool`) and Asterisk CLI commands
judged by their output (:mod:`.pbx`)."""

from __future__ import annotations

from vochi_crm.ssh.pbx import PbxOutcome, PbxRunner, address_of
from vochi_crm.ssh.pool import CommandResult, PbxAddress, SshError, SshPool

__all__ = [
    "CommandResult",
    "PbxAddress",
    "PbxOutcome",
    "PbxRunner",
    "SshError",
    "SshPool",
    "address_of",
]
