"""Time for the demo: waiting that a stop cuts short, and the wall clock the calls start at."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime


async def wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``event`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def now() -> datetime:
    return datetime.now().astimezone()
