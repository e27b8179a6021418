"""Summarise a ``py-spy record -f raw`` profile (what ``--profile`` of ingest.py/delivery.py
writes): where the daemon's CPU goes, by area and by hottest functions.

    python bench/profile_summary.py /tmp/daemon.txt [--top 25]

An area is the first of AREAS (in order) whose marker appears anywhere in a sample's stack, so each
sample counts once. uvloop resumes coroutines from C, so many stacks start at a task's coroutine,
not at ``main``: areas are told apart by the frames inside the task.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("config cache load (unit miss)", ("Runtime._unit_or_none",)),
    ("per-account client creation (SSL context)", ("RetailCrmClient.__init__",)),
    ("delivery: RetailCRM HTTP client (httpx)", ("RetailCrmClient._request",)),
    ("delivery: mapping (plan_event)", ("plan_event",)),
    ("delivery: claim query", ("DeliveryStore.claim",)),
    ("delivery: finish/journal write", ("DeliveryStore.finish",)),
    ("delivery: queue depth (/stats)", ("DeliveryStore.queue_depth",)),
    ("delivery: worker/dispatcher other", ("EventWorker.handle", "Dispatcher.")),
    ("ingest: group-commit writer", ("Ingest._write",)),
    ("ingest: event parsing", ("parse_event",)),
    ("uvicorn access log / logging", ("logging/__init__.py", "uvicorn/logging.py")),
    ("uvicorn: sending the answer (socket write in C)", ("RequestResponseCycle.send",)),
    ("ingest: route + Starlette/FastAPI middleware stack", ("post_event", "FastAPI.__call__")),
    ("uvicorn HTTP protocol (parsing, tasks)", ("uvicorn/protocols",)),
    ("psycopg (other)", ("psycopg/",)),
    # stacks sampled without their task's root (py-spy --nonblocking): by library
    ("delivery: RetailCRM HTTP client (httpx)", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("ingest: route + Starlette/FastAPI middleware stack", ("starlette/", "fastapi/")),
    ("event loop (uvloop, in C)", ("Runner.run",)),
]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"].split("site-packages/")[-1].split("/work/main/")[-1]
    return f"{match['func']} ({file})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        frames = stack.split(";")
        leaves[short(frames[-1])] += n
        area = next((name for name, marks in AREAS if any(m in stack for m in marks)), "other")
        areas[area] += n
    print(f"{total} samples\n\nby area:")
    for name, n in areas.most_common():
        print(f"  {n / total:6.1%}  {name}")
    print(f"\nhottest functions (self time), top {args.top}:")
    for name, n in leaves.most_common(args.top):
        print(f"  {n / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
