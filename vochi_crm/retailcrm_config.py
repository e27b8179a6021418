"""A unit's RetailCRM config (``enterprises.integrations_config -> 'retailcrm'``): pure model code.

Stored objects come in several historical shapes (reference B2): the address as ``api_url`` or
``domain``; the mapping as ``user_mappings`` (extension → user id) or ``user_extensions`` (user id →
extension, the inverse). :func:`read_stored` accepts all of them; :func:`to_stored` writes the
canonical keys, keeps every key it does not know, and keeps legacy keys that were present in sync,
so older readers never see a stale value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from vochi_crm.asterisk import CONTEXT, validate_context
from vochi_crm.errors import FieldError, InvalidInput
from vochi_crm.masking import mask_secret

EXTENSION = re.compile(r"^[0-9]{2,5}$")
PBX_KEYS = (
    "redirect_enabled",
    "redirect_context",
    "fallback_extension",
    "lookup_deadline_ms",
    "originate_context",
    "outbound_context",
)
"""PBX keys (smart redirect, click-to-call): absent means the default (redirect off, contexts
``inoffice`` / ``web-originate`` / ``inoffice``, no fallback, the global lookup deadline)."""
KNOWN_KEYS = frozenset(
    {
        "enabled",
        "api_url",
        "domain",
        "api_key",
        "user_mappings",
        "user_extensions",
        "client_id",
        "last_sync",
        *PBX_KEYS,
    }
)
SETTABLE = ("api_url", "api_key", "enabled", "client_id", *PBX_KEYS)
DEADLINE_MS_RANGE = (50, 10000)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class RetailCrmConfig:
    enabled: bool = False
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    user_mappings: Mapping[str, int] = field(default_factory=dict)
    client_id: str | None = field(default=None, repr=False)
    last_sync: str | None = None
    redirect_enabled: bool = False
    redirect_context: str | None = None
    fallback_extension: str | None = None
    lookup_deadline_ms: int | None = None
    originate_context: str | None = None
    outbound_context: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.api_url and self.api_key)

    def pbx_settings(self) -> dict[str, Any]:
        """The PBX keys that are set (redirect on, a context, a fallback, a deadline)."""
        values = {key: getattr(self, key) for key in PBX_KEYS}
        return {k: v for k, v in values.items() if v is not None and v is not False}

    def public(self) -> dict[str, Any]:
        """The config as it may be shown anywhere: the API key masked to its last 4 characters."""
        return {
            "enabled": self.enabled,
            "api_url": self.api_url,
            "api_key": mask_secret(self.api_key),
            "user_mappings": dict(sorted(self.user_mappings.items())),
            "client_id": mask_secret(self.client_id),
            "last_sync": self.last_sync,
            **self.pbx_settings(),
        }


@dataclass(frozen=True)
class ConfigChange:
    """What one save changes. ``None`` leaves a value as it is; mapping edits merge."""

    enabled: bool | None = None
    api_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    map: Mapping[str, int] = field(default_factory=dict)
    unmap: tuple[str, ...] = ()
    replace_mappings: Mapping[str, int] | None = None
    pbx: Mapping[str, Any] = field(default_factory=dict)
    """Validated PBX keys to change; a ``None`` value resets one to its default."""

    @property
    def empty(self) -> bool:
        return self == ConfigChange()


# -- reading -------------------------------------------------------------------------------------


def read_stored(raw: Mapping[str, Any] | None) -> RetailCrmConfig:
    """Normalise any historical variant. Lenient: stored junk is skipped, never fatal."""
    if not isinstance(raw, Mapping):
        return RetailCrmConfig()
    url = next(
        (v for v in (raw.get("api_url"), raw.get("domain")) if isinstance(v, str) and v.strip()),
        None,
    )
    return RetailCrmConfig(
        enabled=bool(_as_bool(raw.get("enabled"), default=False)),
        api_url=normalise_url(url) if url is not None else None,
        api_key=raw.get("api_key") if isinstance(raw.get("api_key"), str) else None,
        user_mappings=_stored_mapping(raw),
        client_id=raw.get("client_id") if isinstance(raw.get("client_id"), str) else None,
        last_sync=str(raw["last_sync"]) if raw.get("last_sync") is not None else None,
        **_stored_pbx(raw),
    )


def _stored_pbx(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The PBX keys as stored; a value that does not validate is ignored (the default applies)."""
    values: dict[str, Any] = {
        "redirect_enabled": bool(_as_bool(raw.get("redirect_enabled"), default=False))
    }
    for key in ("redirect_context", "originate_context", "outbound_context"):
        value = raw.get(key)
        values[key] = value if isinstance(value, str) and CONTEXT.fullmatch(value) else None
    fallback = raw.get("fallback_extension")
    fallback = str(fallback) if isinstance(fallback, str | int) else None
    values["fallback_extension"] = (
        fallback if fallback is not None and EXTENSION.fullmatch(fallback) else None
    )
    deadline = _as_int(raw.get("lookup_deadline_ms"))
    low, high = DEADLINE_MS_RANGE
    in_range = deadline is not None and low <= deadline <= high
    values["lookup_deadline_ms"] = deadline if in_range else None
    return values


