"""parse_import and mapping_pairs: pure validation of an import document and of CLI pairs."""

from __future__ import annotations

from typing import Any

import pytest

from vochi_crm.config_service import EXPORT_FORMAT, ImportRecord, mapping_pairs, parse_import
from vochi_crm.errors import InvalidInput
from vochi_crm.retailcrm_config import ConfigChange

KEY = "import-SECRET-key-7777"


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f.field for f in exc.value.fields]


def unit(number: str, **retailcrm: Any) -> dict[str, Any]:
    return {"enterprise_number": number, "retailcrm": retailcrm}


def doc(*units: Any, **extra: Any) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "units": list(units), **extra}


# -- parse_import --------------------------------------------------------------------------------


def test_good_document() -> None:
    records = parse_import(
        doc(
            unit(
                "0367",
                enabled=True,
                api_url="https://a.retailcrm.ru",
                user_mappings={"151": 16, "152": "17"},
            ),
            unit("0368", api_url="b.retailcrm.ru/", api_key=KEY, client_id="vochi-asterisk"),
        )
    )
    assert records == [
        ImportRecord(
            "0367",
            ConfigChange(
                enabled=True,
                api_url="https://a.retailcrm.ru",
                replace_mappings={"151": 16, "152": 17},
            ),
        ),
        ImportRecord(
            "0368",
            ConfigChange(api_url="https://b.retailcrm.ru", api_key=KEY, client_id="vochi-asterisk"),
        ),
    ]
    assert KEY not in repr(records)


def test_format_is_optional() -> None:
    records = parse_import({"units": [unit("0367", enabled=False)]})
    assert [r.number for r in records] == ["0367"]
    assert records[0].change == ConfigChange(enabled=False)


def test_nulls_are_dropped_like_an_export_without_secrets() -> None:
    records = parse_import(doc(unit("0367", api_url="https://a.ru", api_key=None, client_id=None)))
    assert records[0].change == ConfigChange(api_url="https://a.ru")


def test_empty_units() -> None:
    assert parse_import(doc()) == []


def test_record_without_mapping_leaves_the_mapping_alone() -> None:
    (record,) = parse_import(doc(unit("0367", api_url="https://a.ru")))
    assert record.change.replace_mappings is None


@pytest.mark.parametrize("fmt", ["vochi-crm-config/2", "something-else", None, 1])
def test_wrong_format(fmt: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import({"format": fmt, "units": [unit("0367", enabled=True)]})
    assert fields_of(exc) == ["format"]


@pytest.mark.parametrize(
    "document",
    [None, [], "units", 42, {}, {"units": {}}, {"units": "0367"}, {"format": EXPORT_FORMAT}],
)
def test_not_an_export_document(document: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import(document)
    assert fields_of(exc) == ["units"]
    assert EXPORT_FORMAT in exc.value.fields[0].message


def test_bad_record_among_good_ones_is_named_by_position() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import(
            doc(
                unit("0367", api_url="https://a.retailcrm.ru"),
                unit("0368", api_url="https://b.retailcrm.ru/api/v5"),
                unit("0369", api_url="https://c.retailcrm.ru"),
            )
        )
    assert fields_of(exc) == ["units[1].retailcrm.api_url"]
    assert exc.value.exit_code == 2


def test_every_bad_record_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import(
            doc(
                unit("0367", enabled="maybe", api_key="has space"),
                unit("0368", api_url="https://b.ru"),
                unit("0369", user_mappings={"151": 0, "1": 16}),
                unit("0370", colour="red"),
            )
        )
    assert fields_of(exc) == [
        "units[0].retailcrm.enabled",
        "units[0].retailcrm.api_key",
        "units[2].retailcrm.user_mappings.151",
        "units[2].retailcrm.user_mappings.1",
        "units[3].retailcrm.colour",
    ]
    assert "has space" not in str(exc.value)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("0367", "units[1]"),
        (["0367"], "units[1]"),
        ({"retailcrm": {}}, "units[1].enterprise_number"),
        ({"enterprise_number": "", "retailcrm": {}}, "units[1].enterprise_number"),
        ({"enterprise_number": 367, "retailcrm": {}}, "units[1].enterprise_number"),
        ({"enterprise_number": "0368"}, "units[1].retailcrm"),
        ({"enterprise_number": "0368", "retailcrm": "on"}, "units[1].retailcrm"),
    ],
)
def test_malformed_record(item: object, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import(doc(unit("0367", enabled=True), item))
    assert fields_of(exc) == [field]


def test_duplicate_units() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_import(
            doc(
                unit("0367", enabled=True),
                unit("0368", enabled=True),
                unit("0367", enabled=False),
            )
        )
    assert fields_of(exc) == ["units[2].enterprise_number"]
    assert "0367" in exc.value.fields[0].message


# -- mapping_pairs -------------------------------------------------------------------------------


def test_mapping_pairs_good() -> None:
    assert mapping_pairs(["151=16", " 152 = 17 ", "153=x"]) == [
        ("151", "16"),
        ("152", "17"),
        ("153", "x"),  # values are validated later, by validate_pairs
    ]


def test_mapping_pairs_empty() -> None:
    assert mapping_pairs([]) == []


def test_mapping_pairs_names_every_malformed_item() -> None:
    with pytest.raises(InvalidInput) as exc:
        mapping_pairs(["151=16", "152", "=17", "153=", " = ", "154:18", "155=19"])
    assert fields_of(exc) == ["152", "=17", "153=", " = ", "154:18"]
    assert all("EXTENSION=USER_ID" in f.message for f in exc.value.fields)
