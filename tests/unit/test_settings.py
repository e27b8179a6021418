"""Settings: defaults, VOCHI_* environment variables, errors named by variable, masked sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from vochi_crm.errors import InvalidInput
from vochi_crm.settings import (
    CacheSettings,
    DaemonSettings,
    DatabaseSettings,
    Settings,
    env_name,
    load_settings,
)
from vochi_crm.settings_sources import SettingSource, describe_sources

ALL_NAMES = {
    "database_url",
    "data_dir",
    "secret_key",
    "internal_token",
    "public_base_url",
    "daemon.host",
    "daemon.port",
    "daemon.log_level",
    "daemon.access_log",
    "cache.ttl_seconds",
    "cache.refresh_seconds",
    "cache.jitter",
    "database.pool_min_size",
    "database.pool_max_size",
    "database.connect_timeout_seconds",
    "retailcrm.module_code",
    "retailcrm.module_name",
    "retailcrm.logo_url",
    "retailcrm.check_deadline_seconds",
    "delivery.enabled",
    "delivery.retailcrm_timeout_seconds",
    "delivery.ring_ttl_seconds",
    "delivery.max_age_hours",
    "delivery.unit_concurrency",
    "delivery.in_flight",
    "delivery.rate_per_second",
    "delivery.telephony_rate_per_second",
    "delivery.lease_seconds",
    "delivery.poll_seconds",
    "delivery.pause_recheck_seconds",
    "daemon.trusted_proxies",
    "ssh.key_path",
    "ssh.known_hosts",
    "ssh.insecure_no_host_key_check",
    "ssh.connect_timeout_seconds",
    "ssh.command_timeout_seconds",
    "ssh.keepalive_seconds",
    "ssh.idle_close_seconds",
    "ssh.max_sessions_per_pbx",
    "smart_redirect.deadline_ms",
    "smart_redirect.cache_ttl_seconds",
    "smart_redirect.ignore_status",
    "smart_redirect.click_to_call_wait_seconds",
    "secret_key_previous",
    "admin.jwt_secret",
    "admin.session_hours",
    "admin.link_ttl_seconds",
    "admin.exchange_per_minute",
    "admin.timezone",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VOCHI_* variable of the real environment leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("VOCHI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file either


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f.field for f in exc.value.fields]


def by_name(sources: list[SettingSource]) -> dict[str, SettingSource]:
    return {s.name: s for s in sources}


# -- defaults and environment --------------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert settings.daemon.host == "127.0.0.1"
    assert settings.daemon.port == 8019
    assert settings.daemon.log_level == "info"
    assert settings.public_base_url == "http://127.0.0.1:8019"
    assert settings.database_url is None
    assert settings.data_dir is None
    assert settings.secret_key is None
    assert settings.internal_token is None
    assert settings.cache.ttl_seconds == 90.0
    assert settings.cache.refresh_seconds == 240.0
    assert settings.cache.jitter == 0.15
    assert settings.database.pool_min_size == 1
    assert settings.database.pool_max_size == 10
    assert settings.database.connect_timeout_seconds == 5.0


def test_env_vars_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "9000")
    monkeypatch.setenv("VOCHI_DAEMON__HOST", "0.0.0.0")
    monkeypatch.setenv("VOCHI_DAEMON__LOG_LEVEL", "debug")
    monkeypatch.setenv("VOCHI_CACHE__TTL_SECONDS", "60")
    monkeypatch.setenv("VOCHI_DATABASE__POOL_MAX_SIZE", "20")
    monkeypatch.setenv("VOCHI_PUBLIC_BASE_URL", "https://crm.example.com/")
    monkeypatch.setenv("VOCHI_DATABASE_URL", "postgresql://u:p@db/vochi")
    monkeypatch.setenv("VOCHI_SECRET_KEY", "s3cret-key-value")
    monkeypatch.setenv("VOCHI_DATA_DIR", "/srv/vochi")
    settings = load_settings()
    assert settings.daemon.port == 9000
    assert settings.daemon.host == "0.0.0.0"
    assert settings.daemon.log_level == "debug"
    assert settings.cache.ttl_seconds == 60.0
    assert settings.cache.refresh_seconds == 240.0  # untouched sibling keeps its default
    assert settings.database.pool_max_size == 20
    assert settings.public_base_url == "https://crm.example.com"  # trailing slash stripped
    assert isinstance(settings.database_url, SecretStr)
    assert settings.database_url.get_secret_value() == "postgresql://u:p@db/vochi"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "s3cret-key-value"
    assert settings.data_dir == Path("/srv/vochi")


def test_env_var_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("vochi_daemon__port", "9001")
    assert load_settings().daemon.port == 9001


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAEMON__PORT", "9002")
    monkeypatch.setenv("PUBLIC_BASE_URL", "ftp://ignored")
    settings = load_settings()
    assert settings.daemon.port == 8019
    assert settings.public_base_url == "http://127.0.0.1:8019"


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_PUBLIC_BASE_URL", "https://from-env.example")
    settings = load_settings(public_base_url="https://from-flag.example/")
    assert settings.public_base_url == "https://from-flag.example"


def test_secrets_are_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_SECRET_KEY", "very-secret-key-4321")
    monkeypatch.setenv("VOCHI_DATABASE_URL", "postgresql://u:hunter2pw@db/vochi")
    settings = load_settings()
    assert "very-secret-key-4321" not in repr(settings)
    assert "hunter2pw" not in repr(settings)


# -- errors --------------------------------------------------------------------------------------


def test_bad_port_is_named_by_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "70000")
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert fields_of(exc) == ["VOCHI_DAEMON__PORT"]
    assert "VOCHI_DAEMON__PORT" in str(exc.value)
    assert exc.value.exit_code == 2


def test_bad_public_url_is_named_by_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_PUBLIC_BASE_URL", "ftp://x")
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert fields_of(exc) == ["VOCHI_PUBLIC_BASE_URL"]
    assert "http" in exc.value.fields[0].message


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "0")
    monkeypatch.setenv("VOCHI_PUBLIC_BASE_URL", "ftp://x")
    monkeypatch.setenv("VOCHI_DAEMON__LOG_LEVEL", "verbose")
    monkeypatch.setenv("VOCHI_CACHE__TTL_SECONDS", "-1")
    monkeypatch.setenv("VOCHI_CACHE__JITTER", "0.9")
    monkeypatch.setenv("VOCHI_DATABASE__POOL_MAX_SIZE", "many")
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert sorted(fields_of(exc)) == sorted(
        [
            "VOCHI_DAEMON__PORT",
            "VOCHI_PUBLIC_BASE_URL",
            "VOCHI_DAEMON__LOG_LEVEL",
            "VOCHI_CACHE__TTL_SECONDS",
            "VOCHI_CACHE__JITTER",
            "VOCHI_DATABASE__POOL_MAX_SIZE",
        ]
    )


def test_unknown_nested_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DAEMON__BOGUS", "1")
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert fields_of(exc) == ["VOCHI_DAEMON__BOGUS"]


def test_bad_override_is_named_by_its_env_var() -> None:
    with pytest.raises(InvalidInput) as exc:
        load_settings(daemon={"port": 70000}, public_base_url="x")
    assert sorted(fields_of(exc)) == ["VOCHI_DAEMON__PORT", "VOCHI_PUBLIC_BASE_URL"]


@pytest.mark.parametrize("value", ["not json", "{bad", "[1, 2]"])
def test_malformed_group_variable_is_invalid_input(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``VOCHI_DAEMON`` (a whole group as JSON) that does not parse is bad input, not a crash."""
    monkeypatch.setenv("VOCHI_DAEMON", value)
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert fields_of(exc)
    assert all(f.startswith("VOCHI_DAEMON") for f in fields_of(exc))