def _stored_mapping(raw: Mapping[str, Any]) -> dict[str, int]:
    """Entries that are not an extension → a positive user id are skipped, not fatal."""
    pairs: list[tuple[object, object]] = []
    legacy = raw.get("user_extensions")
    if isinstance(legacy, Mapping):
        pairs.extend((ext, user_id) for user_id, ext in legacy.items())  # null = unassigned
    current = raw.get("user_mappings")
    if isinstance(current, Mapping):
        pairs.extend(current.items())  # later entries win: user_mappings over user_extensions
    mapping: dict[str, int] = {}
    for ext, user_id in pairs:
        uid = _as_int(user_id)
        number = (
            str(ext).strip() if isinstance(ext, str | int) and not isinstance(ext, bool) else ""
        )
        if EXTENSION.match(number) and uid is not None and uid > 0:
            mapping[number] = uid
    return mapping


# -- writing -------------------------------------------------------------------------------------


def apply_change(config: RetailCrmConfig, change: ConfigChange) -> RetailCrmConfig:
    """The config after ``change``; a mapping is only replaced when asked to, never by a save.

    Raises :class:`InvalidInput` when the result would be unusable (enabled without credentials)
    or the change names an extension that is not mapped.
    """
    mappings = dict(
        config.user_mappings if change.replace_mappings is None else change.replace_mappings
    )
    mappings.update(change.map)
    unmap = dict.fromkeys(change.unmap)
    unknown = [ext for ext in unmap if ext not in mappings]
    if unknown:
        raise InvalidInput([FieldError(ext, "this extension is not mapped") for ext in unknown])
    for ext in unmap:
        del mappings[ext]
    result = replace(
        config,
        enabled=config.enabled if change.enabled is None else change.enabled,
        api_url=config.api_url if change.api_url is None else change.api_url,
        api_key=config.api_key if change.api_key is None else change.api_key,
        client_id=config.client_id if change.client_id is None else change.client_id,
        user_mappings=mappings,
        **_pbx_values(change.pbx),
    )
    fallback = change.pbx.get("fallback_extension")
    if fallback is not None and fallback not in result.user_mappings:
        raise InvalidInput.one(
            "fallback_extension", f"{fallback} is not a mapped extension of this unit"
        )
    if change.enabled and not result.configured:
        missing = [name for name in ("api_url", "api_key") if not getattr(result, name)]
        raise InvalidInput(
            [FieldError(name, "is required to enable the integration") for name in missing]
        )
    return result


def _pbx_values(pbx: Mapping[str, Any]) -> dict[str, Any]:
    """``redirect_enabled`` reset (``None``) means off; the other keys reset to ``None``."""
    return {k: (False if k == "redirect_enabled" and v is None else v) for k, v in pbx.items()}


