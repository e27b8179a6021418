"""The config store on real PostgreSQL: only our key is written, nothing is lost, NOTIFY follows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from vochi_crm.errors import InvalidInput, NotFound
from vochi_crm.retailcrm_config import ConfigChange, change_from_values
from vochi_crm.runtime import Runtime, open_runtime
from vochi_crm.settings import load_settings

pytestmark = pytest.mark.anyio
KEY = "test-key-0000-abcd"


@pytest.fixture
async def runtime(env: dict[str, str]) -> AsyncIterator[Runtime]:
    async with open_runtime(load_settings()) as rt:
        await rt.units.add("0367", "Pilot", token="375290000000", host="10.0.0.5")
        yield rt


def _raw(url: str, number: str = "0367") -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT integrations_config FROM enterprises WHERE number = %s", (number,)
        ).fetchone()
        assert row is not None
        return row[0]


def _set_raw(url: str, value: object, number: str = "0367") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE enterprises SET integrations_config = %s::jsonb WHERE number = %s",
            (json.dumps(value), number),
        )


async def test_saving_credentials_keeps_other_integrations_and_the_mapping(
    runtime: Runtime, database_url: str
) -> None:
    _set_raw(
        database_url,
        {
            "uon": {"enabled": True, "api_key": "uon-key"},
            "smart": {"primary": "retailcrm"},
            "retailcrm": {
                "domain": "old.retailcrm.ru",
                "api_key": "old-key-1234",
                "user_extensions": {"16": "151", "18": None},
                "last_sync": "2025-09-01",
                "custom_flag": 7,
            },
        },
    )
    unit = await runtime.configs.update(
        "0367",
        change_from_values(
            {"api_url": "https://new.retailcrm.ru", "api_key": KEY, "enabled": "true"}
        ),
    )
    assert unit.retailcrm.user_mappings == {"151": 16}
    stored = _raw(database_url)
    assert stored["uon"] == {"enabled": True, "api_key": "uon-key"}
    assert stored["smart"] == {"primary": "retailcrm"}
    ours = stored["retailcrm"]
    assert ours["api_url"] == ours["domain"] == "https://new.retailcrm.ru"
    assert ours["user_mappings"] == {"151": 16}
    assert ours["user_extensions"] == {"16": "151"}
    assert ours["custom_flag"] == 7 and ours["last_sync"] == "2025-09-01"


async def test_concurrent_mapping_edits_are_all_kept(runtime: Runtime, database_url: str) -> None:
    extensions = [str(100 + i) for i in range(20)]
    await asyncio.gather(
        *(
            runtime.configs.update("0367", ConfigChange(map={ext: 1000 + i}))
            for i, ext in enumerate(extensions)
        )
    )
    assert _raw(database_url)["retailcrm"]["user_mappings"] == {
        ext: 1000 + i for i, ext in enumerate(extensions)
    }


async def test_another_service_writing_its_key_concurrently_is_not_overwritten(
    runtime: Runtime, database_url: str
) -> None:
    await runtime.configs.update("0367", ConfigChange(map={"151": 16}))
    _set_raw(database_url, {**_raw(database_url), "uon": {"enabled": True}})
    await runtime.configs.update("0367", ConfigChange(map={"152": 18}))
    stored = _raw(database_url)
    assert stored["uon"] == {"enabled": True}
    assert stored["retailcrm"]["user_mappings"] == {"151": 16, "152": 18}


async def test_a_write_notifies_after_commit(runtime: Runtime, database_url: str) -> None:
    listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    async with listener:
        await listener.execute("LISTEN integration_config_changed")
        await runtime.configs.update("0367", ConfigChange(map={"151": 16}))
        note = await asyncio.wait_for(anext(listener.notifies()), 5)
    assert json.loads(note.payload) == {
        "enterprise_number": "0367",
        "integration_type": "retailcrm",
    }


async def test_invalid_change_writes_nothing(runtime: Runtime, database_url: str) -> None:
    before = _raw(database_url)
    with pytest.raises(InvalidInput) as info:
        await runtime.configs.update("0367", ConfigChange(enabled=True))
    assert {f.field for f in info.value.fields} == {"api_url", "api_key"}
    with pytest.raises(NotFound):
        await runtime.configs.update("9999", ConfigChange(map={"151": 16}))
    assert _raw(database_url) == before


async def test_delete_removes_only_our_key(runtime: Runtime, database_url: str) -> None:
    _set_raw(database_url, {"uon": {"enabled": True}, "retailcrm": {"enabled": False}})
    await runtime.configs.delete("0367")
    assert _raw(database_url) == {"uon": {"enabled": True}}
    with pytest.raises(NotFound):
        await runtime.configs.delete("9999")


async def test_export_hides_keys_and_import_is_all_or_nothing(
    runtime: Runtime, database_url: str
) -> None:
    await runtime.units.add("0368", "Second")
    await runtime.configs.update("0367", ConfigChange(map={"151": 16}))
    await runtime.configs.update(
        "0367",
        change_from_values({"api_url": "https://a.retailcrm.ru", "api_key": KEY, "enabled": True}),
    )
    await runtime.configs.update("0367", ConfigChange(map={"151": 16}))

    document = await runtime.configs.export()
    assert KEY not in json.dumps(document)
    assert document["units"] == [
        {
            "enterprise_number": "0367",
            "retailcrm": {
                "enabled": True,
                "api_url": "https://a.retailcrm.ru",
                "user_mappings": {"151": 16},
            },
        }
    ]
    with_keys = await runtime.configs.export(["0367"], include_secrets=True)
    assert with_keys["units"][0]["retailcrm"]["api_key"] == KEY

    before = (_raw(database_url, "0367"), _raw(database_url, "0368"))
    bad = {
        "format": "vochi-crm-config/1",
        "units": [
            {"enterprise_number": "0368", "retailcrm": {"api_url": "https://b.retailcrm.ru"}},
            {"enterprise_number": "0367", "retailcrm": {"user_mappings": {"151": "not-a-user"}}},
        ],
    }
    with pytest.raises(InvalidInput) as info:
        await runtime.configs.import_(bad)
    assert info.value.fields[0].field == "units[1].retailcrm.user_mappings.151"
    missing_unit = {
        "units": [
            {"enterprise_number": "0368", "retailcrm": {"enabled": False}},
            {"enterprise_number": "0999", "retailcrm": {"enabled": False}},
        ]
    }
    with pytest.raises(InvalidInput, match="0999"):
        await runtime.configs.import_(missing_unit)
    assert (_raw(database_url, "0367"), _raw(database_url, "0368")) == before

    # enabling a unit that has no key is refused, and nothing is written
    document["units"][0]["enterprise_number"] = "0368"
    with pytest.raises(InvalidInput, match="api_key"):
        await runtime.configs.import_(document)
    assert (_raw(database_url, "0367"), _raw(database_url, "0368")) == before

    # a good document moves the config, keeping the target's key when the record has none
    await runtime.configs.update("0368", change_from_values({"api_key": "other-key-9999"}))
    assert await runtime.configs.import_(document) == ["0368"]
    moved = await runtime.configs.get("0368")
    assert moved.retailcrm.api_url == "https://a.retailcrm.ru"
    assert moved.retailcrm.user_mappings == {"151": 16}
    assert moved.retailcrm.api_key == "other-key-9999"


async def test_units_add_validates_and_refuses_duplicates(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput) as info:
        await runtime.units.add("bad number!", " ", host="x y", ssh_port=0)
    assert {f.field for f in info.value.fields} == {"number", "name", "host", "ssh_port"}
    with pytest.raises(InvalidInput, match="already exists"):
        await runtime.units.add("0367", "Again")
    unit = await runtime.units.get("0367")
    assert (unit.token, unit.host, unit.ssh_port) == ("375290000000", "10.0.0.5", 5059)


async def test_export_carries_the_pbx_settings(runtime: Runtime) -> None:
    await runtime.units.add("0368", "Second")
    await runtime.configs.update("0367", ConfigChange(map={"151": 16}))
    await runtime.configs.update(
        "0367",
        change_from_values(
            {"api_url": "https://a.retailcrm.ru", "redirect_enabled": "true",
             "redirect_context": "inoffice", "fallback_extension": "151"}
        ),
    )
    document = await runtime.configs.export(["0367"])
    body = document["units"][0]["retailcrm"]
    assert body["redirect_enabled"] is True
    assert body["redirect_context"] == "inoffice"
    document["units"][0]["enterprise_number"] = "0368"
    await runtime.configs.import_(document)
    moved = (await runtime.configs.get("0368")).retailcrm
    assert (moved.redirect_enabled, moved.redirect_context) == (True, "inoffice")
    assert moved.fallback_extension == "151"
