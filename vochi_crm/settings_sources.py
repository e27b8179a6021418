"""Where each effective setting came from: ``vochi-crm settings`` and the settings reference
(docs/configuration.md) are built from :func:`describe_sources`. Secrets are shown masked."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from vochi_crm.masking import mask_dsn, mask_secret
from vochi_crm.settings import Settings, env_name


@dataclass(frozen=True)
class SettingSource:
    """One effective setting: its environment variable, shown value and where it came from."""

    name: str
    env: str
    value: str | None
    source: Literal["env", "override", "default"]
    description: str


def describe_sources(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> list[SettingSource]:
    """Every leaf setting with its (masked) effective value and origin."""
    env = {k.upper(): v for k, v in os.environ.items()}
    overridden = set(overrides or {})
    return list(_walk(settings, (), env, overridden))


def _walk(
    model: BaseModel, prefix: tuple[str, ...], env: Mapping[str, str], overridden: set[str]
) -> Iterator[SettingSource]:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = (*prefix, name)
        if isinstance(value, BaseModel):
            yield from _walk(value, path, env, overridden)
            continue
        env_var = env_name(path)
        if path[0] in overridden:
            source: Literal["env", "override", "default"] = "override"
        elif env_var in env:
            source = "env"
        else:
            source = "default"
        yield SettingSource(
            name=".".join(path),
            env=env_var,
            value=_show(name, value),
            source=source,
            description=info.description or "",
        )


def _show(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return mask_dsn(raw) if name == "database_url" else mask_secret(raw)
    return str(value)
