"""Client address, scheme and prefix behind a reverse proxy (``guards.forwarded_scope``): believed
only from a trusted proxy, and a caller can never make itself look like loopback."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest

from vochi_daemon.guards import forwarded_scope, is_loopback

TRUSTED = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


def scope(peer: str, path: str = "/api/events", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "client": (peer, 5555),
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "headers": [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("127.0.0.1", {}, "127.0.0.1"),  # a local caller, no proxy
        ("127.0.0.1", {"x_forwarded_for": "203.0.113.9"}, "203.0.113.9"),
        ("127.0.0.1", {"x_real_ip": "203.0.113.9"}, "203.0.113.9"),
        # the client's own claim is left of what the proxy appended
        ("127.0.0.1", {"x_forwarded_for": "127.0.0.1, 203.0.113.9"}, "203.0.113.9"),
        # two trusted hops: the first untrusted from the right
        ("127.0.0.1", {"x_forwarded_for": "198.51.100.7, 10.1.2.3"}, "198.51.100.7"),
        ("127.0.0.1", {"x_forwarded_for": "not-an-ip"}, "unknown"),
        # an untrusted peer's headers are ignored
        ("203.0.113.9", {"x_forwarded_for": "127.0.0.1"}, "203.0.113.9"),
        ("203.0.113.9", {"x_real_ip": "127.0.0.1"}, "203.0.113.9"),
    ],
)
def test_client_address(peer: str, headers: dict[str, str], client: str) -> None:
    assert forwarded_scope(scope(peer, **headers), TRUSTED)["client"][0] == client


def test_nothing_is_trusted_with_an_empty_list() -> None:
    raw = scope("127.0.0.1", x_forwarded_for="203.0.113.9")
    assert forwarded_scope(raw, ()) is raw


def test_scheme_and_prefix_from_a_trusted_proxy() -> None:
    forwarded = forwarded_scope(
        scope("127.0.0.1", "/api/docs", x_forwarded_proto="https", x_forwarded_prefix="/retailcrm"),
        TRUSTED,
    )
    assert forwarded["scheme"] == "https"
    assert (forwarded["root_path"], forwarded["path"], forwarded["raw_path"]) == (
        "/retailcrm",
        "/retailcrm/api/docs",
        b"/retailcrm/api/docs",
    )


@pytest.mark.parametrize("prefix", ["retailcrm", "/a b", "/a/../b?x", "//evil.example"])
def test_a_malformed_prefix_is_ignored(prefix: str) -> None:
    forwarded = forwarded_scope(scope("127.0.0.1", x_forwarded_prefix=prefix), TRUSTED)
    assert forwarded["path"] == "/api/events"


def test_untrusted_scheme_and_prefix_are_ignored() -> None:
    raw = scope("203.0.113.9", x_forwarded_proto="https", x_forwarded_prefix="/x")
    assert forwarded_scope(raw, TRUSTED) is raw


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("unknown") and not is_loopback(None)


def test_the_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from vochi_crm.errors import InvalidInput
    from vochi_crm.settings import load_settings

    for name in [n for n in os.environ if n.startswith("VOCHI_")]:
        monkeypatch.delenv(name)
    assert load_settings().daemon.trusted_proxy_networks() == (
        ipaddress.ip_network("127.0.0.1/32"),
    )
    monkeypatch.setenv("VOCHI_DAEMON__TRUSTED_PROXIES", "10.0.0.0/8, ::1")
    assert [str(n) for n in load_settings().daemon.trusted_proxy_networks()] == [
        "10.0.0.0/8",
        "::1/128",
    ]
    monkeypatch.setenv("VOCHI_DAEMON__TRUSTED_PROXIES", "")
    assert load_settings().daemon.trusted_proxy_networks() == ()
    monkeypatch.setenv("VOCHI_DAEMON__TRUSTED_PROXIES", "nginx.local")
    with pytest.raises(InvalidInput) as refused:
        load_settings()
    assert refused.value.fields[0].field == "VOCHI_DAEMON__TRUSTED_PROXIES"
