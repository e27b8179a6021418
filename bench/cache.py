"""The config cache: cost of a hit (``SnapshotCache.get``) and memory per 1,000 units.

Hit path: ``await cache.get(key)`` on a warm cache, ``--calls`` times over 1,000 keys, against
the baseline ``await lookup(key)``, an ``async def`` returning ``d[key]`` from a plain dict (so
both pay for one coroutine call; the ratio is what the cache adds: the TTL clock read, the entry
check, the hit counter). Best of ``--repeat`` runs each, interleaved.

Memory: 10,000 synthetic units (the row shape ``UNITS_LIST`` returns, a RetailCRM config with an
API key and 10 extension mappings) turned into ``Unit`` objects in a ``SnapshotCache`` via
``refresh_all``; measured with tracemalloc (Python heap) and, in a fresh interpreter without
tracemalloc, as the RSS growth. Baseline: the same rows as plain dicts (what psycopg hands over),
so the ratio is the cost of the model and the cache over the raw data.

    python bench/cache.py [--calls 1000000] [--units 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from common import machine, report

from vochi_crm.cache import SnapshotCache
from vochi_crm.units import Unit, unit_from_row

KEYS = 1000


def row(i: int) -> dict[str, Any]:
    return {
        "number": f"{i:05d}",
        "name": f"Shop number {i}",
        "name2": f"37529{i:07d}",
        "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "host": None,
        "active": True,
        "ssh_port": 5059,
        "ssh_user": "root",
        "retailcrm": {
            "enabled": True,
            "api_url": f"https://shop{i}.retailcrm.ru",
            "api_key": f"k{i:031d}",
            "user_mappings": {str(150 + n): 16 + n for n in range(10)},
        },
    }


def cache_of(units: Mapping[str, Unit | None]) -> SnapshotCache[str, Unit | None]:
    async def load_one(key: str) -> Unit | None:
        return units.get(key)

    async def load_all() -> Mapping[str, Unit | None]:
        return units

    return SnapshotCache(load_one, load_all, ttl=3600, refresh_every=3600)


async def hit_path(calls: int, repeat: int) -> dict[str, Any]:
    units = {f"{i:05d}": unit_from_row(row(i)) for i in range(KEYS)}
    cache = cache_of(units)
    await cache.refresh_all()
    keys = list(units)
    plain = dict(units)

    async def lookup(key: str) -> Unit | None:
        return plain[key]

    async def timed(get: Callable[[str], Any]) -> float:
        started = time.perf_counter()
        for i in range(calls):
            await get(keys[i % KEYS])
        return time.perf_counter() - started

    cache_times, dict_times = [], []
    for _ in range(repeat):
        dict_times.append(await timed(lookup))
        cache_times.append(await timed(cache.get))
    assert cache.metrics.misses == 0
    best_cache, best_dict = min(cache_times), min(dict_times)
    return {
        "calls": calls,
        "SnapshotCache.get ns/call": round(best_cache / calls * 1e9, 1),
        "async dict lookup ns/call (baseline)": round(best_dict / calls * 1e9, 1),
        "ratio cache/dict": round(best_cache / best_dict, 2),
    }


def rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def build(what: str, n: int) -> object:
    if what == "rows":
        return [row(i) for i in range(n)]
    cache = cache_of({u.number: u for u in (unit_from_row(row(i)) for i in range(n))})
    asyncio.run(cache.refresh_all())  # the cache's snapshot now holds the only references
    assert cache.stats()["size"] == n
    return cache


def heap_growth(what: str, n: int) -> int:
    gc.collect()
    tracemalloc.start()
    kept = build(what, n)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size


def rss_growth(what: str, n: int) -> int:
    """In a fresh interpreter, so memory freed by an earlier build is not reused."""
    code = (
        "import gc, cache; gc.collect(); before = cache.rss(); "
        f"kept = cache.build({what!r}, {n}); gc.collect(); print(cache.rss() - before)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return int(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--units", type=int, default=10_000)
    args = parser.parse_args()

    hits = asyncio.run(hit_path(args.calls, args.repeat))
    heap_rows, heap_cache = heap_growth("rows", args.units), heap_growth("cache", args.units)
    rss_rows, rss_cache = rss_growth("rows", args.units), rss_growth("cache", args.units)
    per = args.units / 1000
    report(
        "cache",
        {
            **hits,
            "units": args.units,
            "cache KiB per 1,000 units (tracemalloc)": round(heap_cache / per / 1024),
            "raw rows KiB per 1,000 units (tracemalloc, baseline)": round(heap_rows / per / 1024),
            "ratio cache/rows (tracemalloc)": round(heap_cache / heap_rows, 2),
            "cache KiB per 1,000 units (RSS growth)": round(rss_cache / per / 1024),
            "raw rows KiB per 1,000 units (RSS growth)": round(rss_rows / per / 1024),
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
