"""How a command reaches the core: build the settings once, open the runtime, map errors to exits.

Exit codes: 0 ok, 1 runtime failure (database down, conflict), 2 usage or validation error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from vochi_cli import output

if TYPE_CHECKING:
    from vochi_crm.runtime import Runtime
    from vochi_crm.settings import Settings

T = TypeVar("T")


def settings() -> Settings:
    from vochi_crm.settings import load_settings

    return guard(load_settings)


def guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a core error becomes a titled message on stderr and its exit code."""
    from vochi_crm.errors import VochiError

    try:
        return fn()
    except VochiError as exc:
        output.print_error(exc)
        raise typer.Exit(exc.exit_code) from None


def with_runtime(use: Callable[[Runtime], Awaitable[T]], *, auto_migrate: bool = True) -> T:
    """Open the runtime, run ``use``, close. The embedded database (ours alone) is migrated
    on the way in; the platform's database only by ``db migrate`` or the daemon."""
    import asyncio

    from vochi_crm.runtime import open_runtime

    resolved = settings()

    async def main() -> T:
        embedded = resolved.database_url is None
        async with open_runtime(
            resolved, migrate=auto_migrate and embedded, notice=output.notice
        ) as runtime:
            return await use(runtime)

    return guard(lambda: asyncio.run(main()))
