"""A faithful RetailCRM API v5 simulator for tests, the demo and the benchmarks (DESIGN §7).

``create_simulator_app()`` builds the ASGI app; ``serve()`` runs it (``vochi-crm simulator``).
Without accounts it serves the ``demo`` account, API key ``demo-key-not-secret-0001`` — a public,
documented fake. Control surface: ``/_sim/*`` (see :mod:`vochi_daemon.simulator.control`).
"""

from __future__ import annotations

from vochi_daemon.simulator.app import DEFAULT_PORT, Simulator, create_simulator_app, serve
from vochi_daemon.simulator.state import DEMO_ACCOUNT, DEMO_API_KEY

__all__ = [
    "DEFAULT_PORT",
    "DEMO_ACCOUNT",
    "DEMO_API_KEY",
    "Simulator",
    "create_simulator_app",
    "serve",
]
