"""The Asterisk CLI layer is pure: what may go into a command line, the exact command lines, and
how ``asterisk -rx`` output (exit status 0 even on failure) is judged."""

from __future__ import annotations

import shlex

import pytest

from vochi_crm import asterisk
from vochi_crm.errors import InvalidInput

GOOD_CHANNELS = [
    "PJSIP/trunk-0000002a",
    "SIP/151-00000012",
    "SIP/mts_trunk-0000abcd",
    "IAX2/provider-1234",
    "DAHDI/1-1",
    "Local/151@inoffice-00000012;1",
    "Local/151@inoffice-00000012;2",
    "Local/+375291234567@inoffice-0000001f",
    "PJSIP/user@example.com:5060-00000001",
]
BAD_CHANNELS = [
    "",
    "PJSIP/",
    "pjsip/abc",  # technology names are case-sensitive in the pattern
    "Console/dsp",
    "SIP/abc;rm -rf /",
    "SIP/abc;1",  # a half suffix only exists on Local channels
    "Local/151@x;3",
    "SIP/$(reboot)",
    "SIP/`id`",
    "SIP/a b",
    "SIP/a'b",
    'SIP/a"b',
    "SIP/a\nb",
    "SIP/abc\n",  # `$` would match before a trailing newline: patterns must match whole
    "SIP/a\\b",
    "SIP/a|b",
    "SIP/a&b",
    "SIP/a>b",
    "SIP/a,b",  # would split the redirect target
    "SIP/" + "a" * 81,
    None,
    42,
]


@pytest.mark.parametrize("channel", GOOD_CHANNELS)
def test_real_channel_names_are_accepted(channel: str) -> None:
    assert asterisk.validate_channel(channel) == channel


