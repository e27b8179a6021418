"""The admin pages over the real use-cases: the real app in-process, real PostgreSQL, the RetailCRM
simulator on a real socket. Connection (save, masking, bad input, double submit, test), mapping
(live users, duplicates, unknown users, registration), journal (filters, story, replay) and
diagnostics."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.admin_helpers import (
    ADMIN,
    TOKEN_0367,
    admin_app,
    client,
    csrf_of,
    form_of,
    sign_in,
)
from tests.scenarios import load_scenario
from tests.simulator_helpers import SimControl
from vochi_crm.retailcrm_config import ConfigChange
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = pytest.mark.anyio
UNIT = f"{ADMIN}/units/0367"
T = TypeVar("T")




@pytest.fixture
async def app(env: dict[str, str], sim: SimControl) -> AsyncIterator[FastAPI]:
    async with admin_app() as app:
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as http:
        await sign_in(http, "0367")
        yield http


async def connect(app: FastAPI, sim: SimControl, *, enabled: bool = True, **more: Any) -> None:
    change = ConfigChange(api_url=sim.base_url, api_key=DEMO_API_KEY, enabled=enabled, **more)
    await app.state.runtime.configs.update("0367", change)


def stored(database_url: str, unit: str = "0367") -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT integrations_config -> 'retailcrm' FROM enterprises WHERE number = %s", [unit]
        ).fetchone()
    assert row is not None
    return row[0]


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 20.0) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await anyio.sleep(0.1)


# -- Подключение / Connection -------------------------------------------------------------------


async def test_saving_the_connection_masks_the_key_and_keeps_the_mapping(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl, database_url: str
) -> None:
    await app.state.runtime.configs.update("0367", ConfigChange(map={"151": 16}))
    csrf, version = await form_of(http, f"{UNIT}/connection")
    data = {"csrf_token": csrf, "version": version, "api_url": sim.base_url,
            "api_key": f"  {DEMO_API_KEY} ", "enabled": "on"}
    saved = await http.post(f"{UNIT}/connection", data=data)
    assert saved.status_code == 303
    page = await http.get(saved.headers["location"])
    assert "Настройки сохранены" in page.text
    assert "••••0001" in page.text
    assert DEMO_API_KEY not in page.text
    assert 'type="password"' in page.text and 'value=""' in page.text
    config = (await app.state.runtime.configs.get("0367")).retailcrm
    assert config.api_key == DEMO_API_KEY  # stripped of the pasted blanks
    assert dict(config.user_mappings) == {"151": 16}  # the save kept the mapping
    assert config.enabled

    # an empty key field keeps the stored key
    csrf, version = await form_of(http, f"{UNIT}/connection")
    data = {"csrf_token": csrf, "version": version, "api_url": sim.base_url, "api_key": ""}
    assert (await http.post(f"{UNIT}/connection", data=data)).status_code == 303
    config = (await app.state.runtime.configs.get("0367")).retailcrm
    assert config.api_key == DEMO_API_KEY and not config.enabled
    assert dict(config.user_mappings) == {"151": 16}


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"api_url": "not a url"}, 422, "Это не адрес аккаунта RetailCRM"),
        ({"api_url": "https://shop.retailcrm.ru/admin?x=1"}, 422, "Это не адрес"),
        ({"api_url": "ftp://shop.retailcrm.ru"}, 422, "Это не адрес"),
        ({"api_url": ""}, 422, "Укажите адрес RetailCRM"),
        ({"api_key": "abc def"}, 422, "не может быть пробелов"),
        ({"api_key": "k" * 201}, 422, "слишком длинный"),
        ({"enabled": "on"}, 422, "укажите ключ API"),
    ],
    ids=["junk-url", "url-with-path", "ftp", "empty-url", "key-with-space", "long-key", "no-key"],
)
async def test_bad_connection_input_says_what_is_wrong_and_saves_nothing(
    http: httpx.AsyncClient, database_url: str, fields: dict[str, str], status: int, message: str
) -> None:
    before = stored(database_url)
    csrf, version = await form_of(http, f"{UNIT}/connection")
    data = {"csrf_token": csrf, "version": version, "api_url": "https://shop.retailcrm.ru",
            "api_key": "", **fields}
    answer = await http.post(f"{UNIT}/connection", data=data)
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert stored(database_url) == before
    if fields.get("api_key"):
        assert fields["api_key"] not in answer.text  # a typed key is never echoed back


async def test_english_messages_for_bad_input(http: httpx.AsyncClient) -> None:
    csrf, version = await form_of(http, f"{UNIT}/connection?lang=en")
    data = {"csrf_token": csrf, "version": version, "api_url": "nope", "api_key": "a b"}
    answer = await http.post(f"{UNIT}/connection", data=data)
    assert "This is not a RetailCRM account address" in answer.text
    assert "An API key cannot contain spaces" in answer.text


async def test_a_double_submitted_form_changes_nothing_the_second_time(
    app: FastAPI, http: httpx.AsyncClient, database_url: str
) -> None:
    csrf, version = await form_of(http, f"{UNIT}/connection")
    first = {"csrf_token": csrf, "version": version, "api_url": "https://first.retailcrm.ru"}
    second = {**first, "api_url": "https://second.retailcrm.ru"}
    assert (await http.post(f"{UNIT}/connection", data=first)).status_code == 303
    again = await http.post(f"{UNIT}/connection", data=second)
    assert again.status_code == 409
    assert "форма отправлена дважды" in again.text
    assert stored(database_url)["api_url"] == "https://first.retailcrm.ru"


async def test_test_connection_shows_every_check(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    csrf, _ = await form_of(http, f"{UNIT}/connection")
    refused = await http.post(f"{UNIT}/connection/test", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "Сначала сохраните адрес и ключ API" in refused.text

    await connect(app, sim, map={"151": 16, "152": 18})
    answer = await http.post(f"{UNIT}/connection/test", data={"csrf_token": csrf})
    assert answer.status_code == 200
    for title in ("Адрес отвечает как RetailCRM", "Ключ API принят", "Доступен API v5",
                  "Привязанные сотрудники существуют и активны"):
        assert title in answer.text
    assert 'class="badge pass"' in answer.text

    await app.state.runtime.configs.update("0367", ConfigChange(api_key="wrong-key-0000-zzzz"))
    failed = await http.post(f"{UNIT}/connection/test", data={"csrf_token": csrf})
    assert "есть проблемы" in failed.text and 'class="badge fail"' in failed.text
    assert "wrong-key-0000-zzzz" not in failed.text


# -- Сотрудники / Mapping -------------------------------------------------------------------------


async def test_mapping_lists_retailcrm_users_and_saves_with_registration(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    await connect(app, sim)
    page = await http.get(f"{UNIT}/mapping")
    assert page.status_code == 200
    for name in ("Petrov Ivan", "Sidorova Anna", "Ivanov Oleg", "Former Olga"):
        assert name in page.text
    assert "неактивен" in page.text  # the fired user is listed, marked
    csrf, version = await form_of(http, f"{UNIT}/mapping")
    data = {"csrf_token": csrf, "version": version, "user_16": "151", "user_18": "152, 155",
            "user_19": "", "user_20": ""}
    saved = await http.post(f"{UNIT}/mapping", data=data)
    assert saved.status_code == 303
    assert "module=ok" in saved.headers["location"]
    config = (await app.state.runtime.configs.get("0367")).retailcrm
    assert dict(config.user_mappings) == {"151": 16, "152": 18, "155": 18}
    module = sim.state("demo")["modules"]["vochi-telephony"]
    codes = {c["code"]: c["userId"] for c in module["integrations"]["telephony"]["additionalCodes"]}
    assert codes == {"151": 16, "152": 18, "155": 18}
    shown = await http.get(saved.headers["location"])
    assert "Модуль телефонии в RetailCRM обновлён" in shown.text
    assert 'value="152, 155"' in shown.text


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"user_16": "151", "user_18": "151"}, "Номер 151 выбран у нескольких сотрудников"),
        ({"user_16": "151", "user_999": "152"}, "Сотрудника 999 нет в RetailCRM"),
        ({"user_16": "15a"}, "«15a» — не внутренний номер"),
        ({"user_16": "1234567"}, "не внутренний номер"),
    ],
    ids=["duplicate", "unknown-user", "letters", "too-long"],
)
async def test_bad_mappings_are_refused_whole(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl, database_url: str,
    rows: dict[str, str], message: str,
) -> None:
    await connect(app, sim, map={"153": 19})
    before = stored(database_url)
    csrf, version = await form_of(http, f"{UNIT}/mapping")
    answer = await http.post(
        f"{UNIT}/mapping", data={"csrf_token": csrf, "version": version, **rows}
    )
    assert answer.status_code == 422
    assert message in answer.text
    assert "Привязка не сохранена" in answer.text
    assert stored(database_url) == before


async def test_mapping_without_retailcrm_users_changes_nothing(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl, database_url: str
) -> None:
    await connect(app, sim, map={"151": 16})
    csrf, version = await form_of(http, f"{UNIT}/mapping")
    await app.state.runtime.configs.update("0367", ConfigChange(api_key="wrong-key-0000-zzzz"))
    before = stored(database_url)
    page = await http.get(f"{UNIT}/mapping")
    assert "Не удалось получить сотрудников из RetailCRM" in page.text
    assert "151" in page.text  # the current mapping, read-only
    answer = await http.post(
        f"{UNIT}/mapping", data={"csrf_token": csrf, "version": version, "user_16": "152"}
    )
    assert answer.status_code == 409
    assert stored(database_url) == before


# -- Журнал / Journal -----------------------------------------------------------------------------


async def post_scenario(http: httpx.AsyncClient, name: str = "2-1-real") -> str:
    scenario = load_scenario(name, token=TOKEN_0367)
    for event in scenario.events:
        body = {"token": TOKEN_0367, "event_type": event.event_type, "payload": event.data}
        answer = await http.post("/api/events", json=body)
        assert answer.status_code in (200, 202), answer.text
    return scenario.unique_id


async def statuses(app: FastAPI, call: str) -> list[str]:
    from vochi_crm.journal import call_story

    story = await call_story(app.state.runtime.db, call=call, unit="0367")
    return [e.status for e in story.events]


async def test_the_journal_shows_a_call_its_story_and_filters(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    await connect(app, sim, map={"150": 19, "151": 16, "152": 18})
    call = await post_scenario(http)

    async def delivered() -> bool | None:
        found = await statuses(app, call)
        done = all(s in ("delivered", "skipped") for s in found) and "delivered" in found
        return True if done else None

    await eventually(delivered)
    page = await http.get(f"{UNIT}/journal")
    assert page.status_code == 200
    assert call in page.text and "375442220002" in page.text
    assert "доставлено" in page.text and "calls_upload" in page.text
    by_phone = await http.get(f"{UNIT}/journal", params={"phone": "+375 44 222-00-02"})
    assert call in by_phone.text
    other = await http.get(f"{UNIT}/journal", params={"phone": "375290000001"})
    assert call not in other.text and "Событий нет" in other.text
    assert call in (await http.get(f"{UNIT}/journal", params={"call": call})).text
    assert call not in (await http.get(f"{UNIT}/journal", params={"status": "failed"})).text
    assert call not in (await http.get(f"{UNIT}/journal", params={"day": "2001-01-01"})).text

    story = await http.get(f"{UNIT}/journal/calls/{call}")
    assert story.status_code == 200
    for kind in ("событие получено", "запрос в RetailCRM", "итог события"):
        assert kind in story.text
    assert DEMO_API_KEY not in story.text

    # another unit's journal knows nothing of this call
    await sign_in(http, None, super_=True)
    assert call not in (await http.get(f"{ADMIN}/units/0368/journal")).text
    assert (await http.get(f"{ADMIN}/units/0368/journal/calls/{call}")).status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"phone": "abc"}, "Телефон — только цифры"),
        ({"call": "x y"}, "Это не идентификатор звонка"),
        ({"status": "bogus"}, "Неизвестный статус"),
        ({"day": "13.09.2025"}, "Дата в формате ГГГГ-ММ-ДД"),
    ],
)
async def test_bad_journal_filters_are_named(
    http: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    answer = await http.get(f"{UNIT}/journal", params=params)
    assert answer.status_code == 422
    assert message in answer.text


async def test_a_failed_event_is_replayed_from_the_journal(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    await connect(app, sim, map={"150": 19, "151": 16, "152": 18})
    # RetailCRM garbles its answer to the history upload: a permanent failure, at once
    upload = "/api/v5/telephony/calls/upload"
    sim.control(account="demo", fail={"mode": "garbage", "paths": [upload]})
    call = await post_scenario(http)

    async def failed() -> bool | None:
        return True if "failed" in await statuses(app, call) else None

    await eventually(failed)
    page = await http.get(f"{UNIT}/journal", params={"status": "error"})
    assert call in page.text and 'name="event"' in page.text
    sim.control(account="demo", fail=None)
    csrf = csrf_of((await http.get(f"{UNIT}/journal")).text)
    story = await http.get(f"{UNIT}/journal/calls/{call}")
    event_id = story.text.split('name="event" value="')[1].split('"')[0]
    replayed = await http.post(
        f"{UNIT}/journal/replay", data={"csrf_token": csrf, "event": event_id}
    )
    assert replayed.status_code == 303
    result = await http.get(replayed.headers["location"])
    assert "Поставлено в очередь повторно: 1" in result.text

    async def delivered() -> bool | None:
        found = await statuses(app, call)
        return True if all(s in ("delivered", "skipped") for s in found) else None

    await eventually(delivered)


# -- Диагностика / Diagnostics --------------------------------------------------------------------


async def test_diagnostics_tell_what_to_do(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    page = await http.get(f"{UNIT}/diagnostics")
    assert page.status_code == 200
    assert "Интеграция не настроена" in page.text
    assert "Ключ API хранится в зашифрованном виде" in page.text

    await connect(app, sim)
    page = await http.get(f"{UNIT}/diagnostics")
    assert "Ни один внутренний номер не привязан" in page.text
    assert "Интеграция не настроена" not in page.text

    await app.state.runtime.configs.update(
        "0367", ConfigChange(api_key="wrong-key-0000-zzzz", map={"151": 16})
    )
    await post_scenario(http)

    async def paused() -> str | None:
        text = (await http.get(f"{UNIT}/diagnostics")).text
        return text if "RetailCRM отклоняет ключ API" in text else None

    text = await eventually(paused)
    assert "Создайте новый ключ в RetailCRM" in text  # what to do
    assert "Последние ошибки" in text
    assert json.dumps("wrong-key-0000-zzzz")[1:-1] not in text


async def test_diagnostics_show_the_accounts_breaker(
    app: FastAPI, http: httpx.AsyncClient, sim: SimControl
) -> None:
    await connect(app, sim, map={"151": 16, "152": 18})
    sim.control(account="demo", fail={"mode": "503", "count": None})
    try:
        for _ in range(3):
            await post_scenario(http)

        async def held_back() -> str | None:
            text = (await http.get(f"{UNIT}/diagnostics")).text
            return text if "RetailCRM не отвечает" in text else None

        text = await eventually(held_back)
        assert "события ждут и уйдут" in text  # what to do: nothing, it resumes by itself
        accounts = (await http.get("/stats")).json()["delivery"]["accounts"]
        assert list(accounts) == [f"{sim.base_url} (key ••••{DEMO_API_KEY[-4:]})"]
    finally:
        sim.control(account="demo", fail={"mode": "none"})
