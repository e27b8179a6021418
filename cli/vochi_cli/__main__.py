"""``python -m vochi_cli``."""

from vochi_cli.main import run

run()
