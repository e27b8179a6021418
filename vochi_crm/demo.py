"""Use-cases behind ``vochi-crm demo`` that are not user interface.

The CLI command starts the processes (simulator, daemon) and draws the live display; this module
prepares the demo unit in the database, reads the daemon's ``/stats`` into the few numbers the demo
shows, and tells when the calls it played are delivered.

The demo unit is ``demo``: its RetailCRM account is the simulator's public ``demo`` account (API
key ``demo-key-not-secret-0001``, a documented fake), extensions 150/151/152 mapped to the
account's users 19/16/18. Preparing it again (a second demo run) only points it at the new
simulator address; nothing else in the database is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vochi_crm.db.embedded import EmbeddedPostgres, default_data_dir
from vochi_crm.errors import NotFound, VochiError
from vochi_crm.masking import mask_secret
from vochi_crm.retailcrm_config import change_from_values

if TYPE_CHECKING:
    from vochi_crm.runtime import Runtime
    from vochi_crm.settings import Settings

DEMO_UNIT = "demo"
DEMO_UNIT_NAME = "Demo shop (vochi-crm demo)"
DEMO_TOKEN = "375290000999"  # noqa: S105 - an Asterisk unit token, not a secret
"""The demo unit's Asterisk ``Token`` (not the scenarios' ``375290000000``, which the README's
example unit uses, so the two never share a token)."""
DEMO_ACCOUNT = "demo"
DEMO_API_KEY = "demo-key-not-secret-0001"
"""The simulator's demo account key: public by design (the simulator defines the same value)."""
DEMO_MAPPING: Mapping[str, int] = {"150": 19, "151": 16, "152": 18}
"""Extension → user id of the simulator's demo account (Oleg, Ivan, Anna)."""
FINAL_OUTCOMES = ("delivered", "skipped", "failed", "expired")


class DemoUnitUnusable(VochiError):
    title = "Demo unit unusable"


@dataclass(frozen=True)
class DemoUnit:
    number: str
    name: str
    token: str
    api_url: str
    api_key_masked: str
    mapping: Mapping[str, int]
    created: bool
    """False when the unit was left by an earlier demo run and only re-pointed."""


async def prepare_demo_unit(runtime: Runtime, simulator_url: str) -> DemoUnit:
    """Create (or update) the demo unit so its RetailCRM account is the simulator at
    ``simulator_url``, enabled, with :data:`DEMO_MAPPING`. Saving it queues the module
    registration, which the daemon delivers to the simulator like any config save."""
    created = False
    try:
        unit = await runtime.units.get(DEMO_UNIT)
    except NotFound:
        unit = await runtime.units.add(DEMO_UNIT, DEMO_UNIT_NAME, token=DEMO_TOKEN)
        created = True
    if not unit.active:
        raise DemoUnitUnusable(
            f"unit {DEMO_UNIT!r} exists but is not active, so it would take no events; "
            "activate it on the platform or use another data directory (VOCHI_DATA_DIR)"
        )
    change = change_from_values(
        {
            "api_url": simulator_url,
            "api_key": DEMO_API_KEY,
            "enabled": True,
            "user_mappings": dict(DEMO_MAPPING),
        }
    )
    unit = await runtime.configs.update(DEMO_UNIT, change)
    config = unit.retailcrm
    return DemoUnit(
        number=unit.number,
        name=unit.name,
        token=unit.token or DEMO_TOKEN,
        api_url=config.api_url or simulator_url,
        api_key_masked=mask_secret(config.api_key) or "",
        mapping=dict(config.user_mappings),
        created=created,
    )


def demo_settings(settings: Settings) -> Settings:
    """The demo always runs on the embedded PostgreSQL: it never writes its demo unit into a
    platform database, whatever ``VOCHI_DATABASE_URL`` says."""
    data_dir = settings.data_dir or default_data_dir()
    return settings.model_copy(update={"database_url": None, "data_dir": data_dir})


def stop_embedded_if_unused(data_dir: Path) -> bool:
    """Stop the embedded cluster in ``data_dir`` unless some process still uses it.

    For after a daemon had to be killed (a killed process cannot stop the cluster it was the
    last user of). True when it was stopped."""
    cluster = EmbeddedPostgres(data_dir)
    if not (cluster.pgdata / "postmaster.pid").exists():
        return False
    cluster.acquire()
    return cluster.release()


@dataclass(frozen=True)
class DeliverySummary:
    """What the demo shows of the daemon's ``/stats`` for one unit."""

    ingest_accepted: int = 0
    """Events the daemon stored (all units: the demo daemon serves the demo unit only)."""
    processed: int = 0
    """Events of the unit in a final state: delivered, skipped (e.g. internal calls), failed,
    expired."""
    delivered: int = 0
    skipped: int = 0
    failed: int = 0
    expired: int = 0
    retried: int = 0
    requests_ok: int = 0
    requests_error: int = 0
    queue_pending: int = 0
    in_flight: int = 0
    dispatcher: bool = False
    """The daemon runs delivery (its ``/stats`` has a ``delivery`` part)."""
    leader: bool = False
    """This daemon delivers; another daemon on the same database may be the one that does."""
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    alerts: tuple[str, ...] = ()
    last_error: str | None = None

    @property
    def failures(self) -> int:
        return self.failed + self.expired

    @property
    def requests(self) -> int:
        return self.requests_ok + self.requests_error

    @property
    def idle(self) -> bool:
        """Nothing of the unit waits in the queue (read from the database, so true whichever
        daemon delivers) and nothing is being delivered here."""
        return self.dispatcher and self.queue_pending == 0 and self.in_flight == 0


def summarize_stats(stats: Mapping[str, Any], unit: str = DEMO_UNIT) -> DeliverySummary:
    """Read the daemon's ``GET /stats`` body; missing parts read as zero, never raise."""
    ingest = _mapping(stats.get("ingest"))
    delivery = _mapping(stats.get("delivery"))
    counters = _mapping(_mapping(delivery.get("per_unit")).get(unit))
    latency = _mapping(delivery.get("retailcrm_latency_ms"))
    pending = sum(
        _int(row.get("pending"))
        for row in _list(delivery.get("queue"))
        if isinstance(row, Mapping) and row.get("unit") == unit
    )
    alerts = tuple(
        str(alert.get("message") or alert.get("reason") or "alert")
        for alert in _list(delivery.get("alerts"))
        if isinstance(alert, Mapping) and alert.get("unit") in (None, unit)
    )
    last_error = counters.get("last_error")
    return DeliverySummary(
        ingest_accepted=_int(ingest.get("accepted")),
        processed=sum(_int(counters.get(name)) for name in FINAL_OUTCOMES),
        delivered=_int(counters.get("delivered")),
        skipped=_int(counters.get("skipped")),
        failed=_int(counters.get("failed")),
        expired=_int(counters.get("expired")),
        retried=_int(counters.get("retried")),
        requests_ok=_int(counters.get("requests_ok")),
        requests_error=_int(counters.get("requests_error")),
        queue_pending=pending,
        in_flight=_int(delivery.get("in_flight")),
        dispatcher=bool(delivery),
        leader=bool(delivery.get("leader")),
        latency_p50_ms=_float(latency.get("p50")),
        latency_p99_ms=_float(latency.get("p99")),
        alerts=alerts,
        last_error=str(last_error) if last_error else None,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
