"""``python -m vochi_daemon.simulator [--host H] [--port P]``: the simulator without the CLI."""

from __future__ import annotations

import argparse

from vochi_daemon.simulator.app import DEFAULT_PORT, serve


def main() -> None:
    parser = argparse.ArgumentParser(description="RetailCRM API v5 simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    serve(args.host, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
