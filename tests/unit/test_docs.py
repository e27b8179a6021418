"""The configuration reference documents every setting."""

from __future__ import annotations

from pathlib import Path

from vochi_crm.settings import Settings
from vochi_crm.settings_sources import describe_sources

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [s.env for s in describe_sources(Settings()) if f"`{s.env}`" not in text]
    assert missing == []
