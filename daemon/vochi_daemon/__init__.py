"""The vochi-crm daemon: a FastAPI view of the core (events, config API, health, stats)."""
