"""Showing secrets without leaking them: only the last four characters ever leave the core."""

from __future__ import annotations

import re

_VISIBLE = 4
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")
_KV_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE
)


def mask_secret(value: str | None) -> str | None:
    """``"abcdefgh1234"`` → ``"••••1234"``; short secrets are hidden entirely."""
    if value is None:
        return None
    if len(value) <= _VISIBLE * 2:
        return "••••"
    return "••••" + value[-_VISIBLE:]


def mask_dsn(dsn: str) -> str:
    """Hide the password of a PostgreSQL URL or key=value connection string."""
    masked = _URL_PASSWORD.sub(lambda m: f"{m['head']}••••{m['tail']}", dsn)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}••••", masked)
