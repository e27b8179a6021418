"""``vochi-crm admin-link UNIT``: a sign-in link to the admin web UI, for ops and support.

The link carries a token signed with ``VOCHI_ADMIN__JWT_SECRET`` (the secret the platform signs
its own links with), valid for ``--ttl``; opening it starts a session and drops the token from
the address bar. Anyone holding the link can sign in until it expires: send it privately.
Exit 0 printed, 2 unknown unit, bad --ttl or no VOCHI_ADMIN__JWT_SECRET.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vochi_cli import core, output

if TYPE_CHECKING:
    from vochi_crm.runtime import Runtime

MAX_TTL_SECONDS = 7 * 86400


def admin_link(
    unit: Annotated[
        str | None, typer.Argument(help="Unit number, e.g. 0367.", show_default=False)
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option(help="How long the link works: 15m, 1h, 2d (default 1h, at most 7d)."),
    ] = None,
    super_: Annotated[
        bool, typer.Option("--super", help="All units (ops); UNIT, if given, is where it opens.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Print a link that signs in to the admin UI of UNIT (or of every unit with --super).

    Example: vochi-crm admin-link 0367 --ttl 30m
    """
    from datetime import UTC, datetime, timedelta
    from urllib.parse import urlencode

    from vochi_crm.admin_auth import issue_token
    from vochi_crm.errors import InvalidInput
    from vochi_crm.timespec import parse_duration

    settings = core.settings()
    secret = settings.admin.jwt_secret

    def check() -> int:
        if unit is None and not super_:
            raise InvalidInput.one("UNIT", "give a unit number, or --super for every unit")
        if secret is None:
            raise InvalidInput.one(
                "VOCHI_ADMIN__JWT_SECRET", "is not set: the admin UI accepts no link without it"
            )
        seconds = (
            settings.admin.link_ttl_seconds
            if ttl is None
            else int(parse_duration(ttl, option="--ttl").total_seconds())
        )
        if not 60 <= seconds <= MAX_TTL_SECONDS:
            raise InvalidInput.one("--ttl", "must be between 1m and 7d")
        return seconds

    seconds = core.guard(check)
    if unit is not None:

        async def exists(runtime: Runtime) -> None:
            await runtime.units.get(unit)

        core.with_runtime(exists)
    assert secret is not None
    token = issue_token(
        secret.get_secret_value(), unit=None if super_ else unit, super_=super_,
        ttl_seconds=seconds, subject="vochi-crm admin-link",
    )
    query = {"enterprise_number": unit} if unit is not None else {}
    url = f"{settings.public_base_url}/retailcrm-admin/?{urlencode({**query, 'token': token})}"
    expires = datetime.now(UTC) + timedelta(seconds=seconds)
    if as_json:
        output.print_json({"url": url, "unit": unit, "super": super_,
                           "expires_at": expires.isoformat()})
        return
    sys.stdout.write(url + "\n")  # the one line scripts capture
    output.notice(
        f"valid until {expires.astimezone():%Y-%m-%d %H:%M %Z}; whoever has it can sign in "
        f"{'to every unit' if super_ else f'to unit {unit}'} until then"
    )
