"""``classify``: every documented RetailCRM answer (reference A1, A3, A4) lands in the right class.

Pure: no HTTP. The table below is the contract delivery relies on: transient → retry,
permanent → fail at once, unit must act → pause the unit and alert.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vochi_crm.errors import VochiError
from vochi_crm.retailcrm.classify import classify, parse_json_object, parse_retry_after
from vochi_crm.retailcrm.errors import (
    RetailCrmError,
    RetailCrmPermanent,
    RetailCrmTransient,
    RetailCrmUnitMustAct,
)

JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=UTF-8"}
NOW = datetime(2025, 9, 13, 12, 0, 0, tzinfo=UTC)
ACCOUNT_HTML = "<!DOCTYPE html><html><body><h1>Account does not exist.</h1></body></html>"
NGINX_405 = "<html><head><title>405 Not Allowed</title></head><body>nginx</body></html>"


def err(msg: str, errors: object = None) -> str:
    import json

    body: dict[str, object] = {"success": False, "errorMsg": msg}
    if errors is not None:
        body["errors"] = errors
    return json.dumps(body)


CASES = [
    # (status, headers, body, class, reason)
    (403, JSON, err('Wrong "apiKey" value.'), RetailCrmUnitMustAct, "invalid_key"),
    (403, JSON, err('"apiKey" is missing.'), RetailCrmUnitMustAct, "missing_key"),
    (401, JSON, err('"apiKey" is missing.'), RetailCrmUnitMustAct, "missing_key"),
    (403, JSON, err("Access denied."), RetailCrmUnitMustAct, "access_denied"),
    (403, JSON, "{}", RetailCrmUnitMustAct, "access_denied"),
    (401, JSON, "", RetailCrmUnitMustAct, "invalid_key"),
    (404, JSON, err("Account does not exist."), RetailCrmUnitMustAct, "account_missing"),
    (404, HTML, ACCOUNT_HTML, RetailCrmUnitMustAct, "account_missing"),
    (405, HTML, NGINX_405, RetailCrmUnitMustAct, "account_missing"),
    (405, {}, "", RetailCrmUnitMustAct, "account_missing"),
    (404, {}, "<html>not here</html>", RetailCrmUnitMustAct, "account_missing"),
    (400, {}, "  <!doctype html><p>bad</p>", RetailCrmUnitMustAct, "account_missing"),
    (400, JSON, err("Telephony not enabled"), RetailCrmUnitMustAct, "telephony_disabled"),
    (200, JSON, err("Telephony not enabled or not supports calls upload"), RetailCrmUnitMustAct,
     "telephony_disabled"),
    (200, JSON, err("Access denied."), RetailCrmUnitMustAct, "access_denied"),
    (301, {"Location": "https://acme.retailcrm.example/"}, "", RetailCrmUnitMustAct, "redirect"),
    (302, HTML, "<html>moved</html>", RetailCrmUnitMustAct, "redirect"),
    (400, JSON, err("Errors in the entity format", {"code": "Code prefix must match"}),
     RetailCrmPermanent, "validation"),
    (400, JSON, err("Validation error", ["phone: This value should not be blank."]),
     RetailCrmPermanent, "validation"),
    (400, JSON, err("Parameter 'integrationModule' is missing"), RetailCrmPermanent, "validation"),
    (400, JSON, err('Input value "integrationModule" contains a non-scalar value'),
     RetailCrmPermanent, "validation"),
    (400, JSON, err("logo: Logo image must be svg"), RetailCrmPermanent, "validation"),
    (400, JSON, '{"success":false,"errorMsg":"Errors in', RetailCrmPermanent, "validation"),
    (404, JSON, err("API method not found"), RetailCrmPermanent, "method_not_found"),
    (404, JSON, err("Not found"), RetailCrmPermanent, "not_found"),
    (404, JSON, "", RetailCrmPermanent, "not_found"),
    (405, JSON, err("Method not allowed"), RetailCrmPermanent, "http_405"),
    (409, JSON, err("Conflict"), RetailCrmPermanent, "http_409"),
    (460, JSON, err("Partial success"), RetailCrmPermanent, "http_460"),
    (200, JSON, err("Something failed"), RetailCrmPermanent, "crm_error"),
    (201, JSON, '{"success":false}', RetailCrmPermanent, "crm_error"),
    (200, JSON, '{"success":true,"processedCallsCo', RetailCrmPermanent, "bad_response"),
    (200, JSON, "", RetailCrmPermanent, "bad_response"),
    (200, JSON, "[1, 2]", RetailCrmPermanent, "bad_response"),
    (200, JSON, '{"versions":["5.0"]}', RetailCrmPermanent, "bad_response"),
    (200, JSON, '{"success":"yes"}', RetailCrmPermanent, "bad_response"),
    (200, HTML, ACCOUNT_HTML.replace("Account does not exist.", "Welcome"), RetailCrmPermanent,
     "bad_response"),
    (200, {}, "\x00\xff garbage", RetailCrmPermanent, "bad_response"),
    (503, JSON, err("Rate limit exceeded"), RetailCrmTransient, "http_503"),
    (429, JSON, "", RetailCrmTransient, "http_429"),
    (500, JSON, err("Internal server error"), RetailCrmTransient, "http_500"),
    (502, HTML, "<html><body>502 Bad Gateway</body></html>", RetailCrmTransient, "http_502"),
    (504, {}, '{"success":fal', RetailCrmTransient, "http_504"),
    (503, HTML, ACCOUNT_HTML, RetailCrmTransient, "http_503"),
    (408, {}, "", RetailCrmTransient, "http_408"),
]


@pytest.mark.parametrize(("status", "headers", "body", "cls", "reason"), CASES)
def test_classify_table(
    status: int, headers: dict[str, str], body: str, cls: type[RetailCrmError], reason: str
) -> None:
    outcome = classify(status, headers, body)
    assert type(outcome) is cls, (outcome, status, body)
    assert isinstance(outcome, RetailCrmError)
    assert outcome.reason == reason
    assert outcome.status == status
    assert isinstance(outcome, VochiError)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_returns_the_payload(status: int) -> None:
    body = '{"success":true,"processedCallsCount":2,"duplicateCalls":["a"]}'
    assert classify(status, JSON, body) == {
        "success": True, "processedCallsCount": 2, "duplicateCalls": ["a"]
    }


def test_error_fields_are_kept_as_sent() -> None:
    dict_errors = {"calls[0].result": "The value you selected is not a valid choice."}
    outcome = classify(400, JSON, err("Errors in the entity format", dict_errors))
    assert isinstance(outcome, RetailCrmPermanent)
    assert outcome.error_msg == "Errors in the entity format"
    assert outcome.errors == dict_errors
    assert "calls[0].result" in outcome.message  # the message names the field

    list_errors = ["Customer with id 5 not found", "Site is required"]
    outcome = classify(400, JSON, err("Validation error", list_errors))
    assert isinstance(outcome, RetailCrmPermanent)
    assert outcome.errors == list_errors
    assert "Site is required" in outcome.message


def test_unit_error_has_a_hint_for_the_alert() -> None:
    outcome = classify(403, JSON, err('Wrong "apiKey" value.'))
    assert isinstance(outcome, RetailCrmUnitMustAct)
    assert "API key" in outcome.hint
    assert outcome.to_dict()["kind"] == "unit_must_act"
    assert outcome.to_dict()["errorMsg"] == 'Wrong "apiKey" value.'


def test_headers_are_matched_case_insensitively() -> None:
    outcome = classify(503, {"retry-after": "7"}, "")
    assert isinstance(outcome, RetailCrmTransient)
    assert outcome.retry_after == 7.0
    outcome = classify(405, {"CONTENT-TYPE": "text/html"}, "")
    assert isinstance(outcome, RetailCrmUnitMustAct)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("Sat, 13 Sep 2025 12:00:30 GMT", 30.0),
        ("Sat, 13 Sep 2025 11:59:00 GMT", 0.0),  # a date in the past: retry now
        ("999999999", 86400.0),  # capped: a misconfigured proxy is not advice
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_carries_retry_after(status: int) -> None:
    seconds = classify(status, {"Retry-After": "2"}, err("Rate limit exceeded"))
    assert isinstance(seconds, RetailCrmTransient)
    assert seconds.retry_after == 2.0
    assert seconds.error_msg == "Rate limit exceeded"
    dated = classify(status, {"Retry-After": "Sat, 13 Sep 2025 12:00:05 GMT"}, "", now=NOW)
    assert isinstance(dated, RetailCrmTransient)
    assert dated.retry_after == 5.0
    plain = classify(status, JSON, "")
    assert isinstance(plain, RetailCrmTransient)
    assert plain.retry_after is None
    assert plain.to_dict().get("retry_after") is None


def test_secret_echoed_in_a_body_is_cut_out() -> None:
    key = "test-key-0001-abcdef"
    body = err(f"Wrong key {key}", {"apiKey": key, "note": f"url?apiKey={key}"})
    outcome = classify(400, JSON, body, secret=key)
    assert isinstance(outcome, RetailCrmError)
    for text in (outcome.message, repr(outcome), str(outcome.to_dict()), str(outcome)):
        assert key not in text
    assert outcome.error_msg is not None and outcome.error_msg.endswith("cdef")


def test_redirect_message_names_the_target() -> None:
    outcome = classify(301, {"Location": "https://new.retailcrm.example/api/v5/users"}, "")
    assert isinstance(outcome, RetailCrmUnitMustAct)
    assert "new.retailcrm.example" in outcome.message


def test_message_is_bounded() -> None:
    outcome = classify(400, JSON, err("x" * 5000))
    assert isinstance(outcome, RetailCrmError)
    assert len(outcome.message) <= 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":1}', {"a": 1}),
        ('  {"a":1}', {"a": 1}),
        ("[1]", None),
        ('{"a":', None),
        ("<html>", None),
        ("", None),
        ("null", None),
    ],
)
def test_parse_json_object(text: str, expected: dict[str, int] | None) -> None:
    assert parse_json_object(text) == expected


def test_error_classes_map_to_front_end_statuses() -> None:
    assert RetailCrmTransient.http_status == 503
    assert RetailCrmPermanent.http_status == 502
    assert RetailCrmUnitMustAct.http_status == 502
    assert {RetailCrmTransient.kind, RetailCrmPermanent.kind, RetailCrmUnitMustAct.kind} == {
        "transient", "permanent", "unit_must_act"
    }
