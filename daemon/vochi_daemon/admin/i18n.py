"""The admin UI's texts: one catalogue (``messages.json`` beside this module), Russian by default,
English on request (``?lang=en`` once, then a cookie)."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from starlette.requests import Request

LANGUAGES = ("ru", "en")
DEFAULT = "ru"
COOKIE = "vochi_admin_lang"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """key → {"ru": …, "en": …}; read once, on first use."""
    text = (files("vochi_daemon.admin") / "messages.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def requested_language(request: Request) -> str | None:
    """A language asked for in this request (``?lang=``), to be remembered in the cookie."""
    asked = request.query_params.get("lang")
    return asked if asked in LANGUAGES else None


def language(request: Request) -> str:
    asked = requested_language(request)
    if asked is not None:
        return asked
    remembered = request.cookies.get(COOKIE)
    return remembered if remembered in LANGUAGES else DEFAULT


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT

    def __call__(self, key: str, **params: object) -> str:
        entry = catalogue().get(key)
        if entry is None:
            return key  # a test keeps every used key in the catalogue
        text = entry.get(self.lang) or entry[DEFAULT]
        return text.format(**params) if params else text

    def has(self, key: str) -> bool:
        return key in catalogue()
