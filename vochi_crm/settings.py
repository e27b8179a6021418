"""The one ``Settings`` object: built once at the edge (CLI command, daemon factory), passed down.

Environment variables use the ``VOCHI_`` prefix; nested groups use a double underscore
(``VOCHI_DAEMON__PORT=8019``, ``VOCHI_CACHE__TTL_SECONDS=90``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from vochi_crm.errors import FieldError, InvalidInput

ENV_PREFIX = "VOCHI_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NESTED_DELIMITER = "__"


class DaemonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address the daemon listens on.")
    port: int = Field(8019, ge=1, le=65535, description="TCP port the daemon listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the daemon."
    )
    access_log: bool = Field(
        False,
        description="Log every HTTP request (costs ~30 µs per event at full ingest load; "
        "nginx keeps its own access log).",
    )
    trusted_proxies: str = Field(
        "127.0.0.1",
        description="Comma-separated addresses or networks of reverse proxies (nginx) whose "
        "X-Forwarded-For, X-Real-IP, X-Forwarded-Proto and X-Forwarded-Prefix headers are "
        "believed; from any other peer they are ignored. Empty: trust no proxy.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in self.trusted_proxies.split(",")
            if item.strip()
        )


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: float = Field(
        90.0,
        gt=0,
        le=3600,
        description="Insurance TTL of one cached unit config (DESIGN: 60–120 s).",
    )
    refresh_seconds: float = Field(
        240.0, gt=0, le=86400, description="Period of the full cache refresh (DESIGN: 180–300 s)."
    )
    jitter: float = Field(
        0.15,
        ge=0,
        le=0.5,
        description="Relative jitter applied to the refresh period (0.15 = ±15 %).",
    )


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool_min_size: int = Field(1, ge=0, le=100, description="Connections kept open in the pool.")
    pool_max_size: int = Field(10, ge=1, le=200, description="Upper bound of the connection pool.")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="How long to wait for PostgreSQL before giving up."
    )

    @field_validator("pool_max_size")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("pool_min_size")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least pool_min_size ({minimum})")
        return value


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Whether this instance delivers (competes for the dispatcher's lock); false "
        "makes an ingest/API-only instance, for running ingest and delivery in separate processes.",
    )
    retailcrm_timeout_seconds: float = Field(
        2.5, gt=0, le=30, description="Hard timeout of one RetailCRM request (DESIGN: 2–3 s)."
    )
    ring_ttl_seconds: float = Field(
        60.0, gt=0, le=3600, description="A ring (pop-up) event older than this expires unsent."
    )
    max_age_hours: float = Field(
        24.0, gt=0, le=720, description="History events failing this long are marked failed."
    )
    unit_concurrency: int = Field(
        4, ge=1, le=100, description="RetailCRM requests in flight at once for one unit."
    )
    in_flight: int = Field(
        200, ge=1, le=5000, description="Events the dispatcher works on at once (all units)."
    )
    rate_per_second: float = Field(
        10.0, gt=0, le=1000, description="Requests per second per RetailCRM account."
    )
    telephony_rate_per_second: float = Field(
        40.0, gt=0, le=1000, description="Requests per second per account for /telephony/*."
    )
    lease_seconds: float = Field(
        60.0, ge=5, le=3600, description="A claimed event returns to the queue if not done by then."
    )
    poll_seconds: float = Field(
        1.0, gt=0, le=60, description="Queue polling period when no NOTIFY wakes the dispatcher."
    )
    pause_recheck_seconds: float = Field(
        60.0, gt=0, le=3600,
        description="How often a paused unit (wrong key, no access) is probed again.",
    )


class RetailCrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    module_code: str = Field(
        "vochi-telephony",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Code of our telephony integration module in RetailCRM (keep the original's "
        "vochi-telephony so existing installs are updated, not duplicated).",
    )
    module_name: str = Field(
        "Vochi-CRM", min_length=1, description="Name of the module shown in RetailCRM."
    )
    logo_url: str | None = Field(
        None,
        description="SVG logo URL sent with the module (RetailCRM rejects other formats). "
        "Default: <public_base_url>/static/vochi-logo.svg, served by the daemon.",
    )
    check_deadline_seconds: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Upper bound of one test-connection run, however slow RetailCRM is.",
    )

    @field_validator("logo_url")
    @classmethod
    def _svg_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class SshSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_path: Path | None = Field(
        None,
        description="Private key for SSH to the units' PBXes (key authentication only; there "
        "is no password setting). Unset: the user's default keys (~/.ssh/id_ed25519, …).",
    )
    known_hosts: Path | None = Field(
        None,
        description="known_hosts file the PBX host keys are verified against "
        "(entries as [host]:port for ports other than 22). Unset: ~/.ssh/known_hosts.",
    )
    insecure_no_host_key_check: bool = Field(
        False,
        description="Labs only: accept any PBX host key. Logged as a warning at start and on "
        "every new connection.",
    )
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="Upper bound of opening one SSH connection (incl. login)."
    )
    command_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="Upper bound of one command on a PBX (asterisk -rx …)."
    )
    keepalive_seconds: float = Field(
        15.0, gt=0, le=600, description="SSH keep-alive interval of pooled connections."
    )
    idle_close_seconds: float = Field(
        300.0, gt=0, le=86400, description="A pooled connection unused this long is closed."
    )
    max_sessions_per_pbx: int = Field(
        4, ge=1, le=64, description="Commands running at once on one PBX (more wait their turn)."
    )


class SmartRedirectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadline_ms: int = Field(
        1500,
        ge=50,
        le=10000,
        description="Default time budget of the RetailCRM manager lookup; past it the answer is "
        "the fallback. A unit's lookup_deadline_ms overrides it.",
    )
    cache_ttl_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="How long RetailCRM's answer for one phone is reused (per unit; dropped when "
        "the unit's config changes). 0 disables the cache.",
    )
    ignore_status: bool = Field(
        True,
        description="Ask RetailCRM for the responsible manager whatever their status; false: "
        "only a manager whose status is free.",
    )
    click_to_call_wait_seconds: float = Field(
        2.0,
        ge=0,
        le=30,
        description="make-call waits this long for the PBX to accept the originate, so a failure "
        "reaches RetailCRM; a slower PBX finishes in the background (202).",
    )


class AdminSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jwt_secret: SecretStr | None = Field(
        None,
        description="Shared secret of the HS256 tokens the platform (and vochi-crm admin-link) "
        "signs to open the admin UI and to call /api/config with a bearer token. Unset: the admin "
        "UI and the config API refuse everyone.",
    )
    session_hours: float = Field(
        8.0, gt=0, le=168, description="Lifetime of an admin session created from a token."
    )
    link_ttl_seconds: int = Field(
        3600, ge=60, le=86400 * 7, description="Default lifetime of a vochi-crm admin-link token."
    )
    exchange_per_minute: int = Field(
        10,
        ge=1,
        le=10000,
        description="Token exchanges (sign-ins) allowed per client address per minute; more get "
        "429 with Retry-After.",
    )
    timezone: str = Field(
        "Europe/Minsk", description="Time zone of the times and dates shown in the admin UI."
    )

    @field_validator("jwt_secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters long (HS256 needs a strong secret)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Minsk, UTC)") from None
        return value


class Settings(BaseSettings):
    """Every knob of vochi-crm, with the environment variable that sets it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL of the platform database. Unset: embedded cluster in data_dir.",
    )
    data_dir: Path | None = Field(
        None,
        description="Where the embedded PostgreSQL lives. Default: the user's data directory "
        "(/var/lib/vochi-crm when run as root).",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts RetailCRM API keys at rest (AES-256-GCM, key derived with "
        "HKDF; at least 16 characters; vochi-crm secrets new-key makes one). Unset: keys are "
        "stored in plaintext and the daemon warns.",
    )
    secret_key_previous: SecretStr | None = Field(
        None,
        description="Earlier VOCHI_SECRET_KEY value(s), comma-separated, still accepted for "
        "reading during a key rotation (vochi-crm secrets rotate).",
    )
    internal_token: SecretStr | None = Field(
        None,
        description="Token non-loopback call services must send as X-Internal-Token.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8019",
        description="Public address of the daemon (behind nginx), used in RetailCRM callback URLs.",
    )
    daemon: DaemonSettings = Field(default_factory=DaemonSettings, description="The HTTP daemon.")
    cache: CacheSettings = Field(default_factory=CacheSettings, description="The config cache.")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Delivery to RetailCRM."
    )
    database: DatabaseSettings = Field(
        default_factory=DatabaseSettings,
        description="Connection pool.",
    )
    retailcrm: RetailCrmSettings = Field(
        default_factory=RetailCrmSettings,
        description="Our integration module in RetailCRM and the connection test.",
    )
    admin: AdminSettings = Field(
        default_factory=AdminSettings, description="The admin web UI and its authentication."
    )
    ssh: SshSettings = Field(
        default_factory=SshSettings, description="SSH to the units' PBXes (Asterisk CLI)."
    )
    smart_redirect: SmartRedirectSettings = Field(
        default_factory=SmartRedirectSettings,
        description="Smart redirect (manager lookup) and click-to-call.",
    )

    @field_validator("secret_key", "secret_key_previous")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        parts = [p.strip() for p in (value.get_secret_value() if value else "").split(",")]
        if value is not None and any(len(p) < 16 for p in parts if p):
            raise ValueError("a secret key must be at least 16 characters long")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment plus explicit overrides (e.g. CLI flags).

    Raises :class:`InvalidInput` naming every bad variable.
    """
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise InvalidInput.one(_group_of(str(exc)), f"cannot be read: {exc}") from None
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldError(env_name(tuple(str(p) for p in err["loc"])), err["msg"])
                for err in exc.errors()
            ],
            message=None,
        ) from None


def _group_of(message: str) -> str:
    """Name the environment variable pydantic-settings could not parse (it says which group)."""
    for name in Settings.model_fields:
        if f'"{name}"' in message or f"'{name}'" in message:
            return env_name((name,))
    return ENV_PREFIX + "*"


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(p.upper() for p in path)
