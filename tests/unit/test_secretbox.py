"""Secrets at rest (pure): round trip, tamper detection, another unit's ciphertext, plaintext legacy
values, previous keys for rotation, and the save path's sealing rules."""

from __future__ import annotations

import base64

import pytest

from vochi_crm.secretbox import (
    PREFIX,
    SecretBox,
    SecretUnreadable,
    is_sealed,
    new_secret_key,
    split_keys,
)
from vochi_crm.settings import load_settings

OLD = "old-secret-key-0123456789abcdef"
NEW = "new-secret-key-fedcba9876543210"
KEY = "retailcrm-api-key-1234"


def test_round_trip_and_format() -> None:
    box = SecretBox(NEW)
    sealed = box.seal(KEY, "0367")
    assert sealed.startswith(PREFIX) and is_sealed(sealed)
    assert KEY not in sealed
    kid = sealed[len(PREFIX) :].split(":")[0]
    assert kid == box.current_kid and len(kid) == 8
    assert box.open(sealed, "0367") == KEY
    assert box.seal(KEY, "0367") != sealed  # a fresh nonce every time


def test_non_ascii_keys_round_trip() -> None:
    box = SecretBox(NEW)
    assert box.open(box.seal("ключ-✓", "0367"), "0367") == "ключ-✓"


@pytest.mark.parametrize("position", [-1, -10, 30])
def test_tampering_is_detected(position: int) -> None:
    box = SecretBox(NEW)
    sealed = box.seal(KEY, "0367")
    head, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    forged = head + ":" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(SecretUnreadable) as caught:
        box.open(forged, "0367")
    assert KEY not in str(caught.value) and forged not in str(caught.value)


@pytest.mark.parametrize("junk", [PREFIX, PREFIX + "abcd1234:", PREFIX + "x:%%%", PREFIX + ":"])
def test_malformed_values_are_unreadable_not_crashes(junk: str) -> None:
    with pytest.raises(SecretUnreadable):
        SecretBox(NEW).open(junk, "0367")


def test_a_value_sealed_for_another_unit_does_not_open() -> None:
    box = SecretBox(NEW)
    with pytest.raises(SecretUnreadable, match="another unit"):
        box.open(box.seal(KEY, "0367"), "0368")


def test_plaintext_legacy_values_read_as_they_are() -> None:
    assert SecretBox(NEW).open(KEY, "0367") == KEY
    assert SecretBox(None).open(KEY, "0367") == KEY
    assert not SecretBox(None).enabled
    assert SecretBox(None).seal(KEY, "0367") == KEY  # no key: plaintext, as before


def test_previous_keys_open_and_rotation_is_needed_until_resealed() -> None:
    sealed_old = SecretBox(OLD).seal(KEY, "0367")
    with pytest.raises(SecretUnreadable, match="neither VOCHI_SECRET_KEY"):
        SecretBox(NEW).open(sealed_old, "0367")
    rotating = SecretBox.from_secrets(NEW, f"{OLD}, another-previous-key-000")
    assert rotating.open(sealed_old, "0367") == KEY
    assert rotating.needs_rotation(sealed_old)
    assert rotating.needs_rotation(KEY)  # plaintext too
    resealed = rotating.seal(KEY, "0367")
    assert not rotating.needs_rotation(resealed)
    assert SecretBox(NEW).open(resealed, "0367") == KEY
    assert not SecretBox(None, [OLD]).needs_rotation(KEY)  # nothing to rotate to


def test_seal_stored_keeps_an_unchanged_ciphertext_and_seals_new_keys() -> None:
    box = SecretBox(NEW)
    previous = {"api_url": "https://x.retailcrm.ru", "api_key": box.seal(KEY, "0367")}
    same = box.seal_stored({**previous, "api_key": KEY}, previous, "0367")
    assert same["api_key"] == previous["api_key"]
    changed = box.seal_stored({**previous, "api_key": "another-key-0000"}, previous, "0367")
    assert changed["api_key"] != previous["api_key"]
    assert box.open(changed["api_key"], "0367") == "another-key-0000"
    legacy = box.seal_stored({"api_key": KEY}, {"api_key": KEY}, "0367")
    assert is_sealed(legacy["api_key"])  # plaintext from before: sealed on this save
    under_old = {"api_key": SecretBox(OLD).seal(KEY, "0367")}
    rotating = SecretBox(NEW, [OLD])
    assert rotating.key_id(rotating.seal_stored({"api_key": KEY}, under_old, "0367")["api_key"]) \
        == rotating.current_kid


def test_seal_stored_never_drops_a_key_it_cannot_read() -> None:
    sealed_elsewhere = SecretBox(OLD).seal(KEY, "0367")
    # the model read it as None (unreadable); an unrelated save must carry it over
    kept = SecretBox(NEW).seal_stored({"enabled": True}, {"api_key": sealed_elsewhere}, "0367")
    assert kept["api_key"] == sealed_elsewhere
    replaced = SecretBox(NEW).seal_stored(
        {"api_key": "a-new-key-0000"}, {"api_key": sealed_elsewhere}, "0367"
    )
    assert SecretBox(NEW).open(replaced["api_key"], "0367") == "a-new-key-0000"


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        SecretBox("short")
    from vochi_crm.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        load_settings(secret_key="short")
    assert caught.value.fields[0].field == "VOCHI_SECRET_KEY"
    with pytest.raises(InvalidInput):
        load_settings(secret_key=NEW, secret_key_previous=f"{OLD},tiny")


def test_helpers() -> None:
    assert split_keys(" a , ,b ") == ["a", "b"] and split_keys(None) == []
    assert len(new_secret_key()) >= 40 and new_secret_key() != new_secret_key()
    box = SecretBox.from_settings(load_settings(secret_key=NEW, secret_key_previous=OLD))
    assert box.enabled and box.open(SecretBox(OLD).seal(KEY, "1"), "1") == KEY
