"""Secrets at rest: the RetailCRM API keys in ``integrations_config -> 'retailcrm' -> 'api_key'``.

With ``VOCHI_SECRET_KEY`` set, a key is stored as ``vochi:v1:<key id>:<base64url(nonce ‖
AES-256-GCM ciphertext ‖ tag)>``:

* the AES key is derived from ``VOCHI_SECRET_KEY`` with HKDF-SHA256 (fixed salt and purpose), so
  any passphrase-like value works and the same secret never serves two purposes;
* the ``<key id>`` (8 hex digits of a hash of the derived key, not of the secret) says which key
  sealed a value: reading tries that key among the current and the previous ones
  (``VOCHI_SECRET_KEY_PREVIOUS``, comma-separated), and ``vochi-crm secrets rotate`` knows which
  rows still need re-encrypting;
* the unit number is the associated data: a sealed value copied to another unit does not open;
* a value without the prefix is a plaintext key from before (or from the original platform): it
  still reads, and the next save seals it.

Without ``VOCHI_SECRET_KEY`` keys are stored in plaintext (the daemon warns at start). Pure code,
no I/O: the database side is in :mod:`vochi_crm.units` (opening) and
:mod:`vochi_crm.config_service` (sealing) and :mod:`vochi_crm.secret_rotation`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vochi_crm.errors import VochiError

if TYPE_CHECKING:
    from vochi_crm.settings import Settings

PREFIX = "vochi:v1:"
FIELD = "api_key"
_SALT = b"vochi-crm/secretbox/v1"
_INFO = b"retailcrm api keys at rest"
_NONCE = 12
MIN_SECRET = 16


class SecretUnreadable(VochiError):
    """A sealed value that none of the configured keys opens (wrong, missing or tampered)."""

    http_status = 500
    exit_code = 1
    title = "Secret cannot be decrypted"


def split_keys(value: str | None) -> list[str]:
    """``"k1, k2"`` → ``["k1", "k2"]`` (the form of ``VOCHI_SECRET_KEY_PREVIOUS``)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def new_secret_key() -> str:
    """A fresh random ``VOCHI_SECRET_KEY`` value (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def is_sealed(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(PREFIX)


def _derive(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret.encode()
    )


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM = field(repr=False)

    @classmethod
    def of(cls, secret: str) -> _Key:
        derived = _derive(secret)
        kid = hashlib.sha256(b"kid:" + derived).hexdigest()[:8]
        return cls(kid, AESGCM(derived))


def _aad(unit: str) -> bytes:
    return f"vochi-crm:retailcrm.api_key:{unit}".encode()


class SecretBox:
    """Seal and open per-unit secrets with the current key; open with previous keys too."""

    def __init__(self, current: str | None, previous: Sequence[str] = ()) -> None:
        for secret in (current, *previous):
            if secret is not None and len(secret) < MIN_SECRET:
                raise ValueError(f"a secret key must be at least {MIN_SECRET} characters long")
        self._current = _Key.of(current) if current else None
        keys = [self._current] if self._current else []
        keys += [_Key.of(s) for s in previous if s and s != current]
        self._keys = {k.kid: k for k in keys}

    @classmethod
    def from_secrets(cls, current: str | None, previous: str | None) -> SecretBox:
        """From the settings' values (``previous`` is a comma-separated list)."""
        return cls(current, split_keys(previous))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """``VOCHI_SECRET_KEY`` (current) and ``VOCHI_SECRET_KEY_PREVIOUS`` (read only)."""
        return cls.from_secrets(
            settings.secret_key.get_secret_value() if settings.secret_key else None,
            settings.secret_key_previous.get_secret_value()
            if settings.secret_key_previous
            else None,
        )

    @property
    def enabled(self) -> bool:
        """A current key is configured: new values are sealed."""
        return self._current is not None

    @property
    def current_kid(self) -> str | None:
        return self._current.kid if self._current else None

    def key_id(self, value: str) -> str | None:
        """The id of the key that sealed ``value`` (``None`` for a plaintext value)."""
        if not is_sealed(value):
            return None
        return value[len(PREFIX) :].split(":", 1)[0]

    def seal(self, plaintext: str, unit: str) -> str:
        """``plaintext`` sealed under the current key (returned as is when no key is set)."""
        if self._current is None:
            return plaintext
        nonce = os.urandom(_NONCE)
        sealed = self._current.aead.encrypt(nonce, plaintext.encode(), _aad(unit))
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self._current.kid}:{body}"

    def open(self, value: str, unit: str) -> str:
        """The plaintext of ``value``; a plaintext (legacy) value is returned as is.

        Raises :class:`SecretUnreadable` (its message never contains the value) when the value is
        sealed under a key we do not have, is malformed, was tampered with or belongs to another
        unit.
        """
        if not is_sealed(value):
            return value
        kid, _, body = value[len(PREFIX) :].partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise SecretUnreadable(
                f"the stored API key of unit {unit} was encrypted with key {kid!r}, which is "
                "neither VOCHI_SECRET_KEY nor in VOCHI_SECRET_KEY_PREVIOUS"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if len(raw) <= _NONCE:
                raise ValueError("too short")
            return key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(unit)).decode()
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
            raise SecretUnreadable(
                f"the stored API key of unit {unit} does not decrypt with key {kid!r} "
                "(tampered with, truncated, or copied from another unit)"
            ) from None

    def needs_rotation(self, value: str) -> bool:
        """Plaintext while a key is configured, or sealed under another key than the current."""
        if self._current is None:
            return False
        return self.key_id(value) != self._current.kid

    def seal_stored(
        self, stored: dict[str, Any], previous: Mapping[str, Any] | None, unit: str
    ) -> dict[str, Any]:
        """The object about to be written, with its ``api_key`` sealed.

        ``stored`` carries the plaintext key (what the config model holds); ``previous`` is the
        object as read from the database. An unchanged key keeps its previous ciphertext when that
        is already under the current key (no churn on every save), and a previous value we cannot
        open is carried over untouched when the save does not replace it: an unreadable key is
        never lost by an unrelated save.
        """
        result = dict(stored)
        new = result.get(FIELD)
        old = previous.get(FIELD) if isinstance(previous, Mapping) else None
        if new is None:
            if is_sealed(old) and not self._opens(old, unit):
                result[FIELD] = old
            return result
        if not isinstance(new, str):
            return result
        if isinstance(old, str) and not self.needs_rotation(old) and self._opens_to(old, unit, new):
            result[FIELD] = old
        else:
            result[FIELD] = self.seal(new, unit)
        return result

    def _opens(self, value: str, unit: str) -> bool:
        try:
            self.open(value, unit)
        except SecretUnreadable:
            return False
        return True

    def _opens_to(self, value: str, unit: str, plaintext: str) -> bool:
        try:
            return secrets.compare_digest(self.open(value, unit).encode(), plaintext.encode())
        except SecretUnreadable:
            return False
