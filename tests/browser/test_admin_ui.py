"""An enterprise admin's session in headless Chromium, through nginx to the real daemon: sign in
with a link, connect the unit, map two extensions, test the connection, see a scenario's call in
the journal, replay a failed event, read the diagnostics, be refused another unit's pages, sign
out. Screenshots of every page go to the test's output and to docs/screenshots/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import TOKEN_0367, Stack, screenshot
from tests.scenarios import load_scenario
from vochi_daemon.simulator import DEMO_API_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ADMIN = "/retailcrm-admin"
UNIT = f"{ADMIN}/units/0367"


@pytest.fixture(scope="module")
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))  # admin.js must never throw
    # console errors but the browser's note on 4xx pages (bad input, refusals are expected here)
    tab.on(
        "console",
        lambda msg: errors.append(msg.text)
        if msg.type == "error" and not msg.text.startswith("Failed to load resource")
        else None,
    )
    yield tab
    context.close()
    assert errors == [], errors  # includes CSP violations, which Chromium reports as errors


def post_scenario(stack: Stack, name: str = "2-1-real") -> str:
    """The call services' side: every event of a scenario file, through nginx."""
    scenario = load_scenario(name, token=TOKEN_0367)
    with httpx.Client(base_url=stack.url, timeout=5) as http:
        for event in scenario.events:
            body = {"token": TOKEN_0367, "event_type": event.event_type, "payload": event.data}
            answer = http.post("/retailcrm/api/events", json=body)
            assert answer.status_code in (200, 202), answer.text
    return scenario.unique_id


def settled(stack: Stack, call: str, within: float = 30) -> list[str]:
    """The call's event statuses once none is waiting or being delivered."""
    deadline = time.monotonic() + within
    while True:
        statuses = [
            row[0]
            for row in stack.sql(
                "SELECT status FROM retailcrm_events WHERE call_unique_id = %s ORDER BY id", call
            )
        ]
        if statuses and not {"pending", "processing"} & set(statuses):
            return statuses
        assert time.monotonic() < deadline, f"call {call}: {statuses}"
        time.sleep(0.2)


