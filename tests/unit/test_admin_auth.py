"""The admin UI's pure parts: tokens and scopes, the sign-in rate limiter, the mapping form's
checks, the journal filters, the diagnostics alerts, and the one catalogue of texts (every key
used exists in Russian and English, with the same placeholders)."""

from __future__ import annotations

import re
import string
import time
import warnings
from pathlib import Path

import jwt
import pytest

from vochi_crm.admin_auth import (
    AccessDenied,
    AdminScope,
    ExchangeLimiter,
    issue_token,
    verify_token,
)
from vochi_crm.admin_views import JournalQuery, plan_mapping, split_extensions
from vochi_crm.connection_check import ORDER
from vochi_crm.errors import InvalidInput
from vochi_crm.journal import EVENT_STATUSES
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.units import Unit

SECRET = "unit-test-admin-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]
ADMIN_CODE = REPO / "daemon" / "vochi_daemon" / "admin"
TEMPLATES = REPO / "daemon" / "vochi_daemon" / "templates" / "admin"


# -- tokens ---------------------------------------------------------------------------------------


def test_a_unit_token_grants_that_unit_only() -> None:
    scope = verify_token(SECRET, issue_token(SECRET, unit="0367", ttl_seconds=60))
    assert scope == AdminScope("0367", False, None)
    assert scope.allows("0367") and not scope.allows("0368") and not scope.allows("036")
    with pytest.raises(AccessDenied) as caught:
        scope.require("0368")
    assert caught.value.reason == "scope" and caught.value.http_status == 403


def test_a_super_token_grants_every_unit() -> None:
    scope = verify_token(SECRET, issue_token(SECRET, super_=True, ttl_seconds=60, subject="ops"))
    assert scope.super and scope.allows("0367") and scope.allows("anything")
    assert scope.subject == "ops"


def test_the_platforms_own_claims_are_understood() -> None:
    now = int(time.time())
    platform = jwt.encode(
        {"sub": "0367", "is_admin": True, "iat": now, "exp": now + 60}, SECRET, algorithm="HS256"
    )
    scope = verify_token(SECRET, platform)
    assert scope.unit == "0367" and not scope.super  # is_admin is not the super scope
    numeric = jwt.encode(
        {"enterprise_number": 367, "source": "retailcrm", "iat": now, "exp": now + 60},
        SECRET,
        algorithm="HS256",
    )
    assert verify_token(SECRET, numeric).unit == "367"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"enterprise_number": "0367"}, "invalid"),  # no exp / iat
        ({"iat": 1, "exp": 9999999999}, "invalid"),  # no unit, not super
        ({"enterprise_number": "../x", "iat": 1, "exp": 9999999999}, "invalid"),
        ({"enterprise_number": "0367", "iat": 1, "exp": 100}, "expired"),
    ],
)
def test_bad_claims_are_refused(claims: dict[str, object], reason: str) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(AccessDenied) as caught:
        verify_token(SECRET, token)
    assert caught.value.reason == reason
    assert token not in str(caught.value)


