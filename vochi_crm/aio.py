"""Small asyncio helpers shared by the core's long-running services."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[object]] | Iterable[asyncio.Task[None]],
) -> None:
    """Cancel ``tasks`` and wait until they have finished, whatever they raise.

    Unlike ``with suppress(CancelledError): await task`` this never swallows the *caller's* own
    cancellation: if the caller is cancelled while waiting, ``gather`` raises it.
    """
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def cancelling() -> bool:
    """Whether the current task has been asked to stop.

    A driver may turn a cancellation that lands mid-query into its own error (psycopg reports the
    cancelled query); loops that catch driver errors to carry on must check this, or a stop
    request is lost and shutdown hangs.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
