"""The judging half of test-connection: answers in, checks (status, detail, hint) out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vochi_crm.connection_check import (
    REQUIRED_METHODS,
    judge_credentials,
    judge_mapping,
    judge_module,
    judge_probe_error,
    judge_users,
    judge_versions,
    missing_methods,
    normalise_method,
)
from vochi_crm.registration.module import ModuleSite, build_module
from vochi_crm.retailcrm import Exchange, RetailCrmError, classify
from vochi_crm.retailcrm_config import RetailCrmConfig

CODE = "vochi-telephony"
CONFIG = RetailCrmConfig(
    enabled=True,
    api_url="https://shop.retailcrm.ru",
    api_key="key-0000-abcd",
    user_mappings={"151": 16, "152": 18},
    client_id="our-client-id-0000-9999",
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/api/v5/integration-modules/{code}/edit", "/api/integration-modules/{}/edit"),
        ("/api/integration-modules/{moduleCode}/edit/", "/api/integration-modules/{}/edit"),
        ("api/v4/telephony/call/event", "/api/telephony/call/event"),
        ("/API/Users", "/api/users"),
    ],
)
def test_credential_paths_are_compared_without_version_or_placeholder_names(
    given: str, expected: str
) -> None:
    assert normalise_method(given) == expected


def test_missing_methods_accepts_placeholders_concrete_codes_and_versions() -> None:
    granted = [
        "/api/integration-modules/vochi-telephony/edit",  # the concrete code
        "/api/v5/telephony/call/event",  # with a version prefix
        "/api/telephony/calls/upload",
        "/api/users",
        42,  # junk is ignored
    ]
    assert missing_methods(granted, CODE) == ["/api/telephony/manager"]
    assert missing_methods([*granted, "/api/telephony/manager"], CODE) == []
    assert missing_methods([], CODE) == [m.replace("{code}", CODE) for m in REQUIRED_METHODS]


def test_credentials_check_lists_what_is_missing_with_a_hint() -> None:
    check = judge_credentials({"credentials": ["/api/users"]}, CODE)
    assert check.status == "fail"
    assert "/api/telephony/manager" in check.detail
    assert "/api/integration-modules/vochi-telephony/edit" in check.detail
    assert check.hint is not None
    assert "API access keys" in check.hint
    assert judge_credentials({"success": True}, CODE).status == "fail"


def test_versions_need_v5() -> None:
    assert judge_versions({"versions": ["3.0", "4.0", "5.0"]}, "u")["api_version"].ok
    old = judge_versions({"versions": ["3.0", "4.0"]}, "u")["api_version"]
    assert old.status == "fail"
    assert "3.0, 4.0" in old.detail


def test_wrong_key_means_retailcrm_is_there_but_refuses() -> None:
    error = classify(403, {}, '{"success":false,"errorMsg":"Wrong \\"apiKey\\" value."}')
    assert isinstance(error, RetailCrmError)
    checks = judge_probe_error(error, "0367")
    assert checks["address"].status == "pass"
    assert checks["api_key"].status == "fail"
    assert checks["api_key"].hint is not None
    assert "config set 0367 api_key=-" in checks["api_key"].hint


def test_an_html_answer_fails_the_address_with_a_hint() -> None:
    page = "<!DOCTYPE html><html><body>Not found</body></html>"
    error = classify(404, {"content-type": "text/html"}, page)
    assert isinstance(error, RetailCrmError)
    error.exchange = Exchange("GET", "/api/api-versions", status=404, response=page)
    checks = judge_probe_error(error, "0367")
    assert set(checks) == {"address"}
    assert checks["address"].status == "fail"
    assert "HTML" in checks["address"].detail
    assert checks["address"].hint is not None
    assert "api_url" in checks["address"].hint


def test_users_missing_or_inactive_fail_with_their_extensions() -> None:
    users = {16: {"id": 16, "active": True}, 20: {"id": 20, "active": False, "firstName": "Olga"}}
    check = judge_users({"151": 16, "154": 20, "155": 99}, users, "0367")
    assert check.status == "fail"
    assert "154 → user 20 (Olga) is not active" in check.detail
    assert "155 → user 99 does not exist" in check.detail
    assert "151" not in check.detail
    assert judge_users({"151": 16}, users, "0367").status == "pass"
    assert judge_users({}, users, "0367").status == "warn"


def test_a_user_with_several_extensions_is_a_warning_not_a_failure() -> None:
    check = judge_mapping({"151": 16, "155": 16, "152": 18}, "0367")
    assert check.status == "warn"
    assert check.ok
    assert "user 16 has extensions 151, 155" in check.detail
    assert judge_mapping({"151": 16, "152": 18}, "0367").status == "pass"


def test_module_in_sync_passes_and_unknown_codes_fail() -> None:
    site = ModuleSite(CODE, "Vochi-CRM", "https://bot.vochi.by")
    ours = build_module("0367", CONFIG, site, active=True)
    assert judge_module(ours, CONFIG, "0367", CODE).status == "pass"

    theirs = build_module("0367", CONFIG, site, active=True)
    theirs["integrations"]["telephony"]["additionalCodes"].append({"userId": 19, "code": "153"})
    check = judge_module(theirs, CONFIG, "0367", CODE)
    assert check.status == "fail"
    assert "codes we do not know: 153 → user 19" in check.detail
    assert check.hint == "register it now: vochi-crm register 0367"

    stale = build_module("0367", replace(CONFIG, client_id="someone-else-1234"), site, active=False)
    check = judge_module(stale, CONFIG, "0367", CODE)
    assert "not active" in check.detail
    assert "clientId is not ours" in check.detail


def test_module_absence_depends_on_whether_the_integration_is_enabled() -> None:
    assert judge_module(None, CONFIG, "0367", CODE).status == "fail"
    disabled = replace(CONFIG, enabled=False)
    assert judge_module(None, disabled, "0367", CODE).status == "pass"
    active = {"code": CODE, "active": True}
    assert judge_module(active, disabled, "0367", CODE).status == "warn"
