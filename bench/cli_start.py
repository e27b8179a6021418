"""``vochi-crm --help`` start time versus ``python -c pass`` (the interpreter's own start), in one
run: hyperfine when installed (``-N``: no shell in between), else ``--runs`` timed subprocess runs.

    python bench/cli_start.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import VOCHI, machine, report


def with_hyperfine(commands: list[str], runs: int) -> tuple[list[dict[str, float]], str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hyperfine.json"
        argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs)]
        subprocess.run(
            [*argv, "--export-json", str(out), *commands], check=True, capture_output=True
        )
        data = json.loads(out.read_text())["results"]
    stats = [
        {
            "mean_ms": r["mean"] * 1000,
            "median_ms": r["median"] * 1000,
            "stddev_ms": r["stddev"] * 1000,
        }
        for r in data
    ]
    return stats, " ".join([*argv, *(f"'{c}'" for c in commands)])


def with_perf_counter(commands: list[str], runs: int) -> tuple[list[dict[str, float]], str]:
    stats = []
    for command in commands:
        argv = command.split()
        for _ in range(3):  # warm-up: page cache, .pyc files
            subprocess.run(argv, capture_output=True, check=True)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times.append((time.perf_counter() - started) * 1000)
        stats.append(
            {
                "mean_ms": statistics.mean(times),
                "median_ms": statistics.median(times),
                "stddev_ms": statistics.stdev(times),
            }
        )
    return stats, f"{runs} × subprocess.run timed with time.perf_counter"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-hyperfine", action="store_true")
    args = parser.parse_args()
    commands = [f"{VOCHI} --help", f"{sys.executable} -c pass"]
    use_hyperfine = shutil.which("hyperfine") is not None and not args.no_hyperfine
    measure = with_hyperfine if use_hyperfine else with_perf_counter
    (cli, bare), how = measure(commands, args.runs)
    report(
        "cli start",
        {
            "command": how,
            "vochi-crm --help": {k: round(v, 1) for k, v in cli.items()},
            "python -c pass (baseline)": {k: round(v, 1) for k, v in bare.items()},
            "ratio (mean)": round(cli["mean_ms"] / bare["mean_ms"], 2),
            "overhead over the interpreter ms": round(cli["mean_ms"] - bare["mean_ms"], 1),
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