def test_signature_algorithm_and_secret_are_enforced() -> None:
    now = int(time.time())
    claims = {"super": True, "iat": now, "exp": now + 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for HS512: it is
        hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    for forged in (
        jwt.encode(claims, "another-secret-0123456789abcdef-xyz", algorithm="HS256"),
        hs512,
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "a.b.c",
        "x" * 5000,
    ):
        with pytest.raises(AccessDenied) as caught:
            verify_token(SECRET, forged)
        assert caught.value.reason == "invalid"
    with pytest.raises(AccessDenied) as disabled:
        verify_token(None, issue_token(SECRET, unit="0367", ttl_seconds=60))
    assert disabled.value.reason == "disabled"


def test_expiry_is_judged_with_a_small_leeway() -> None:
    token = issue_token(SECRET, unit="0367", ttl_seconds=60, now=1000)
    assert verify_token(SECRET, token, now=1080).unit == "0367"  # within 30 s of exp
    with pytest.raises(AccessDenied, match="expired"):
        verify_token(SECRET, token, now=1100)


def test_jwt_secret_must_be_strong() -> None:
    from vochi_crm.settings import load_settings

    with pytest.raises(InvalidInput) as caught:
        load_settings(admin={"jwt_secret": "short"})
    assert caught.value.fields[0].field == "VOCHI_ADMIN__JWT_SECRET"
    with pytest.raises(InvalidInput):
        load_settings(admin={"timezone": "Mars/Olympus"})


# -- rate limiting --------------------------------------------------------------------------------


def test_the_exchange_limiter_counts_per_client_in_a_sliding_minute() -> None:
    limiter = ExchangeLimiter(3)
    assert [limiter.check("a", now=t) for t in (0, 1, 2)] == [None, None, None]
    assert limiter.check("a", now=3) == pytest.approx(57)
    assert limiter.check("b", now=3) is None  # per client
    assert limiter.check("a", now=60.5) is None  # the first attempt left the window


def test_the_limiter_forgets_idle_clients_to_bound_memory() -> None:
    limiter = ExchangeLimiter(1, max_clients=4)
    for n in range(20):
        limiter.check(f"client-{n}", now=float(n * 100))
    assert len(limiter._seen) <= 4


# -- the mapping form -----------------------------------------------------------------------------


def test_plan_mapping_turns_rows_into_extension_to_user() -> None:
    plan = plan_mapping({16: "151", 18: "152, 155", 19: ""}, [16, 18, 19])
    assert plan.problems == [] and plan.mapping == {"151": 16, "152": 18, "155": 18}
    assert split_extensions(" 151 ,152;153  154") == ["151", "152", "153", "154"]


def test_plan_mapping_reports_every_problem_and_applies_nothing() -> None:
    plan = plan_mapping({16: "151, x1", 18: "151", 99: "160", 20: "153, 153"}, [16, 18, 20])
    assert plan.mapping == {}
    found = {(p.code, p.field, p.extension, p.users) for p in plan.problems}
    assert ("bad_extension", "user_16", "x1", ()) in found
    assert ("duplicate", "user_16", "151", (16, 18)) in found
    assert ("duplicate", "user_18", "151", (16, 18)) in found
    assert ("unknown_user", "user_99", None, (99,)) in found
    assert not any(p.field == "user_20" for p in plan.problems)  # the same user twice is fine


# -- the journal filters --------------------------------------------------------------------------


def test_journal_filters_are_normalised_and_checked() -> None:
    query = JournalQuery.validated(phone="+375 (29) 123-45-67", call=" 1757766449.12 ",
                                   status="failed", day="2025-09-13")
    assert query.phone == "375291234567" and query.call == "1757766449.12"
    from zoneinfo import ZoneInfo

    start, end = query.window(ZoneInfo("Europe/Minsk"))
    assert start is not None and end is not None
    assert start.isoformat() == "2025-09-13T00:00:00+03:00" and (end - start).days == 1
    with pytest.raises(InvalidInput) as caught:
        JournalQuery.validated(phone="abc", call="a b", status="nope", day="13.09.2025")
    assert {f.field for f in caught.value.fields} == {"phone", "call", "status", "day"}


# -- diagnostics ----------------------------------------------------------------------------------


def _unit(**config: object) -> Unit:
    return Unit("0367", "Pilot", None, None, 5059, "root", True, RetailCrmConfig(**config),
                None)  # type: ignore[arg-type]


def test_alerts_say_what_needs_doing_first() -> None:
    from vochi_daemon.admin.diagnostics import alerts_for

    assert [a.key for a in alerts_for(_unit(), None, None, None, 0)] == ["alert.not_configured"]
    ready = _unit(api_url="https://x.retailcrm.ru", api_key="k" * 20, enabled=True,
                  user_mappings={"151": 16})
    assert alerts_for(ready, None, {"state": "closed"}, None, 0) == []
    keys = [
        a.key
        for a in alerts_for(
            ready,
            {"reason": "invalid_key"},
            {"state": "open"},
            {"pending": 40, "oldest_pending_seconds": 900},
            3,
        )
    ]
    assert keys == ["alert.paused.invalid_key", "alert.breaker_open", "alert.backlog",
                    "alert.failed"]


# -- the catalogue --------------------------------------------------------------------------------


def _catalogue() -> dict[str, dict[str, str]]:
    from vochi_daemon.admin.i18n import catalogue

    return catalogue()


def test_every_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, entry in _catalogue().items():
        assert set(entry) == {"ru", "en"}, key
        assert entry["ru"].strip() and entry["en"].strip(), key
        names = [{f for _, f, _, _ in fields.parse(entry[lang]) if f} for lang in ("ru", "en")]
        assert names[0] == names[1], key


def used_keys() -> set[str]:
    """Every key the templates and the admin code can ask for (literal or built)."""
    from vochi_daemon.admin.diagnostics import PAUSE_REASONS
    from vochi_daemon.admin.render import _DENIED_KEYS

    keys: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        keys |= set(re.findall(r"\bt\('([a-z_.0-9]+)'[),]", path.read_text()))
        keys |= set(re.findall(r"\('(diagnostics\.[a-z_]+)', ", path.read_text()))
    for path in ADMIN_CODE.glob("*.py"):
        keys |= set(re.findall(r'"((?:err|notice|alert|denied|error)\.[a-z_.]+)"',
                               path.read_text()))
    keys |= {f"nav.{k}" for k in ("connection", "mapping", "journal", "diagnostics")}
    keys |= {f"check.{name}" for name in ORDER}
    keys |= {f"status.{s}" for s in ("pass", "warn", "fail", "skipped")}
    keys |= {f"state.{s}" for s in (*EVENT_STATUSES, "received", "success", "error")}
    keys |= {f"story.{k}" for k in ("received", "request", "outcome")}
    keys |= {f"breaker.{s}" for s in ("closed", "open", "half_open")}
    keys |= {f"err.mapping.{c}" for c in ("bad_extension", "duplicate", "unknown_user")}
    keys |= {f"err.filter.{f}" for f in ("phone", "call", "status", "day")}
    keys |= {f"diagnostics.{n}" for n in ("delivered", "failed", "expired", "retried",
                                          "requests_ok", "requests_error")}
    alerts = {k for k in keys if k.startswith("alert.")} | {
        f"alert.paused.{r}" for r in PAUSE_REASONS
    }
    keys |= alerts | {f"{k}.do" for k in alerts}
    pages = {*_DENIED_KEYS.values(), "denied", "sign_in", "signed_out", "error.not_found",
             "error.generic", "error.internal"}
    return keys | pages | {f"{k}.text" for k in pages}


def test_every_key_in_use_is_in_the_catalogue() -> None:
    missing = sorted(used_keys() - set(_catalogue()))
    assert missing == []


def test_the_catalogue_has_no_dead_texts() -> None:
    unused = sorted(set(_catalogue()) - used_keys())
    assert unused == []
