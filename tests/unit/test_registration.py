"""The integration module body and the decision to (re-)register — pure functions."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vochi_crm.registration.module import (
    DELETE,
    REGISTER,
    ModuleSite,
    action_for,
    build_module,
    change_kind,
    content_digest,
    journal_request,
    masked_module,
    with_client_id,
)
from vochi_crm.registration.problems import hint_for
from vochi_crm.retailcrm import RetailCrmTransient, RetailCrmUnitMustAct
from vochi_crm.retailcrm_config import RetailCrmConfig
from vochi_crm.settings import Settings

SITE = ModuleSite("vochi-telephony", "Vochi-CRM", "https://bot.vochi.by")
CLIENT_ID = "Zk3v9QeJ-secret-client-id-7Hq2"
ON = RetailCrmConfig(
    enabled=True,
    api_url="https://shop.retailcrm.ru",
    api_key="key-0000-abcd",
    user_mappings={"152": 18, "151": 16, "1500": 19},
    client_id=CLIENT_ID,
)


def test_module_body_is_complete_and_follows_reference_a6() -> None:
    module = build_module("0367", ON, SITE, active=True)
    assert module == {
        "code": "vochi-telephony",
        "active": True,
        "name": "Vochi-CRM",
        "logo": "https://bot.vochi.by/static/vochi-logo.svg",
        "baseUrl": "https://bot.vochi.by",
        "clientId": CLIENT_ID,
        "accountUrl": "https://bot.vochi.by/retailcrm-admin/?enterprise_number=0367",
        "integrations": {
            "telephony": {
                "makeCallUrl": "https://bot.vochi.by/retailcrm/make-call",
                "changeUserStatusUrl": "https://bot.vochi.by/retailcrm/status",
                "allowEdit": False,
                "inputEventSupported": True,
                "outputEventSupported": True,
                "hangupEventSupported": True,
                "additionalCodes": [
                    {"userId": 16, "code": "151"},
                    {"userId": 18, "code": "152"},
                    {"userId": 19, "code": "1500"},
                ],
                "externalPhones": [],
            }
        },
    }


def test_deactivation_is_the_same_module_inactive() -> None:
    on = build_module("0367", ON, SITE, active=True)
    off = build_module("0367", ON, SITE, active=False)
    assert off == {**on, "active": False}


def test_module_site_from_settings_and_explicit_logo() -> None:
    settings = Settings(
        public_base_url="https://crm.example.by/",
        retailcrm={"module_code": "vochi-x", "logo_url": "https://cdn.example.by/l.svg"},
    )
    site = ModuleSite.from_settings(settings)
    module = build_module("0001", ON, site, active=True)
    assert module["code"] == "vochi-x"
    assert module["logo"] == "https://cdn.example.by/l.svg"
    assert module["integrations"]["telephony"]["makeCallUrl"] == (
        "https://crm.example.by/retailcrm/make-call"
    )


def test_journal_and_printed_module_never_hold_the_client_id() -> None:
    module = build_module("0367", ON, SITE, active=True)
    module["accountUrl"] += "&token=eyJhbGciOiJIUzI1NiJ9.payload.signature"
    shown = masked_module(module)
    assert shown["clientId"] == "••••7Hq2"
    assert "signature" not in shown["accountUrl"]
    assert module["clientId"] == CLIENT_ID  # the input is not modified
    text = json.dumps(journal_request(ON.api_url, module))
    assert CLIENT_ID not in text
    assert json.loads(text)["domain"] == "https://shop.retailcrm.ru"


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, ON, REGISTER),  # first save, enabled
        (replace(ON, enabled=False), ON, REGISTER),  # enabled
        (ON, replace(ON, user_mappings={"151": 16}), REGISTER),  # mapping changed
        (ON, replace(ON, api_key="another-key-1234"), REGISTER),  # credentials changed
        (ON, replace(ON, api_url="https://other.retailcrm.ru"), REGISTER),
        (ON, replace(ON, client_id="rotated-by-an-operator-0000"), REGISTER),
        (ON, ON, None),  # the same save twice
        (replace(ON, client_id=None), ON, None),  # only a clientId generated: no loop
        (ON, replace(ON, enabled=False), DELETE),  # disabled
        (ON, None, DELETE),  # config deleted
        (replace(ON, enabled=False), replace(ON, enabled=False, api_key="x-1234"), None),
        (None, replace(ON, enabled=False), None),  # configured but never enabled
        (replace(ON, enabled=False), None, None),
    ],
)
def test_which_writes_call_for_a_module_event(
    before: RetailCrmConfig | None, after: RetailCrmConfig | None, kind: str | None
) -> None:
    assert change_kind(before, after) == kind


def test_enabled_without_credentials_registers_nothing() -> None:
    legacy = RetailCrmConfig(enabled=True, api_url="https://x.retailcrm.ru")
    assert change_kind(None, legacy) is None
    assert action_for(legacy) is None
    assert action_for(ON) == REGISTER
    assert action_for(replace(ON, enabled=False)) == DELETE


def test_client_id_is_generated_once_for_an_enabled_config() -> None:
    fresh = with_client_id(replace(ON, client_id=None))
    assert fresh.client_id is not None
    assert len(fresh.client_id) >= 32
    assert with_client_id(fresh) is fresh  # never replaced
    assert with_client_id(replace(ON, client_id=None)).client_id != fresh.client_id
    disabled = replace(ON, enabled=False, client_id=None)
    assert with_client_id(disabled).client_id is None


def test_digest_follows_what_is_registered_and_hides_the_key() -> None:
    digest = content_digest(REGISTER, "0367", ON, SITE)
    assert digest == content_digest(REGISTER, "0367", replace(ON), SITE)
    assert digest != content_digest(REGISTER, "0367", replace(ON, user_mappings={}), SITE)
    assert digest != content_digest(DELETE, "0367", ON, SITE)
    assert digest != content_digest(REGISTER, "0368", ON, SITE)
    assert digest != content_digest(REGISTER, "0367", replace(ON, api_key="other-0000"), SITE)
    assert "abcd" not in digest
    assert len(digest) == 16


def test_hints_name_what_to_do() -> None:
    wrong = RetailCrmUnitMustAct("refused", reason="invalid_key", status=403)
    assert "vochi-crm config set 0367 api_key=-" in hint_for(wrong, "0367")
    denied = RetailCrmUnitMustAct("denied", reason="access_denied", status=403)
    assert "'/api/users'" in hint_for(denied, "0367", method="/api/users")
    assert "in time" in hint_for(RetailCrmTransient("slow", reason="timeout"), "0367")
    assert "HTML" in hint_for(RetailCrmUnitMustAct("html", reason="account_missing"), "0367")
