"""The RetailCRM client's wire format, against hand-written vcrpy cassettes and mock transports.

Cassettes (``tests/cassettes/retailcrm_*.yaml``) are written from the documented request/response
shapes (reference A5–A12) and replayed with ``record_mode="none"``: a request the client encodes
differently (method, host, path, query or form body — JSON entity fields compared as exact
strings) finds no match and fails the test. The API key is filtered from requests before
matching, and must appear in no cassette; where it *is* sent (the header) is checked with a mock
transport.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest
import vcr

from vochi_crm.errors import InvalidInput
from vochi_crm.retailcrm import (
    Exchange,
    RetailCrmClient,
    RetailCrmPermanent,
    RetailCrmTransient,
    RetailCrmUnitMustAct,
    normalise_base_url,
)

pytestmark = pytest.mark.anyio

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
BASE = "https://acme.retailcrm.example"
KEY = "test-key-0001-not-secret"
REPLAY = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    filter_headers=["X-API-KEY"],
    match_on=["method", "scheme", "host", "path", "query", "body"],
)

EVENT_IN = {"phone": "+375290000000", "type": "in", "codes": ["151"], "userIds": [16],
            "callExternalId": "1757765248.0", "externalPhone": "+375172000000"}
EVENT_HANGUP = {"phone": "+375290000000", "type": "hangup", "codes": ["151"],
                "callExternalId": "1757765248.0", "hangupStatus": "no answered"}
CALLS = [
    {"date": "2025-09-13 15:07:28", "type": "in", "phone": "375290000000", "code": "151",
     "result": "answered", "duration": 42, "durationWaiting": 7, "externalId": "1757765248.0",
     "recordUrl": "https://pbx.example.test/recordings/file/3f0c5a6e",
     "externalPhone": "+375172000000"},
    {"date": "2025-09-13 15:10:02", "type": "out", "phone": "375291112233", "userId": 18,
     "result": "no answer", "duration": 0, "externalId": "1757765402.3"},
]
MODULE = {
    "code": "vochi-telephony", "active": True, "name": "Vochi-CRM",
    "logo": "https://crm.example.test/static/img/vochi_logo.svg",
    "baseUrl": "https://crm.example.test", "clientId": "cid-fake-0367-abcdef",
    "accountUrl": "https://crm.example.test/retailcrm-admin/?enterprise_number=0367"
                  "&token=fake-jwt-token-0001",
    "integrations": {"telephony": {
        "makeCallUrl": "https://crm.example.test/retailcrm/make-call",
        "changeUserStatusUrl": "https://crm.example.test/retailcrm/status",
        "allowEdit": False, "inputEventSupported": True, "outputEventSupported": True,
        "hangupEventSupported": True,
        "additionalCodes": [{"userId": 16, "code": "151"}, {"userId": 18, "code": "152"}],
        "externalPhones": [],
    }},
}


@pytest.fixture
def journal() -> list[Exchange]:
    return []


def client(journal: list[Exchange] | None = None, **kwargs: Any) -> RetailCrmClient:
    # vcrpy replays by patching httpx's own transport classes, so cassette tests use httpx's
    # transport; the client's default LeanTransport is tested on real sockets in
    # tests/integration/test_lean_transport.py
    kwargs.setdefault("transport", httpx.AsyncHTTPTransport())
    hook = journal.append if journal is not None else None
    return RetailCrmClient(BASE, KEY, on_exchange=hook, **kwargs)


# -- cassettes: the documented request encodings ------------------------------------------------


async def test_service_methods_match_the_cassette() -> None:
    with REPLAY.use_cassette("retailcrm_service.yaml") as cassette:
        async with client() as crm:
            versions = await crm.api_versions()
            creds = await crm.credentials()
    assert cassette.all_played
    assert versions.data["versions"] == ["3.0", "4.0", "5.0"]
    assert "/api/telephony/call/event" in creds.data["credentials"]
    assert versions.status == 200 and versions.elapsed_ms >= 0


async def test_users_match_the_cassette() -> None:
    with REPLAY.use_cassette("retailcrm_users.yaml") as cassette:
        async with client() as crm:
            page = await crm.users(
                limit=20, filters={"active": True, "isManager": True,
                                   "groups": ["sales", "support"]}
            )
            one = await crm.user(16)
            status = await crm.user_status(16, "dinner")
    assert cassette.all_played
    assert [u["id"] for u in page.data["users"]] == [16, 18]
    assert page.data["users"][0]["firstName"] == "Иван"  # UTF-8 decoded
    assert one.data["user"]["email"] == "ivan@acme.example"
    assert status.data == {"success": True}


async def test_telephony_matches_the_cassette(journal: list[Exchange]) -> None:
    with REPLAY.use_cassette("retailcrm_telephony.yaml") as cassette:
        async with client(journal) as crm:
            ring = await crm.call_event(EVENT_IN)
            hangup = await crm.call_event(EVENT_HANGUP)
            upload = await crm.calls_upload(CALLS)
            found = await crm.manager("+375290000000", details=True, ignore_status=False)
    assert cassette.all_played
    assert ring.data == {"success": True}
    assert hangup.data["notExistCodes"] == ["151"]
    assert upload.data["processedCallsCount"] == 1
    assert upload.data["duplicateCalls"] == ["1757765402.3"]
    assert found.data["manager"]["code"] == "151"
    assert found.data["customer"]["phones"] == [{"number": "+375290000000"}]
    # the journal gets decoded request fields, so a record can be read and queried
    assert [e.path for e in journal] == [
        "/api/v5/telephony/call/event", "/api/v5/telephony/call/event",
        "/api/v5/telephony/calls/upload", "/api/v5/telephony/manager",
    ]
    assert journal[0].request == {"event": EVENT_IN}
    assert journal[2].request == {"calls": CALLS}
    assert journal[3].query == {"phone": "+375290000000", "details": "1", "ignoreStatus": "0"}
    assert all(e.ok and e.status == 200 for e in journal)


async def test_integration_module_matches_the_cassette(journal: list[Exchange]) -> None:
    with REPLAY.use_cassette("retailcrm_integration_module.yaml") as cassette:
        async with client(journal) as crm:
            edit = await crm.integration_module_edit("vochi-telephony", MODULE)
            got = await crm.integration_module_get("vochi-telephony")
    assert cassette.all_played
    assert edit.data["info"] == {"notExistUsersIds": []}
    module = got.data["integrationModule"]
    assert module["integrations"]["telephony"]["additionalCodes"][1] == {"userId": 18,
                                                                         "code": "152"}
    # the caller's data is untouched, the journal record is masked
    assert got.data["integrationModule"]["clientId"] == "cid-fake-0367-abcdef"
    sent = journal[0].request["integrationModule"]
    assert sent["clientId"] == "••••cdef"
    assert "fake-jwt-token-0001" not in sent["accountUrl"]
    assert sent["accountUrl"].endswith("token=••••0001")
    assert sent["integrations"] == MODULE["integrations"]
    assert journal[1].response["integrationModule"]["clientId"] == "••••cdef"
    assert "fake-jwt-token-0001" not in json.dumps([e.to_dict() for e in journal])


async def test_error_answers_from_the_cassette(journal: list[Exchange]) -> None:
    with REPLAY.use_cassette("retailcrm_errors.yaml") as cassette:
        async with client(journal) as crm:
            with pytest.raises(RetailCrmUnitMustAct) as wrong_key:
                await crm.credentials()
            with pytest.raises(RetailCrmPermanent) as no_method:
                await crm.integration_module_get("no-such-module")
            with pytest.raises(RetailCrmPermanent) as invalid:
                await crm.calls_upload([{"date": "2025-09-13 15:07:28", "type": "in",
                                         "phone": "375290000000", "result": "missed",
                                         "externalId": "1757765248.0"}])
            with pytest.raises(RetailCrmUnitMustAct) as gone:
                await crm.call_event({"phone": "+375290000000", "type": "out",
                                      "codes": ["152"]})
            with pytest.raises(RetailCrmTransient) as throttled:
                await crm.users()
    assert cassette.all_played
    assert (wrong_key.value.reason, wrong_key.value.status) == ("invalid_key", 403)
    assert wrong_key.value.error_msg == 'Wrong "apiKey" value.'
    assert no_method.value.reason == "method_not_found"
    assert invalid.value.reason == "validation"
    assert invalid.value.errors == {
        "calls[0].result": "The value you selected is not a valid choice."
    }
    assert "calls[0].result" in str(invalid.value)
    assert (gone.value.reason, gone.value.status) == ("account_missing", 405)
    assert (throttled.value.reason, throttled.value.retry_after) == ("http_503", 2.0)
    # every failure was journaled too, with the outcome, and the exception carries its record
    assert [e.outcome for e in journal] == [
        "unit_must_act", "permanent", "permanent", "unit_must_act", "transient"
    ]
    assert gone.value.exchange is journal[3]
    assert isinstance(journal[3].response, str) and journal[3].response.startswith("<!DOCTYPE")
    assert journal[2].response["errors"] == invalid.value.errors


def test_cassettes_hold_no_api_key() -> None:
    files = sorted(CASSETTES.glob("retailcrm_*.yaml"))
    assert len(files) == 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert KEY not in text
        assert "x-api-key" not in text.lower()
        assert "apikey=" not in text.lower()


# -- where the key goes, and what the wire looks like ---------------------------------------------


class Recorder:
    """A mock transport that keeps every request and answers with a fixed response."""

    def __init__(self, status: int = 200, body: str = '{"success":true}',
                 headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body = status, body
        self.headers = headers or {"Content-Type": "application/json"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text=self.body, headers=self.headers)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


async def test_key_only_in_the_header_and_bodies_form_encoded() -> None:
    recorder = Recorder()
    async with client(transport=recorder.transport()) as crm:
        await crm.call_event(EVENT_IN)
        await crm.manager("+375290000000")
        await crm.users(filters={"active": False, "email": "a@b.c"})
    post, get, users = recorder.requests
    for request in recorder.requests:
        assert request.headers["X-API-KEY"] == KEY
        assert KEY not in str(request.url)
        assert "apikey" not in str(request.url).lower()
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(post.content.decode("ascii"))
    assert list(form) == ["event"]
    assert json.loads(form["event"][0]) == EVENT_IN
    assert KEY.encode() not in post.content
    assert dict(get.url.params) == {"phone": "+375290000000", "details": "1",
                                    "ignoreStatus": "1"}
    assert users.url.params["filter[active]"] == "0"
    assert users.url.params["filter[email]"] == "a@b.c"


async def test_non_ascii_is_sent_as_utf8_json() -> None:
    recorder = Recorder()
    async with client(transport=recorder.transport()) as crm:
        await crm.call_event({"phone": "+375290000000", "type": "in", "codes": ["151"],
                              "site": "магазин"})
    form = parse_qs(recorder.requests[0].content.decode("ascii"))
    assert '"site":"магазин"' in form["event"][0]


async def test_hook_failure_does_not_fail_the_call(journal: list[Exchange]) -> None:
    def broken(exchange: Exchange) -> None:
        raise RuntimeError("journal down")

    async with RetailCrmClient(BASE, KEY, transport=Recorder().transport(),
                               on_exchange=broken) as crm:
        result = await crm.api_versions()
    assert result.data == {"success": True}
    assert crm.last_exchange is result.exchange


async def test_success_false_inside_200_is_a_failure() -> None:
    recorder = Recorder(body='{"success":false,"errorMsg":"Something failed"}')
    async with client(transport=recorder.transport()) as crm:
        with pytest.raises(RetailCrmPermanent) as info:
            await crm.calls_upload(CALLS)
    assert info.value.reason == "crm_error"
    assert info.value.exchange is not None and info.value.exchange.status == 200


async def test_echoed_key_never_reaches_records_or_errors(journal: list[Exchange]) -> None:
    page = f"<html><body>Account does not exist. /api/v5/users?apiKey={KEY}</body></html>"
    recorder = Recorder(status=404, body=page, headers={"Content-Type": "text/html"})
    async with client(journal, transport=recorder.transport()) as crm:
        with pytest.raises(RetailCrmUnitMustAct) as info:
            await crm.users()
        assert KEY not in repr(crm)
    assert info.value.reason == "account_missing"
    dumped = json.dumps([e.to_dict() for e in journal]) + repr(info.value) + str(info.value)
    dumped += json.dumps(info.value.to_dict())
    assert KEY not in dumped


# -- transport failures --------------------------------------------------------------------------


class Hanging(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        raise AssertionError("unreachable")


class Refusing(httpx.AsyncBaseTransport):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


async def test_hard_deadline_covers_the_whole_call(journal: list[Exchange]) -> None:
    async with client(journal, transport=Hanging(), timeout=0.2) as crm:
        with anyio.fail_after(5):
            with pytest.raises(RetailCrmTransient) as info:
                await crm.call_event(EVENT_IN)
    assert info.value.reason == "timeout"
    assert info.value.status is None
    record = journal[0]
    assert record.outcome == "transient" and record.reason == "timeout"
    assert 150 <= record.elapsed_ms < 2000
    assert record.request == {"event": EVENT_IN}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("peer closed"), "network"),
        (httpx.ReadError("reset"), "network"),
    ],
)
async def test_transport_errors_are_transient(exc: Exception, reason: str) -> None:
    async with client(transport=Refusing(exc)) as crm:
        with pytest.raises(RetailCrmTransient) as info:
            await crm.api_versions()
    assert info.value.reason == reason
    assert info.value.exchange is not None and info.value.exchange.status is None


async def test_real_connection_refused_is_transient_connect() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RetailCrmClient(f"http://127.0.0.1:{port}", KEY, timeout=2) as crm:
        with pytest.raises(RetailCrmTransient) as info:
            await crm.api_versions()
    assert info.value.reason == "connect"


# -- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.retailcrm.ru", "https://acme.retailcrm.ru"),
        ("https://acme.retailcrm.ru/", "https://acme.retailcrm.ru"),
        ("https://acme.retailcrm.ru/api/v5/", "https://acme.retailcrm.ru"),
        ("http://127.0.0.1:8090/api", "http://127.0.0.1:8090"),
        (" https://acme.simla.com ", "https://acme.simla.com"),
    ],
)
def test_normalise_base_url(raw: str, expected: str) -> None:
    assert normalise_base_url(raw) == expected


@pytest.mark.parametrize("raw", ["ftp://acme.retailcrm.ru", "https://", "https://a b.ru",
                                 "https://acme.retailcrm.ru/?apiKey=x"])
def test_bad_base_url_is_invalid_input(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        RetailCrmClient(raw, KEY)
    assert info.value.fields[0].field == "api_url"


async def test_bad_arguments_are_refused_before_any_request() -> None:
    recorder = Recorder()
    with pytest.raises(InvalidInput):
        RetailCrmClient(BASE, "")
    with pytest.raises(InvalidInput):
        RetailCrmClient(BASE, KEY, timeout=0)
    async with client(transport=recorder.transport()) as crm:
        with pytest.raises(InvalidInput):
            await crm.users(limit=30)  # RetailCRM accepts 20/50/100 only
        with pytest.raises(InvalidInput):
            await crm.user_status(16, "lunch")
        with pytest.raises(InvalidInput):
            await crm.user(0)
        with pytest.raises(InvalidInput):
            await crm.manager("  ")
        with pytest.raises(InvalidInput):
            await crm.integration_module_get("")
    assert recorder.requests == []


async def test_module_code_is_escaped_in_the_path() -> None:
    recorder = Recorder()
    async with client(transport=recorder.transport()) as crm:
        await crm.integration_module_edit("a/b c", {"code": "a/b c"})
    assert recorder.requests[0].url.raw_path == b"/api/v5/integration-modules/a%2Fb%20c/edit"


def test_repr_masks_the_key() -> None:
    crm = client()
    assert KEY not in repr(crm)
    assert repr(crm).endswith("'••••cret')")
