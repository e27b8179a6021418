"""The pure parts of smart redirect: request validation, reading RetailCRM's answer, and the
decision (manager's code, mapping, fallback — only the unit's own extensions, ever)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vochi_crm.errors import InvalidInput
from vochi_crm.retailcrm import RetailCrmTransient
from vochi_crm.smart_redirect import (
    Decision,
    LookupRefused,
    ManagerInfo,
    decide,
    failure_reason,
    manager_info,
    parse_request,
)

MAPPING = {"151": 16, "152": 18, "1520": 18, "160": 20}


def body(**values: Any) -> bytes:
    return json.dumps(values).encode()


def test_a_full_request() -> None:
    request = parse_request(
        body(
            enterprise_number="0367",
            phone="+375 (29) 123-45-67",
            unique_id="1757765248.12",
            channel="PJSIP/trunk-0000002a",
            trunk="mts",
        )
    )
    assert (request.enterprise_number, request.token, request.phone) == (
        "0367",
        None,
        "+375291234567",
    )
    assert (request.unique_id, request.channel, request.trunk) == (
        "1757765248.12",
        "PJSIP/trunk-0000002a",
        "mts",
    )


def test_token_instead_of_number_and_empty_optionals() -> None:
    request = parse_request(body(token="375290000000", phone="375291234567", channel=""))
    assert (request.enterprise_number, request.token, request.channel) == (
        None,
        "375290000000",
        None,
    )


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b"{oops", {"body"}),
        (b"[1]", {"body"}),
        (body(phone="+375291234567"), {"enterprise_number"}),
        (body(enterprise_number="03 67", phone="+375291234567"), {"enterprise_number"}),
        (body(enterprise_number="0367"), {"phone"}),
        (body(enterprise_number="0367", phone="call me"), {"phone"}),
        (
            body(enterprise_number="0367", phone="+375291234567", channel="SIP/a;reboot"),
            {"channel"},
        ),
        (body(enterprise_number="0367", phone="+375291234567", unique_id="1 2"), {"unique_id"}),
        (body(enterprise_number="0367", phone="+375291234567", trunk="a b"), {"trunk"}),
        (body(token=7, phone="x", channel="SIP/$(id)"), {"token", "phone", "channel"}),
    ],
)
def test_every_bad_field_is_named(raw: bytes, fields: set[str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_request(raw)
    assert {f.field for f in refused.value.fields} == fields


def test_reading_retailcrms_answer() -> None:
    data = {
        "success": True,
        "manager": {"id": 16, "firstName": "Ivan", "code": "151"},
        "customer": {"firstName": "Maria", "lastName": "Klim", "patronymic": None},
    }
    assert manager_info(data) == ManagerInfo(16, "151", "Klim Maria")
    assert manager_info({"success": True}) == ManagerInfo(None, None, None)
    assert manager_info({"data": {"manager": {"id": "19", "code": 153}}}) == ManagerInfo(
        19, "153", None
    )
    assert manager_info({"manager": {"id": True, "code": ""}}) == ManagerInfo(None, None, None)
    long = {"customer": {"firstName": "A" * 80, "lastName": "B  \n C" * 10}}
    name = manager_info(long).customer_name
    assert name is not None and len(name) == 100 and "\n" not in name


@pytest.mark.parametrize(
    ("info", "fallback", "expected"),
    [
        # RetailCRM's code is ours and belongs to the manager
        (
            ManagerInfo(16, "151", "Klim Maria"),
            None,
            Decision("151", 16, "Klim Maria", "crm", "manager_code"),
        ),
        # no id in the answer, but a code of ours
        (ManagerInfo(None, "152", None), None, Decision("152", None, None, "crm", "manager_code")),
        # RetailCRM's code belongs to another module: our mapping of the manager decides
        (ManagerInfo(18, "777", None), None, Decision("152", 18, None, "crm", "manager_mapping")),
        # RetailCRM's code is ours but we map it to somebody else: the manager's own extension
        (ManagerInfo(18, "151", None), None, Decision("152", 18, None, "crm", "manager_mapping")),
        # the manager is nobody of ours; RetailCRM's code 153 is never returned
        (
            ManagerInfo(19, "153", "Zhuk Pavel"),
            None,
            Decision(None, 19, "Zhuk Pavel", "fallback", "manager_not_mapped"),
        ),
        (
            ManagerInfo(19, "153", None),
            "160",
            Decision("160", 19, None, "fallback", "manager_not_mapped"),
        ),
        # a fallback that is not (any more) in the mapping is not returned either
        (
            ManagerInfo(19, None, None),
            "199",
            Decision(None, 19, None, "fallback", "manager_not_mapped"),
        ),
        (
            ManagerInfo(None, None, "Nobody"),
            "151",
            Decision("151", None, "Nobody", "fallback", "no_manager"),
        ),
    ],
)
def test_the_decision(info: ManagerInfo, fallback: str | None, expected: Decision) -> None:
    assert decide(info, MAPPING, fallback) == expected


def test_a_cached_answer_says_so() -> None:
    assert decide(ManagerInfo(16, "151", None), MAPPING, None, cached=True).source == "cache"
    assert decide(ManagerInfo(19, None, None), MAPPING, None, cached=True).source == "fallback"


def test_a_failed_lookup_falls_back_with_its_reason() -> None:
    assert decide(None, MAPPING, "151", failure="crm_timeout") == Decision(
        "151", None, None, "fallback", "crm_timeout"
    )
    assert decide(None, MAPPING, None, failure="integration_disabled").extension is None


def test_whatever_is_decided_comes_from_the_mapping() -> None:
    infos = [
        ManagerInfo(i, c, None)
        for i in (None, 16, 18, 19, 20, 99)
        for c in (None, "151", "152", "153", "160", "777", "1520")
    ]
    for info in infos:
        for fallback in (None, "151", "999"):
            extension = decide(info, MAPPING, fallback).extension
            assert extension is None or extension in MAPPING


def test_failure_reasons() -> None:
    assert failure_reason(TimeoutError()) == "crm_timeout"
    assert failure_reason(LookupRefused()) == "crm_breaker_open"
    assert failure_reason(RetailCrmTransient("x", reason="503")) == "crm_transient:503"
    assert failure_reason(ValueError()) == "crm_error"


def test_retailcrms_time_is_reported_only_when_it_was_asked() -> None:
    fresh = ManagerInfo(16, "151", None, crm_ms=21.5)
    assert decide(fresh, MAPPING, None).crm_ms == 21.5
    assert decide(fresh, MAPPING, None, cached=True).crm_ms is None
    assert decide(ManagerInfo(19, None, None, crm_ms=3.0), MAPPING, None).crm_ms == 3.0
    assert decide(None, MAPPING, None, failure="crm_timeout").crm_ms is None
    assert manager_info({"manager": {"id": 16}}, crm_ms=4.0).crm_ms == 4.0


# -- the per-unit PBX keys of the config model -----------------------------------------------------


def test_pbx_keys_are_set_stored_and_read_back() -> None:
    from vochi_crm.retailcrm_config import (
        RetailCrmConfig,
        apply_change,
        change_from_values,
        read_stored,
        to_stored,
    )

    before = RetailCrmConfig(user_mappings={"151": 16})
    change = change_from_values(
        {
            "redirect_enabled": "yes",
            "redirect_context": "from-manager",
            "lookup_deadline_ms": "800",
            "fallback_extension": 151,
            "originate_context": "web-originate",
            "outbound_context": "city",
        }
    )
    after = apply_change(before, change)
    assert (after.redirect_enabled, after.redirect_context, after.lookup_deadline_ms) == (
        True,
        "from-manager",
        800,
    )
    assert (after.fallback_extension, after.originate_context, after.outbound_context) == (
        "151",
        "web-originate",
        "city",
    )
    stored = to_stored(after, {"other": 1})
    assert stored["redirect_enabled"] is True and stored["other"] == 1
    assert read_stored(stored) == after
    assert after.public()["redirect_context"] == "from-manager"
    # an empty value resets a key to its default, which is not stored at all
    reset = apply_change(
        after, change_from_values({"redirect_context": "", "redirect_enabled": ""})
    )
    assert (reset.redirect_context, reset.redirect_enabled) == (None, False)
    assert "redirect_context" not in to_stored(reset, stored)
    assert "redirect_enabled" not in to_stored(reset, stored)


def test_a_config_without_pbx_keys_stays_as_it_was() -> None:
    from vochi_crm.retailcrm_config import RetailCrmConfig, read_stored, to_stored

    legacy = {"enabled": True, "domain": "x.retailcrm.ru", "api_key": "k", "user_extensions": {}}
    config = read_stored(legacy)
    assert config.redirect_enabled is False and config.pbx_settings() == {}
    assert not set(to_stored(config, legacy)) & {"redirect_enabled", "redirect_context"}
    assert "redirect_enabled" not in RetailCrmConfig().public()
    # stored junk is ignored (the default applies), never fatal
    junk = read_stored(
        {
            "redirect_context": "a;b",
            "lookup_deadline_ms": 99999,
            "fallback_extension": "1 2",
            "redirect_enabled": "perhaps",
        }
    )
    assert junk.pbx_settings() == {}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"redirect_context": "in office"}, "redirect_context"),
        ({"originate_context": "a;reboot"}, "originate_context"),
        ({"outbound_context": "$(id)"}, "outbound_context"),
        ({"lookup_deadline_ms": "10"}, "lookup_deadline_ms"),
        ({"lookup_deadline_ms": "soon"}, "lookup_deadline_ms"),
        ({"fallback_extension": "abc"}, "fallback_extension"),
        ({"redirect_enabled": "perhaps"}, "redirect_enabled"),
    ],
)
def test_bad_pbx_values_are_named(values: dict[str, Any], field: str) -> None:
    from vochi_crm.retailcrm_config import change_from_values

    with pytest.raises(InvalidInput) as refused:
        change_from_values(values)
    assert [f.field for f in refused.value.fields] == [field]


def test_the_fallback_must_be_a_mapped_extension() -> None:
    from vochi_crm.retailcrm_config import RetailCrmConfig, apply_change, change_from_values

    with pytest.raises(InvalidInput) as refused:
        apply_change(
            RetailCrmConfig(user_mappings={"151": 16}),
            change_from_values({"fallback_extension": "152"}),
        )
    assert refused.value.fields[0].field == "fallback_extension"
