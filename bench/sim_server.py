"""The RetailCRM simulator as ``vochi-crm simulator`` serves it (same uvicorn settings), but with
no demo account and a journal large enough for the delivery benchmark's order check.

Usage: python bench/sim_server.py --port 8090 --journal-size 100000
"""

from __future__ import annotations

import argparse

import uvicorn

from vochi_daemon.simulator import create_simulator_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal-size", type=int, default=100_000)
    args = parser.parse_args()
    app = create_simulator_app(seed_demo=False, journal_size=args.journal_size)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