def test_pool_min_size_above_max_size_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg_pool refuses max_size < min_size at daemon start; the settings should say so."""
    monkeypatch.setenv("VOCHI_DATABASE__POOL_MIN_SIZE", "20")
    monkeypatch.setenv("VOCHI_DATABASE__POOL_MAX_SIZE", "10")
    with pytest.raises(InvalidInput) as exc:
        load_settings()
    assert set(fields_of(exc)) & {"VOCHI_DATABASE__POOL_MIN_SIZE", "VOCHI_DATABASE__POOL_MAX_SIZE"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("daemon", "port"), "VOCHI_DAEMON__PORT"),
        (("public_base_url",), "VOCHI_PUBLIC_BASE_URL"),
        (("cache", "ttl_seconds"), "VOCHI_CACHE__TTL_SECONDS"),
    ],
)
def test_env_name(path: tuple[str, ...], expected: str) -> None:
    assert env_name(path) == expected


# -- describe_sources ----------------------------------------------------------------------------


def test_describe_sources_lists_every_leaf_with_defaults() -> None:
    sources = describe_sources(load_settings())
    assert {s.name for s in sources} == ALL_NAMES
    assert len(sources) == len(ALL_NAMES)
    for source in sources:
        assert source.source == "default"
        assert source.env == env_name(tuple(source.name.split(".")))
        assert source.description.strip(), source.name
    named = by_name(sources)
    assert named["daemon.port"].value == "8019"
    assert named["daemon.host"].value == "127.0.0.1"
    assert named["daemon.port"].env == "VOCHI_DAEMON__PORT"
    assert named["database_url"].value is None
    assert named["secret_key"].value is None


def test_describe_sources_reports_env_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DAEMON__PORT", "9000")
    overrides = {"public_base_url": "https://flag.example"}
    named = by_name(describe_sources(load_settings(**overrides), overrides))
    assert named["daemon.port"].source == "env"
    assert named["daemon.port"].value == "9000"
    assert named["public_base_url"].source == "override"
    assert named["public_base_url"].value == "https://flag.example"
    assert named["daemon.host"].source == "default"


def test_describe_sources_env_detection_is_case_insensitive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("vochi_cache__jitter", "0.1")
    named = by_name(describe_sources(load_settings()))
    assert named["cache.jitter"].source == "env"
    assert named["cache.jitter"].value == "0.1"


def test_describe_sources_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_SECRET_KEY", "supersecretvalue1234")
    monkeypatch.setenv("VOCHI_INTERNAL_TOKEN", "internal-token-abcd9876")
    monkeypatch.setenv("VOCHI_DATABASE_URL", "postgresql://vochi:hunter2pass@db.example:5432/vochi")
    sources = describe_sources(load_settings())
    named = by_name(sources)
    assert named["secret_key"].value == "••••1234"
    assert named["secret_key"].source == "env"
    assert named["internal_token"].value == "••••9876"
    db = named["database_url"].value
    assert db is not None
    assert "hunter2pass" not in db
    assert "db.example:5432/vochi" in db
    assert db.startswith("postgresql://vochi:")
    everything = " ".join(str(s) for s in sources)
    for secret in ("supersecretvalue1234", "internal-token-abcd9876", "hunter2pass"):
        assert secret not in everything


def test_describe_sources_masks_conninfo_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCHI_DATABASE_URL", "host=db user=vochi password=hunter2pass dbname=v")
    value = by_name(describe_sources(load_settings()))["database_url"].value
    assert value is not None
    assert "hunter2pass" not in value
    assert "host=db" in value


# -- documentation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [Settings, DaemonSettings, CacheSettings, DatabaseSettings], ids=lambda m: m.__name__
)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    assert model.model_fields
    for name, info in model.model_fields.items():
        assert info.description and info.description.strip(), f"{model.__name__}.{name}"