def test_1_sign_in_with_a_link(page: Any, stack: Stack) -> None:
    link = stack.link("0367")
    assert link.startswith(f"{stack.url}{ADMIN}/?") and "token=" in link
    page.goto(link)
    assert page.url == f"{stack.url}{UNIT}/connection"  # the token left the address bar
    assert page.locator("h1").inner_text() == "Подключение к RetailCRM"
    cookie = next(c for c in page.context.cookies() if c["name"] == "vochi_admin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # invisible to scripts


def test_2_bad_input_is_explained_and_nothing_saved(page: Any, stack: Stack) -> None:
    page.fill("#api_url", "shop retailcrm")
    page.fill("#api_key", "abc def")
    page.click("form.form button.primary")
    assert "Это не адрес аккаунта RetailCRM" in page.inner_text("main")
    assert "В ключе API не может быть пробелов" in page.inner_text("main")
    assert page.input_value("#api_key") == ""  # a typed key is never sent back
    screenshot(page, stack, "connection-errors")
    assert stack.sql("SELECT integrations_config FROM enterprises WHERE number = '0367'") in (
        [({},)],
        [(None,)],
    )


def test_3_connect_the_unit(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.url}{UNIT}/connection")
    page.fill("#api_url", stack.sim.base_url)
    page.fill("#api_key", DEMO_API_KEY)
    page.check("#enabled")
    page.click("form.form button.primary")
    page.wait_for_url(re.compile(r".*/connection\?done=saved$"))
    main = page.inner_text("main")
    assert "Настройки сохранены" in main
    assert page.get_attribute("#api_key", "placeholder") == "••••0001"
    assert DEMO_API_KEY not in page.content()
    stored = stack.sql(
        "SELECT integrations_config -> 'retailcrm' ->> 'api_key' FROM enterprises "
        "WHERE number = '0367'"
    )[0][0]
    assert stored.startswith("vochi:v1:") and DEMO_API_KEY not in stored
    screenshot(page, stack, "connection")


def test_4_map_two_extensions(page: Any, stack: Stack) -> None:
    page.click("nav.tabs >> text=Сотрудники")
    page.wait_for_url(f"{stack.url}{UNIT}/mapping")
    assert "Petrov Ivan" in page.inner_text("table.mapping")
    page.fill("#user_16", "151")
    page.fill("#user_18", "151")  # the same extension twice: the page says so while typing
    assert page.is_visible(".js-duplicates")
    assert "151" in page.inner_text(".js-duplicates")
    screenshot(page, stack, "mapping-duplicate")
    page.fill("#user_18", "152")
    assert not page.is_visible(".js-duplicates")
    page.click("form[data-mapping] button.primary")
    page.wait_for_url(re.compile(r".*/mapping\?done=saved&module=ok$"))
    assert "Модуль телефонии в RetailCRM обновлён" in page.inner_text("main")
    module = stack.sim.state("demo")["modules"]["vochi-telephony"]
    codes = {c["code"]: c["userId"] for c in module["integrations"]["telephony"]["additionalCodes"]}
    assert codes == {"151": 16, "152": 18}
    screenshot(page, stack, "mapping")


def test_5_test_the_connection(page: Any, stack: Stack) -> None:
    page.click("nav.tabs >> text=Подключение")
    page.click("#test-connection")
    page.wait_for_selector("table.checks")
    table = page.inner_text("table.checks")
    assert "Ключ API принят" in table and "Модуль телефонии в RetailCRM" in table
    assert page.locator("table.checks .badge.fail").count() == 0
    screenshot(page, stack, "connection-test")


def test_6_a_call_appears_in_the_journal(page: Any, stack: Stack) -> None:
    call = post_scenario(stack)
    assert "failed" not in settled(stack, call)
    page.click("nav.tabs >> text=Журнал")
    page.fill("#phone", "375442220002")
    page.click("form.filters button")
    events = page.inner_text("table.events")
    assert call in events and "доставлено" in events
    assert "calls_upload" in page.inner_text("table.requests")
    screenshot(page, stack, "journal")
    page.click(f"table.events >> text={call}")
    assert call in page.inner_text("h1")
    timeline = page.inner_text("table.timeline")
    assert "событие получено" in timeline and "запрос в RetailCRM" in timeline
    screenshot(page, stack, "call-story")


def test_7_replay_a_failed_event(page: Any, stack: Stack) -> None:
    upload = "/api/v5/telephony/calls/upload"
    stack.sim.control(account="demo", fail={"mode": "garbage", "paths": [upload]})
    try:
        call = post_scenario(stack)
        assert "failed" in settled(stack, call)
    finally:
        stack.sim.control(account="demo", fail=None)
    page.goto(f"{stack.url}{UNIT}/journal?status=error")
    assert call in page.inner_text("table.events")
    page.click(f"table.events >> text={call}")
    screenshot(page, stack, "replay")
    page.click("form[action$='/journal/replay'] button.primary")
    page.wait_for_url(re.compile(r".*done=replayed.*"))
    assert "Поставлено в очередь повторно: 1" in page.inner_text("main")
    time.sleep(0.5)
    statuses = settled(stack, call)
    assert "failed" not in statuses and "delivered" in statuses


def test_8_diagnostics(page: Any, stack: Stack) -> None:
    page.click("nav.tabs >> text=Диагностика")
    main = page.inner_text("main")
    assert "Очередь" in main and "Связь с RetailCRM" in main
    assert "Ключ API хранится в зашифрованном виде" in main
    screenshot(page, stack, "diagnostics")
    page.click("a[hreflang=en]")
    assert "Diagnostics" in page.inner_text("h1")
    screenshot(page, stack, "diagnostics-en")
    page.click("a[hreflang=ru]")


def test_9_another_units_pages_are_refused(page: Any, stack: Stack) -> None:
    for tab in ("connection", "mapping", "journal", "diagnostics"):
        response = page.goto(f"{stack.url}{ADMIN}/units/0368/{tab}")
        assert response is not None and response.status == 403
        assert "Нет доступа к этому юниту" in page.inner_text("main")
    screenshot(page, stack, "refused")
    with httpx.Client(base_url=stack.url) as http:
        cookie = next(c for c in page.context.cookies() if c["name"] == "vochi_admin_session")
        http.cookies.set(cookie["name"], cookie["value"])
        assert http.get(f"{ADMIN}/api/config/0368").status_code == 403
        assert http.get(f"{ADMIN}/api/config/0367").status_code == 200


def test_10_sign_out(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.url}{UNIT}/connection")
    page.click("form.logout button")
    assert "Вы вышли" in page.inner_text("main")
    response = page.goto(f"{stack.url}{UNIT}/connection")
    assert response is not None and response.status == 403


def test_11_the_key_is_in_no_log(stack: Stack) -> None:
    logs = stack.daemon.output()
    assert "admin_page_error" not in logs
    for path in (stack.shots.parent / "nginx" / "logs").glob("*.log"):
        logs += path.read_text(errors="replace")
    assert DEMO_API_KEY not in logs
    assert "calls_upload" in stack.daemon.output() or "POST" in logs  # the logs were written