def to_stored(config: RetailCrmConfig, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON object to store: canonical keys, unknown keys kept, legacy keys kept in sync."""
    stored: dict[str, Any] = dict(previous) if isinstance(previous, Mapping) else {}
    stored["enabled"] = config.enabled
    _put(stored, "api_url", config.api_url)
    _put(stored, "api_key", config.api_key)
    _put(stored, "client_id", config.client_id)
    for key in PBX_KEYS:
        _put(stored, key, getattr(config, key) or None)
    stored["user_mappings"] = dict(sorted(config.user_mappings.items()))
    if "domain" in stored:
        stored["domain"] = config.api_url
    if "user_extensions" in stored:
        inverse: dict[str, str] = {}
        for ext, user_id in sorted(config.user_mappings.items()):
            inverse.setdefault(str(user_id), ext)
        stored["user_extensions"] = inverse
    return stored


def _put(stored: dict[str, Any], key: str, value: object) -> None:
    if value is None:
        stored.pop(key, None)
    else:
        stored[key] = value


# -- validating user input -----------------------------------------------------------------------


def normalise_url(value: str) -> str:
    """``x.retailcrm.ru/`` → ``https://x.retailcrm.ru`` (the original stored bare domains)."""
    value = value.strip()
    if "://" not in value:
        value = "https://" + value
    return value.rstrip("/")


def validate_url(value: str, field_name: str = "api_url") -> str:
    url = normalise_url(value)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise InvalidInput.one(field_name, f"{value!r} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not hostname or " " in url:
        raise InvalidInput.one(field_name, f"{value!r} is not an http(s) URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInput.one(
            field_name,
            f"{value!r} must be the account address only, e.g. https://example.retailcrm.ru",
        )
    return url


def validate_api_key(value: str, field_name: str = "api_key") -> str:
    if not value or any(ch.isspace() for ch in value):
        raise InvalidInput.one(field_name, "must be a non-empty value without spaces")
    if len(value) > 200:
        raise InvalidInput.one(field_name, "is longer than 200 characters")
    return value


def validate_extension(value: str, field_name: str = "extension") -> str:
    ext = value.strip()
    if not EXTENSION.match(ext):
        raise InvalidInput.one(field_name, f"{value!r} is not an extension (2 to 5 digits)")
    return ext


def validate_user_id(value: object, field_name: str = "user_id") -> int:
    uid = _as_int(value)
    if uid is None or uid <= 0 or isinstance(value, bool):
        raise InvalidInput.one(
            field_name, f"{value!r} is not a RetailCRM user id (a positive integer)"
        )
    return uid


def parse_bool(value: object, field_name: str = "enabled") -> bool:
    parsed = _as_bool(value, default=None)
    if parsed is None:
        raise InvalidInput.one(field_name, f"{value!r} is not a boolean (true/false, yes/no, 1/0)")
    return parsed


def change_from_values(values: Mapping[str, object]) -> ConfigChange:
    """Build a change from ``key → value`` input (CLI ``key=value``, an API body), naming every bad
    field at once."""
    errors: list[FieldError] = []
    kwargs: dict[str, Any] = {}
    checks: dict[str, Any] = {
        "api_url": validate_url,
        "domain": validate_url,
        "api_key": validate_api_key,
        "enabled": parse_bool,
        "client_id": validate_api_key,
    }
    pbx: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue  # null = leave as it is
        if key in PBX_KEYS:
            try:
                pbx[key] = validate_pbx_value(key, value)
            except InvalidInput as exc:
                errors.extend(exc.fields)
            continue
        if key in ("user_mappings",):
            try:
                kwargs["replace_mappings"] = validate_mappings(value)
            except InvalidInput as exc:
                errors.extend(exc.fields)
            continue
        check = checks.get(key)
        if check is None:
            errors.append(
                FieldError(key, f"unknown setting; settable: {', '.join(SETTABLE)}, user_mappings")
            )
            continue
        if key != "enabled" and not isinstance(value, str):
            errors.append(FieldError(key, "must be a string"))
            continue
        try:
            kwargs["api_url" if key == "domain" else key] = check(value, key)
        except InvalidInput as exc:
            errors.extend(exc.fields)
    if errors:
        raise InvalidInput(errors)
    return ConfigChange(**kwargs, pbx=pbx)


def validate_pbx_value(key: str, value: object) -> object:
    """One PBX key's new value; an empty string resets it to the default (``None``)."""
    if isinstance(value, str) and not value.strip():
        return None
    if key == "redirect_enabled":
        return parse_bool(value, key)
    if key == "fallback_extension":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise InvalidInput.one(key, "must be an extension")
        return validate_extension(value, key)
    if key == "lookup_deadline_ms":
        number = _as_int(value)
        low, high = DEADLINE_MS_RANGE
        if number is None or not low <= number <= high:
            raise InvalidInput.one(key, f"must be a whole number of milliseconds, {low}–{high}")
        return number
    return validate_context(value, key)


def validate_mappings(value: object, field_name: str = "user_mappings") -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise InvalidInput.one(field_name, "must be an object of extension → RetailCRM user id")
    return validate_pairs(((str(k), v) for k, v in value.items()), field_name)


def validate_pairs(pairs: Iterable[tuple[str, object]], field_name: str) -> dict[str, int]:
    errors: list[FieldError] = []
    result: dict[str, int] = {}
    for ext, user_id in pairs:
        try:
            result[validate_extension(ext, f"{field_name}.{ext}")] = validate_user_id(
                user_id, f"{field_name}.{ext}"
            )
        except InvalidInput as exc:
            errors.extend(exc.fields)
    if errors:
        raise InvalidInput(errors)
    return result


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_bool(value: object, default: bool | None) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return default