@pytest.mark.parametrize("channel", BAD_CHANNELS)
def test_anything_else_is_refused_with_the_field_named(channel: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        asterisk.validate_channel(channel)
    assert refused.value.fields[0].field == "channel"


@pytest.mark.parametrize(
    ("context", "ok"),
    [
        ("inoffice", True),
        ("web-originate", True),
        ("mngr16_1_1", True),
        ("", False),
        ("in office", False),
        ("inoffice\n", False),
        ("a;b", False),
        ("a,b", False),
        ("$(x)", False),
        ("x" * 80, False),
    ],
)
def test_contexts(context: str, ok: bool) -> None:
    if ok:
        assert asterisk.validate_context(context) == context
    else:
        with pytest.raises(InvalidInput):
            asterisk.validate_context(context)


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("+375291234567", "+375291234567"),
        ("375 (29) 123-45-67", "375291234567"),
        ("8.029.123.45.67", "80291234567"),
        (375291234567, "375291234567"),
        ("101", "101"),
        (" 375291234567\n", "375291234567"),
    ],  # surrounding whitespace is trimmed, not kept
)
def test_phones_are_normalised(raw: object, phone: str) -> None:
    assert asterisk.normalise_phone(raw) == phone


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12",
        "abc",
        "+",
        "++375",
        "375;reboot",
        "375$(id)",
        "375`id`",
        "375'1",
        "1" * 21,
        None,
        True,
        "+375\n29",
        "375\t29",
    ],
)
def test_non_phones_are_refused(raw: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        asterisk.normalise_phone(raw)
    assert refused.value.fields[0].field == "phone"


def test_redirect_command_line() -> None:
    command = asterisk.redirect("Local/151@inoffice-00000012;1", "inoffice", "151")
    assert command.cli == "channel redirect Local/151@inoffice-00000012;1 inoffice,151,1"
    assert command.command_line == (
        "asterisk -rx 'channel redirect Local/151@inoffice-00000012;1 inoffice,151,1'"
    )
    # the PBX's shell sees exactly three words whatever the (validated) text holds
    assert shlex.split(command.command_line) == ["asterisk", "-rx", command.cli]


def test_originate_command_line() -> None:
    command = asterisk.originate(
        "151", "+375291234567", originate_context="web-originate", outbound_context="inoffice"
    )
    assert command.cli == (
        "channel originate Local/151@web-originate application Dial Local/+375291234567@inoffice"
    )
    assert shlex.split(command.command_line)[2] == command.cli


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: asterisk.redirect("SIP/a;b", "inoffice", "151"), "channel"),
        (lambda: asterisk.redirect("SIP/a", "in office", "151"), "context"),
        (lambda: asterisk.redirect("SIP/a", "inoffice", "1 5"), "extension"),
        (lambda: asterisk.redirect("SIP/a", "inoffice", "151", priority=0), "priority"),
        (
            lambda: asterisk.originate("151", "1;2", originate_context="a", outbound_context="b"),
            "phone",
        ),
        (
            lambda: asterisk.originate("151", "123", originate_context="a b", outbound_context="b"),
            "originate_context",
        ),
        (
            lambda: asterisk.originate("151", "123", originate_context="a", outbound_context="$x"),
            "outbound_context",
        ),
    ],
)
def test_builders_validate_again(call: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        call()  # type: ignore[operator]
    assert refused.value.fields[0].field == field


# -- judging the output ---------------------------------------------------------------------------

NOT_FOUND = (
    "Channel 'PJSIP/nonexistent-0001' not found\n"
    "Command 'channel redirect PJSIP/nonexistent-0001 test,200,1' failed.\n"
)


@pytest.mark.parametrize(
    ("kind", "status", "stdout", "stderr", "ok", "reason"),
    [
        (
            "redirect",
            0,
            "Channel 'PJSIP/sipp-00000000' successfully redirected to test,200,1\n",
            "",
            True,
            "ok",
        ),
        ("redirect", 0, NOT_FOUND, "", False, "channel_not_found"),
        ("redirect", 0, "No such channel\n", "", False, "channel_not_found"),
        ("redirect", 0, "", "", False, "not_confirmed"),
        ("redirect", 0, "Channel 'SIP/a' failed to be redirected to x,1,1\n", "", False, "error"),
        ("originate", 0, "", "", True, "ok"),
        (
            "originate",
            0,
            "No such command 'channel originate' (type 'core show help')\n",
            "",
            False,
            "no_such_command",
        ),
        (
            "originate",
            0,
            "Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)\n",
            "",
            False,
            "asterisk_down",
        ),
        ("originate", 0, "", "Usage: channel originate <tech/data> …", False, "error"),
        ("originate", 127, "", "sh: 1: asterisk: not found", False, "asterisk_missing"),
        ("originate", 1, "", "", False, "exit_1"),
        ("originate", None, "", "", False, "no_exit_status"),
        (
            "show",
            0,
            "PJSIP/sipp-00000000!test!100!3!Up!Wait!600!sipp!!!3!1!!1795668807.4\n",
            "",
            True,
            "ok",
        ),
    ],
)
def test_output_is_judged_not_the_exit_status_alone(
    kind: asterisk.CommandKind, status: int | None, stdout: str, stderr: str, ok: bool, reason: str
) -> None:
    outcome = asterisk.judge(kind, status, stdout, stderr)
    assert (outcome.ok, outcome.reason) == (ok, reason)
    if stdout or stderr:
        assert outcome.message  # Asterisk's own words, for the journal


def test_concise_channel_listing() -> None:
    text = (
        "PJSIP/sipp-00000000!test!200!3!Up!Wait!600!sipp!!!3!12!!1795668807.4\n"
        "Local/100@test-00000001;2!test!100!3!Up!Wait!600!!!!3!0!!1795668804.3\n"
        "garbage line\n"
    )
    channels = asterisk.parse_concise(text)
    assert [(c.channel, c.context, c.extension, c.state) for c in channels] == [
        ("PJSIP/sipp-00000000", "test", "200", "Up"),
        ("Local/100@test-00000001;2", "test", "100", "Up"),
    ]
    assert channels[0].unique_id == "1795668807.4"
