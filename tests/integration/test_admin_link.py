"""``vochi-crm admin-link``: the printed URL signs in to the admin UI (a real app in-process, real
PostgreSQL); --super covers every unit; bad input exits 2 without printing a link."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from typer.testing import CliRunner

from tests.admin_helpers import ADMIN, admin_app, client
from tests.conftest import TEST_JWT_SECRET
from vochi_cli.main import app
from vochi_crm.admin_auth import verify_token


@pytest.fixture
def cli(env: dict[str, str]) -> CliRunner:
    runner = CliRunner(env={"COLUMNS": "200", "VOCHI_PUBLIC_BASE_URL": "https://bot.vochi.by"})
    assert runner.invoke(app, ["units", "add", "0367", "--name", "Pilot"]).exit_code == 0
    return runner


def test_the_printed_link_signs_in(cli: CliRunner) -> None:
    result = cli.invoke(app, ["admin-link", "0367", "--ttl", "30m"])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://bot.vochi.by/retailcrm-admin/"
    query = parse_qs(parts.query)
    assert query["enterprise_number"] == ["0367"]
    scope = verify_token(TEST_JWT_SECRET, query["token"][0])
    assert scope.unit == "0367" and not scope.super
    assert "valid until" in result.stderr

    async def open_link() -> None:
        async with admin_app() as daemon, client(daemon) as http:
            answer = await http.get(f"{ADMIN}/?{parts.query}")
            assert answer.status_code == 303
            assert answer.headers["location"] == f"{ADMIN}/units/0367/connection"
            assert (await http.get(answer.headers["location"])).status_code == 200
            assert (await http.get(f"{ADMIN}/units/0368/connection")).status_code == 403

    anyio.run(open_link)


def test_super_links_and_json(cli: CliRunner) -> None:
    result = cli.invoke(app, ["admin-link", "--super", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["super"] is True and body["unit"] is None
    token = parse_qs(urlsplit(body["url"]).query)["token"][0]
    assert verify_token(TEST_JWT_SECRET, token).super


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["admin-link"], {}, "--super"),
        (["admin-link", "0999"], {}, "does not exist"),
        (["admin-link", "0367", "--ttl", "soon"], {}, "--ttl"),
        (["admin-link", "0367", "--ttl", "30d"], {}, "between 1m and 7d"),
        (["admin-link", "0367"], {"VOCHI_ADMIN__JWT_SECRET": ""}, "VOCHI_ADMIN__JWT_SECRET"),
    ],
)
def test_bad_input_exits_2_without_a_link(
    cli: CliRunner, args: list[str], extra_env: dict[str, str], message: str
) -> None:
    if "VOCHI_ADMIN__JWT_SECRET" in extra_env:
        result = cli.invoke(app, args, env={"VOCHI_ADMIN__JWT_SECRET": None})
    else:
        result = cli.invoke(app, args, env=extra_env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "token=" not in result.output
