"""The Asterisk CLI as we drive it over SSH — pure: validation, command lines, output parsing.

Every value that goes into a command line is validated against a strict pattern first (channel
names, contexts, extensions, phones), and the ``-rx`` argument is shell-quoted on top of that, so
neither the PBX's shell nor the Asterisk CLI parser can be made to run anything else.

``asterisk -rx`` exits 0 even when the command failed ("Channel '…' not found", "No such
command", "Unable to connect to remote asterisk"): :func:`judge` reads the output to decide.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

from vochi_crm.errors import InvalidInput

#: A channel name as ``core show channels concise`` prints it. Local channels carry a ``;1`` /
#: ``;2`` half suffix — the only place a ``;`` may appear.
CHANNEL = re.compile(
    r"^(?:(?:SIP|PJSIP|IAX2|DAHDI)/[A-Za-z0-9_.@:+\-]{1,80}|Local/[A-Za-z0-9_.@:+\-]{1,80}(?:;[12])?)$"
)
CONTEXT = re.compile(r"^[A-Za-z0-9_-]{1,79}$")
EXTENSION = re.compile(r"^[0-9A-Za-z+*#_-]{1,40}$")
PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_PHONE_SEPARATORS = re.compile(r"[ ()\-.]")

DEFAULT_REDIRECT_CONTEXT = "inoffice"
DEFAULT_ORIGINATE_CONTEXT = "web-originate"
DEFAULT_OUTBOUND_CONTEXT = "inoffice"

CommandKind = Literal["redirect", "originate", "show"]

#: Output lines that mean the CLI command did not do what was asked (Asterisk 16–22 wording).
_FAILURE_MARKERS = (
    "not found",
    "no such channel",
    "no such command",
    "unable to",
    "failed",
    "usage:",
    "invalid",
    "error",
    "does /var/run/asterisk/asterisk.ctl exist",
    "permission denied",
    "command not found",
)


# -- validation ----------------------------------------------------------------------------------


def validate_channel(value: object, field: str = "channel") -> str:
    if not isinstance(value, str) or not CHANNEL.fullmatch(value):
        raise InvalidInput.one(
            field,
            "is not an Asterisk channel name (e.g. PJSIP/trunk-0000002a or SIP/151-00000012; "
            "letters, digits and _ . @ : + - only)",
        )
    return value


def validate_context(value: object, field: str = "context") -> str:
    if not isinstance(value, str) or not CONTEXT.fullmatch(value):
        raise InvalidInput.one(
            field, "is not a dialplan context (1–79 letters, digits, _ or -, e.g. inoffice)"
        )
    return value


def validate_dialplan_extension(value: object, field: str = "extension") -> str:
    if not isinstance(value, str) or not EXTENSION.fullmatch(value):
        raise InvalidInput.one(field, "is not a dialplan extension (letters, digits, + * # _ -)")
    return value


def normalise_phone(value: object, field: str = "phone") -> str:
    """``+375 (29) 123-45-67`` → ``+375291234567``; anything that is not a phone number is
    refused (3–20 digits, an optional leading ``+``; spaces, dashes, dots and parentheses are
    dropped)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput.one(field, "must be a phone number")
    phone = _PHONE_SEPARATORS.sub("", value.strip())
    if not PHONE.fullmatch(phone):
        raise InvalidInput.one(
            field, f"{value[:40]!r} is not a phone number (3–20 digits, optional leading +)"
        )
    return phone


# -- command lines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliCommand:
    """One ``asterisk -rx`` call: what it does, the CLI text and the exact shell command line."""

    kind: CommandKind
    cli: str

    @property
    def command_line(self) -> str:
        return f"asterisk -rx {shlex.quote(self.cli)}"


def redirect(channel: str, context: str, extension: str, priority: int = 1) -> CliCommand:
    """``channel redirect <channel> <context>,<extension>,<priority>``."""
    validate_channel(channel)
    validate_context(context)
    validate_dialplan_extension(extension)
    if not 1 <= priority <= 99999:
        raise InvalidInput.one("priority", "must be between 1 and 99999")
    return CliCommand("redirect", f"channel redirect {channel} {context},{extension},{priority}")


def originate(
    extension: str, phone: str, *, originate_context: str, outbound_context: str
) -> CliCommand:
    """``channel originate Local/<ext>@<originate-context> application Dial
    Local/<phone>@<outbound-context>``: the manager's phone rings first, then dials the customer
    (reference B6)."""
    validate_dialplan_extension(extension)
    validate_context(originate_context, "originate_context")
    validate_context(outbound_context, "outbound_context")
    if not PHONE.fullmatch(phone):
        raise InvalidInput.one("phone", "is not a normalised phone number")
    return CliCommand(
        "originate",
        f"channel originate Local/{extension}@{originate_context} "
        f"application Dial Local/{phone}@{outbound_context}",
    )


def show_channels() -> CliCommand:
    return CliCommand("show", "core show channels concise")


# -- output --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliOutcome:
    ok: bool
    reason: str
    """``ok`` or a short code: ``channel_not_found``, ``no_such_command``, ``asterisk_down``,
    ``exit_<n>``, ``not_confirmed``, ``error``."""
    message: str
    """Asterisk's own words (first meaningful line), for the journal."""


def judge(kind: CommandKind, exit_status: int | None, stdout: str, stderr: str = "") -> CliOutcome:
    """Decide from the exit status *and* the text whether an ``asterisk -rx`` call worked."""
    text = "\n".join(part for part in (stdout.strip(), stderr.strip()) if part)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    lowered = text.lower()
    if exit_status is None:
        return CliOutcome(False, "no_exit_status", first or "no exit status")
    if exit_status != 0:
        reason = "asterisk_missing" if exit_status == 127 else f"exit_{exit_status}"
        return CliOutcome(False, reason, first or f"exit status {exit_status}")
    if "unable to connect to remote asterisk" in lowered or "asterisk.ctl" in lowered:
        return CliOutcome(False, "asterisk_down", first)
    if "no such command" in lowered:
        return CliOutcome(False, "no_such_command", first)
    if "no such channel" in lowered or ("channel" in lowered and "not found" in lowered):
        return CliOutcome(False, "channel_not_found", first)
    if kind == "redirect":
        if "successfully redirected" in lowered and not _has_failure(lowered, ignore="redirected"):
            return CliOutcome(True, "ok", first)
        return CliOutcome(False, "not_confirmed" if not first else "error", first)
    if _has_failure(lowered):
        return CliOutcome(False, "error", first)
    return CliOutcome(True, "ok", first)


def _has_failure(lowered: str, ignore: str | None = None) -> bool:
    for line in lowered.splitlines():
        if ignore is not None and ignore in line:
            continue
        if any(marker in line for marker in _FAILURE_MARKERS):
            return True
    return False


@dataclass(frozen=True)
class ChannelInfo:
    """One line of ``core show channels concise`` (``!``-separated)."""

    channel: str
    context: str
    extension: str
    priority: str
    state: str
    application: str
    data: str
    unique_id: str


def parse_concise(stdout: str) -> list[ChannelInfo]:
    channels = []
    for line in stdout.splitlines():
        parts = line.strip().split("!")
        if len(parts) < 7 or "/" not in parts[0]:
            continue
        channels.append(
            ChannelInfo(
                channel=parts[0],
                context=parts[1],
                extension=parts[2],
                priority=parts[3],
                state=parts[4],
                application=parts[5],
                data=parts[6],
                unique_id=parts[13] if len(parts) > 13 else "",
            )
        )
    return channels
