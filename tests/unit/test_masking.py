"""Secrets are shown by their last four characters at most; DSN passwords never."""

from __future__ import annotations

import pytest

from vochi_crm.masking import mask_dsn, mask_secret


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abcdefgh1234", "••••1234"),
        ("abcdefghi", "••••fghi"),  # 9 characters: the shortest shown partly
        ("abcdefgh", "••••"),  # 8 characters: hidden entirely
        ("abc", "••••"),
        ("", "••••"),
    ],
)
def test_mask_secret(value: str, expected: str) -> None:
    assert mask_secret(value) == expected


def test_mask_secret_none() -> None:
    assert mask_secret(None) is None


def test_mask_secret_never_reveals_more_than_four_characters() -> None:
    secret = "Zq8#longer-secret-with-tail-WXYZ"
    masked = mask_secret(secret)
    assert masked is not None
    assert masked.endswith("WXYZ")
    assert secret[:-4] not in masked
    assert "secret" not in masked


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://vochi:s3cretPW@db.example:5432/vochi",
            "postgresql://vochi:••••@db.example:5432/vochi",
        ),
        ("postgres://vochi:s3cretPW@db/vochi", "postgres://vochi:••••@db/vochi"),
        ("postgresql://:s3cretPW@db/vochi", "postgresql://:••••@db/vochi"),
        (
            "postgresql://vochi:p%40ss%2Fword@db/vochi?sslmode=require",
            "postgresql://vochi:••••@db/vochi?sslmode=require",
        ),
    ],
)
def test_mask_dsn_url_with_password(dsn: str, expected: str) -> None:
    assert mask_dsn(dsn) == expected


def test_mask_dsn_url_inside_an_error_message() -> None:
    text = "cannot connect to postgresql://vochi:s3cretPW@db/vochi: connection refused"
    masked = mask_dsn(text)
    assert "s3cretPW" not in masked
    assert masked == "cannot connect to postgresql://vochi:••••@db/vochi: connection refused"


def test_mask_dsn_password_in_url_query() -> None:
    masked = mask_dsn("postgresql://vochi@db/vochi?password=s3cretPW")
    assert "s3cretPW" not in masked
    assert masked.startswith("postgresql://vochi@db/vochi?password=")


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "host=db user=vochi password=s3cretPW dbname=vochi",
            "host=db user=vochi password=•••• dbname=vochi",
        ),
        ("password=s3cretPW", "password=••••"),
        ("host=db PASSWORD = s3cretPW port=5432", "host=db PASSWORD = •••• port=5432"),
    ],
)
def test_mask_dsn_conninfo_with_password(dsn: str, expected: str) -> None:
    assert mask_dsn(dsn) == expected


def test_mask_dsn_conninfo_quoted_password_with_spaces() -> None:
    """libpq allows ``password='two words'``: no part of it may be shown."""
    masked = mask_dsn("host=db password='top secret phrase' user=vochi")
    assert "top" not in masked
    assert "secret" not in masked
    assert "phrase" not in masked
    assert masked.startswith("host=db password=")


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://vochi@db.example:5432/vochi",
        "postgresql://db.example:5432/vochi",
        "postgresql:///vochi?host=/var/run/postgresql",
        "host=db user=vochi dbname=vochi port=5432",
        "dbname=vochi",
        "",
    ],
)
def test_mask_dsn_without_password_is_unchanged(dsn: str) -> None:
    assert mask_dsn(dsn) == dsn
