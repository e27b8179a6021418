"""The RetailCRM config model: every stored variant read, written back without loss, validated."""

from __future__ import annotations

from typing import Any

import pytest

from vochi_crm.errors import InvalidInput
from vochi_crm.retailcrm_config import (
    ConfigChange,
    RetailCrmConfig,
    apply_change,
    change_from_values,
    parse_bool,
    read_stored,
    to_stored,
    validate_api_key,
    validate_extension,
    validate_mappings,
    validate_url,
    validate_user_id,
)

KEY = "k3y-SECRET-value-9876"
CLIENT = "client-SECRET-id-5555"


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f.field for f in exc.value.fields]


# -- read_stored ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "retailcrm", 42, True, ["api_url", "x"]])
def test_read_stored_non_dict_gives_defaults(raw: Any) -> None:
    config = read_stored(raw)
    assert config == RetailCrmConfig()
    assert config.enabled is False
    assert config.api_url is None
    assert config.api_key is None
    assert dict(config.user_mappings) == {}
    assert config.configured is False


def test_read_stored_empty_dict_gives_defaults() -> None:
    assert read_stored({}) == RetailCrmConfig()


def test_read_stored_our_variant() -> None:
    config = read_stored(
        {
            "enabled": True,
            "api_url": "https://shop.retailcrm.ru",
            "api_key": KEY,
            "client_id": "vochi-asterisk",
            "user_mappings": {"151": 16, "152": "17"},
        }
    )
    assert config.enabled is True
    assert config.api_url == "https://shop.retailcrm.ru"
    assert config.api_key == KEY
    assert config.client_id == "vochi-asterisk"
    assert dict(config.user_mappings) == {"151": 16, "152": 17}
    assert config.configured is True


def test_read_stored_design_v1_variant() -> None:
    config = read_stored(
        {"enabled": True, "api_url": "https://x.retailcrm.ru", "api_key": KEY, "client_id": "c"}
    )
    assert config.api_url == "https://x.retailcrm.ru"
    assert config.client_id == "c"
    assert dict(config.user_mappings) == {}


def test_read_stored_implemented_variant_inverts_user_extensions() -> None:
    config = read_stored(
        {
            "enabled": True,
            "domain": "https://x.retailcrm.ru/",
            "api_key": KEY,
            "user_extensions": {"16": "152", "18": "151", "19": "150", "20": None},
            "last_sync": "2025-09-01T10:00:00Z",
        }
    )
    assert config.api_url == "https://x.retailcrm.ru"
    assert dict(config.user_mappings) == {"152": 16, "151": 18, "150": 19}
    assert config.last_sync == "2025-09-01T10:00:00Z"
    assert config.enabled is True


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("x.retailcrm.ru", "https://x.retailcrm.ru"),
        ("x.retailcrm.ru/", "https://x.retailcrm.ru"),
        ("  x.retailcrm.ru//  ", "https://x.retailcrm.ru"),
        ("https://x.retailcrm.ru/", "https://x.retailcrm.ru"),
        ("http://x.retailcrm.ru", "http://x.retailcrm.ru"),
    ],
)
def test_read_stored_domain_normalised(domain: str, expected: str) -> None:
    assert read_stored({"domain": domain}).api_url == expected
    assert read_stored({"api_url": domain}).api_url == expected


def test_read_stored_user_extensions_with_numbers() -> None:
    config = read_stored({"user_extensions": {"16": 152, 18: " 151 "}})
    assert dict(config.user_mappings) == {"152": 16, "151": 18}


def test_read_stored_api_url_preferred_over_domain() -> None:
    config = read_stored({"api_url": "https://new.retailcrm.ru", "domain": "old.retailcrm.ru"})
    assert config.api_url == "https://new.retailcrm.ru"


@pytest.mark.parametrize("junk", ["   ", 5])
def test_read_stored_junk_api_url_falls_back_to_domain(junk: object) -> None:
    """Junk is skipped as if absent, so a usable ``domain`` next to it is still read."""
    config = read_stored({"api_url": junk, "domain": "old.retailcrm.ru"})
    assert config.api_url == "https://old.retailcrm.ru"


def test_read_stored_user_mappings_win_per_extension() -> None:
    config = read_stored(
        {
            "user_extensions": {"16": "151", "17": "152"},
            "user_mappings": {"151": 20, "153": 21},
        }
    )
    assert dict(config.user_mappings) == {"151": 20, "152": 17, "153": 21}


def test_read_stored_junk_values_are_skipped_not_fatal() -> None:
    config = read_stored(
        {
            "enabled": "garbage",
            "api_url": "",
            "api_key": 12345,
            "client_id": ["x"],
            "user_mappings": {
                "151": "abc",
                "152": None,
                "153": True,
                "154": 1.5,
                "155": "17",
                "156": [1],
                "157": {"id": 1},
                " 158 ": " 18 ",
            },
            "user_extensions": {"abc": "160", "21": "", "22": "   ", "23": None},
        }
    )
    assert config.enabled is False
    assert config.api_url is None
    assert config.api_key is None
    assert config.client_id is None
    assert dict(config.user_mappings) == {"155": 17, "158": 18}


@pytest.mark.parametrize("junk", ["junk", 12, ["151", 16], None])
def test_read_stored_non_mapping_mappings_ignored(junk: object) -> None:
    config = read_stored({"user_mappings": junk, "user_extensions": junk, "api_key": KEY})
    assert dict(config.user_mappings) == {}
    assert config.api_key == KEY


@pytest.mark.parametrize("junk", ["²"])
def test_read_stored_unicode_digit_user_id_is_skipped_not_fatal(junk: str) -> None:
    # "²".isdigit() is True but int("²") raises ValueError
    config = read_stored({"user_mappings": {"151": junk, "152": 17}})
    assert dict(config.user_mappings) == {"152": 17}
    config = read_stored({"user_extensions": {junk: "151", "17": "152"}})
    assert dict(config.user_mappings) == {"152": 17}


@pytest.mark.parametrize("junk", [["152"], True])
def test_read_stored_junk_extension_in_user_extensions_is_skipped(junk: object) -> None:
    config = read_stored({"user_extensions": {"16": junk, "18": "151"}})
    assert dict(config.user_mappings) == {"151": 18}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("yes", True),
        ("0", False),
        (1, True),
        (0, False),
        (None, False),
        ("nonsense", False),
    ],
)
def test_read_stored_enabled_spellings(value: object, expected: bool) -> None:
    assert read_stored({"enabled": value}).enabled is expected


def test_read_stored_last_sync_kept_and_stringified() -> None:
    assert read_stored({"last_sync": "2025-01-01"}).last_sync == "2025-01-01"
    assert read_stored({"last_sync": 1700000000}).last_sync == "1700000000"
    assert read_stored({"last_sync": None}).last_sync is None
    assert read_stored({}).last_sync is None


# -- to_stored -----------------------------------------------------------------------------------


def test_to_stored_without_previous_writes_canonical_keys_only() -> None:
    config = RetailCrmConfig(
        enabled=True,
        api_url="https://x.retailcrm.ru",
        api_key=KEY,
        client_id="vochi",
        user_mappings={"152": 17, "151": 16},
    )
    stored = to_stored(config, None)
    assert stored == {
        "enabled": True,
        "api_url": "https://x.retailcrm.ru",
        "api_key": KEY,
        "client_id": "vochi",
        "user_mappings": {"151": 16, "152": 17},
    }
    assert list(stored["user_mappings"]) == ["151", "152"]
    assert "domain" not in stored
    assert "user_extensions" not in stored


def test_to_stored_keeps_unknown_keys_and_last_sync() -> None:
    previous = {
        "enabled": False,
        "api_url": "https://old.retailcrm.ru",
        "custom_flag": 7,
        "nested": {"a": [1, 2]},
        "last_sync": "2025-09-01T10:00:00Z",
    }
    config = read_stored(previous)
    new = apply_change(config, ConfigChange(api_url="https://new.retailcrm.ru", api_key=KEY))
    stored = to_stored(new, previous)
    assert stored["custom_flag"] == 7
    assert stored["nested"] == {"a": [1, 2]}
    assert stored["last_sync"] == "2025-09-01T10:00:00Z"
    assert stored["api_url"] == "https://new.retailcrm.ru"
    assert stored["api_key"] == KEY
    assert stored["enabled"] is False


def test_to_stored_does_not_mutate_previous() -> None:
    previous = {"domain": "old.retailcrm.ru", "user_extensions": {"16": "151"}, "x": 1}
    snapshot = {"domain": "old.retailcrm.ru", "user_extensions": {"16": "151"}, "x": 1}
    to_stored(RetailCrmConfig(api_url="https://new.retailcrm.ru"), previous)
    assert previous == snapshot


def test_to_stored_keeps_legacy_keys_in_sync_when_present() -> None:
    previous = {
        "enabled": True,
        "domain": "old.retailcrm.ru",
        "api_key": "old-key",
        "user_extensions": {"16": "152", "18": "151", "19": None},
        "last_sync": "2025-09-01",
    }
    config = read_stored(previous)
    change = ConfigChange(api_url="https://new.retailcrm.ru", map={"153": 20}, unmap=("151",))
    stored = to_stored(apply_change(config, change), previous)
    assert stored["domain"] == "https://new.retailcrm.ru"
    assert stored["api_url"] == "https://new.retailcrm.ru"
    assert stored["user_mappings"] == {"152": 16, "153": 20}
    assert stored["user_extensions"] == {"16": "152", "20": "153"}
    assert stored["last_sync"] == "2025-09-01"
    # reading the written object back gives the same config: no unmapped extension resurrected
    assert read_stored(stored) == apply_change(config, change)


def test_to_stored_unmapped_extension_does_not_come_back_from_legacy_key() -> None:
    previous = {"user_extensions": {"16": "151", "17": "152"}}
    config = apply_change(read_stored(previous), ConfigChange(unmap=("151",)))
    stored = to_stored(config, previous)
    assert dict(read_stored(stored).user_mappings) == {"152": 17}


def test_to_stored_does_not_add_legacy_keys_when_absent() -> None:
    previous = {"api_url": "https://x.retailcrm.ru", "user_mappings": {"151": 16}}
    config = apply_change(read_stored(previous), ConfigChange(map={"152": 17}))
    stored = to_stored(config, previous)
    assert "domain" not in stored
    assert "user_extensions" not in stored
    assert stored["user_mappings"] == {"151": 16, "152": 17}


def test_to_stored_removes_api_key_and_client_id_when_none() -> None:
    previous = {"api_url": "https://x.retailcrm.ru", "api_key": KEY, "client_id": CLIENT}
    stored = to_stored(RetailCrmConfig(api_url="https://x.retailcrm.ru"), previous)
    assert "api_key" not in stored
    assert "client_id" not in stored
    assert stored["api_url"] == "https://x.retailcrm.ru"


def test_to_stored_round_trips() -> None:
    config = RetailCrmConfig(
        enabled=True,
        api_url="https://x.retailcrm.ru",
        api_key=KEY,
        client_id=CLIENT,
        user_mappings={"151": 16},
        last_sync="2025-01-01",
    )
    assert read_stored(to_stored(config, {"last_sync": "2025-01-01"})) == config


# -- apply_change --------------------------------------------------------------------------------


MAPPED = RetailCrmConfig(
    enabled=False,
    api_url="https://x.retailcrm.ru",
    api_key=KEY,
    user_mappings={"151": 16, "152": 17},
)


def test_credentials_save_never_wipes_the_mapping() -> None:
    result = apply_change(MAPPED, ConfigChange(api_key="new-key-0001", api_url="https://y.ru"))
    assert dict(result.user_mappings) == {"151": 16, "152": 17}
    assert result.api_key == "new-key-0001"
    assert result.api_url == "https://y.ru"


def test_empty_change_keeps_everything() -> None:
    assert ConfigChange().empty
    assert apply_change(MAPPED, ConfigChange()) == MAPPED


def test_none_fields_leave_values_alone() -> None:
    config = RetailCrmConfig(enabled=True, api_url="https://x.ru", api_key=KEY, client_id=CLIENT)
    result = apply_change(config, ConfigChange(map={"160": 30}))
    assert result.enabled is True
    assert result.api_url == "https://x.ru"
    assert result.api_key == KEY
    assert result.client_id == CLIENT


def test_map_merges_and_overwrites_per_extension() -> None:
    result = apply_change(MAPPED, ConfigChange(map={"151": 99, "153": 18}))
    assert dict(result.user_mappings) == {"151": 99, "152": 17, "153": 18}
    assert dict(MAPPED.user_mappings) == {"151": 16, "152": 17}  # the input is not mutated


def test_replace_mappings_replaces_then_map_applies() -> None:
    result = apply_change(MAPPED, ConfigChange(replace_mappings={"200": 1}, map={"201": 2}))
    assert dict(result.user_mappings) == {"200": 1, "201": 2}
    cleared = apply_change(MAPPED, ConfigChange(replace_mappings={}))
    assert dict(cleared.user_mappings) == {}
    assert cleared.api_key == KEY


def test_unmap_removes() -> None:
    result = apply_change(MAPPED, ConfigChange(unmap=("151",)))
    assert dict(result.user_mappings) == {"152": 17}


def test_unmap_unknown_extension_names_each() -> None:
    with pytest.raises(InvalidInput) as exc:
        apply_change(MAPPED, ConfigChange(unmap=("151", "999", "998")))
    assert fields_of(exc) == ["999", "998"]
    assert "999" in str(exc.value)
    assert dict(MAPPED.user_mappings) == {"151": 16, "152": 17}


def test_unmap_the_same_extension_twice_is_not_a_crash() -> None:
    try:
        result = apply_change(MAPPED, ConfigChange(unmap=("151", "151")))
    except InvalidInput:
        return  # rejecting the duplicate is acceptable too
    assert dict(result.user_mappings) == {"152": 17}


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        (RetailCrmConfig(), ["api_url", "api_key"]),
        (RetailCrmConfig(api_url="https://x.ru"), ["api_key"]),
        (RetailCrmConfig(api_key=KEY), ["api_url"]),
    ],
)
def test_enabling_without_credentials_names_missing_fields(
    config: RetailCrmConfig, missing: list[str]
) -> None:
    with pytest.raises(InvalidInput) as exc:
        apply_change(config, ConfigChange(enabled=True))
    assert fields_of(exc) == missing


def test_enabling_with_credentials() -> None:
    assert apply_change(MAPPED, ConfigChange(enabled=True)).enabled is True
    fresh = apply_change(
        RetailCrmConfig(), ConfigChange(enabled=True, api_url="https://x.ru", api_key=KEY)
    )
    assert fresh.enabled is True
    assert fresh.configured


def test_disabling_without_credentials_is_fine() -> None:
    assert apply_change(RetailCrmConfig(enabled=True), ConfigChange(enabled=False)).enabled is False


# -- change_from_values --------------------------------------------------------------------------


def test_change_from_values_good() -> None:
    change = change_from_values(
        {
            "api_url": "shop.retailcrm.ru/",
            "api_key": KEY,
            "enabled": "yes",
            "client_id": "vochi-asterisk",
            "user_mappings": {"151": "16", 152: 17},
        }
    )
    assert change == ConfigChange(
        enabled=True,
        api_url="https://shop.retailcrm.ru",
        api_key=KEY,
        client_id="vochi-asterisk",
        replace_mappings={"151": 16, "152": 17},
    )


def test_change_from_values_empty() -> None:
    assert change_from_values({}).empty


def test_change_from_values_reports_every_bad_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        change_from_values(
            {
                "api_url": "ftp://x.retailcrm.ru",
                "api_key": "has spaces",
                "enabled": "maybe",
                "client_id": "",
                "user_mappings": {"1": 16, "151": 0},
            }
        )
    assert sorted(fields_of(exc)) == sorted(
        ["api_url", "api_key", "enabled", "client_id", "user_mappings.1", "user_mappings.151"]
    )
    assert "has spaces" not in str(exc.value)


def test_change_from_values_unknown_key_lists_settable_keys() -> None:
    with pytest.raises(InvalidInput) as exc:
        change_from_values({"colour": "red", "api_url": "nope nope"})
    assert sorted(fields_of(exc)) == ["api_url", "colour"]
    message = next(f.message for f in exc.value.fields if f.field == "colour")
    for key in ("api_url", "api_key", "enabled", "client_id", "user_mappings"):
        assert key in message


def test_change_from_values_domain_is_alias_of_api_url() -> None:
    assert change_from_values({"domain": "x.retailcrm.ru/"}).api_url == "https://x.retailcrm.ru"
    with pytest.raises(InvalidInput) as exc:
        change_from_values({"domain": "https://x.retailcrm.ru/api/v5"})
    assert fields_of(exc) == ["domain"]


def test_change_from_values_user_mappings_not_an_object() -> None:
    with pytest.raises(InvalidInput) as exc:
        change_from_values({"user_mappings": ["151=16"]})
    assert fields_of(exc) == ["user_mappings"]


@pytest.mark.parametrize(
    "value", [True, 1, "true", "TRUE", " True ", "yes", "Yes", "on", "ON", "1"]
)
def test_booleans_true_spellings(value: object) -> None:
    assert change_from_values({"enabled": value}).enabled is True
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", [False, 0, "false", "False", "no", "NO", "off", "0", " off "])
def test_booleans_false_spellings(value: object) -> None:
    assert change_from_values({"enabled": value}).enabled is False
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", "", "2", "enabled", 1.5, [True]])
def test_booleans_rejected(value: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        change_from_values({"enabled": value})
    assert fields_of(exc) == ["enabled"]


@pytest.mark.parametrize("key", ["api_url", "api_key"])
def test_change_from_values_null_is_not_the_string_none(key: str) -> None:
    """A JSON ``null`` (e.g. a PUT body) must not become the text "None" as a key or address:
    either it is rejected naming the field, or it leaves the value alone."""
    named: list[str] = []
    change = ConfigChange()
    try:
        change = change_from_values({key: None})
    except InvalidInput as exc:
        named = [f.field for f in exc.fields]
    assert named in ([], [key])
    assert change.api_url is None
    assert change.api_key is None


@pytest.mark.parametrize("key", ["api_url", "api_key"])
@pytest.mark.parametrize("value", [["x.retailcrm.ru"]])
def test_change_from_values_non_string_rejected_as_invalid_input(key: str, value: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        change_from_values({key: value})
    assert fields_of(exc) == [key]


# -- field validators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://x.retailcrm.ru", "https://x.retailcrm.ru"),
        ("https://x.retailcrm.ru/", "https://x.retailcrm.ru"),
        ("x.retailcrm.ru", "https://x.retailcrm.ru"),
        ("  x.retailcrm.ru/  ", "https://x.retailcrm.ru"),
        ("http://localhost:8080", "http://localhost:8080"),
    ],
)
def test_validate_url_accepts(value: str, expected: str) -> None:
    assert validate_url(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "ftp://x.retailcrm.ru",
        "https://",
        "",
        "   ",
        "https://x.retailcrm.ru/api/v5",
        "x.retailcrm.ru/api/v5/",
        "https://x.retailcrm.ru/admin",
        "https://x.retailcrm.ru?apiKey=1",
        "https://x y.retailcrm.ru",
        "javascript://alert",
    ],
)
def test_validate_url_rejects(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_url(value)
    assert fields_of(exc) == ["api_url"]


def test_validate_url_uses_the_given_field_name() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_url("ftp://x", "units[0].api_url")
    assert fields_of(exc) == ["units[0].api_url"]


@pytest.mark.parametrize("value", ["https://[x", "http://[::1"])
def test_validate_url_malformed_is_invalid_input_not_value_error(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_url(value)
    assert fields_of(exc) == ["api_url"]


def test_validate_url_rejects_fragment() -> None:
    # https://x.retailcrm.ru#a + "/api/v5/..." would send every request to the site root
    with pytest.raises(InvalidInput):
        validate_url("https://x.retailcrm.ru#section")


@pytest.mark.parametrize(
    ("value", "expected"), [("10", "10"), ("151", "151"), ("99999", "99999"), (" 151 ", "151")]
)
def test_validate_extension_accepts(value: str, expected: str) -> None:
    assert validate_extension(value) == expected


@pytest.mark.parametrize(
    "value", ["1", "123456", "", "  ", "15a", "-15", "1 5", "15.1", "151\n152"]
)
def test_validate_extension_rejects(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_extension(value)
    assert fields_of(exc) == ["extension"]


@pytest.mark.parametrize("value", ["١٥١", "１５１"])
def test_validate_extension_rejects_non_ascii_digits(value: str) -> None:
    # Asterisk reports extensions in ASCII; a mapping on these could never match a call
    with pytest.raises(InvalidInput):
        validate_extension(value)


@pytest.mark.parametrize(("value", "expected"), [(16, 16), ("16", 16), (" 16 ", 16), (1, 1)])
def test_validate_user_id_accepts(value: object, expected: int) -> None:
    assert validate_user_id(value) == expected


@pytest.mark.parametrize(
    "value", [True, False, 0, -1, "0", "-1", "abc", "", 1.5, 16.0, None, [16], "1e3"]
)
def test_validate_user_id_rejects(value: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_user_id(value, "user_mappings.151")
    assert fields_of(exc) == ["user_mappings.151"]


@pytest.mark.parametrize("value", ["²", "①"])
def test_validate_user_id_unicode_digits_are_invalid_input_not_value_error(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_user_id(value)
    assert fields_of(exc) == ["user_id"]


def test_validate_mappings_names_each_bad_pair() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_mappings({"151": 16, "1": 17, "152": True, "153": "x"})
    assert fields_of(exc) == ["user_mappings.1", "user_mappings.152", "user_mappings.153"]
    assert validate_mappings({"151": "16", " 152 ": 17}) == {"151": 16, "152": 17}


@pytest.mark.parametrize("value", ["abc", "a" * 200, "k3y-with-dashes_and.dots"])
def test_validate_api_key_accepts(value: str) -> None:
    assert validate_api_key(value) == value


@pytest.mark.parametrize(
    "value", ["", "a b", " abc", "abc ", "ab\tc", "ab\nc", "ab\u00a0c", "a" * 201]
)
def test_validate_api_key_rejects(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_api_key(value)
    assert fields_of(exc) == ["api_key"]
    if value.strip():
        assert value not in str(exc.value)


# -- secrets never shown -------------------------------------------------------------------------


def test_repr_of_config_never_contains_secrets() -> None:
    config = RetailCrmConfig(
        enabled=True,
        api_url="https://x.ru",
        api_key=KEY,
        client_id=CLIENT,
        user_mappings={"151": 16},
    )
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert KEY not in text
        assert CLIENT not in text
        assert "SECRET" not in text
    assert "https://x.ru" in repr(config)  # repr is still useful


def test_repr_of_change_never_contains_secrets() -> None:
    change = ConfigChange(enabled=True, api_key=KEY, client_id=CLIENT)
    for text in (repr(change), str(change), repr(change_from_values({"api_key": KEY}))):
        assert KEY not in text
        assert CLIENT not in text
        assert "SECRET" not in text


def test_public_masks_the_key_to_last_four() -> None:
    config = RetailCrmConfig(
        enabled=True,
        api_url="https://x.ru",
        api_key=KEY,
        client_id=CLIENT,
        user_mappings={"152": 17, "151": 16},
        last_sync="2025-01-01",
    )
    public = config.public()
    assert public["api_key"] == "••••" + KEY[-4:]
    assert public["client_id"] == "••••" + CLIENT[-4:]
    assert KEY not in str(public)
    assert CLIENT not in str(public)
    assert public["user_mappings"] == {"151": 16, "152": 17}
    assert list(public["user_mappings"]) == ["151", "152"]
    assert public["api_url"] == "https://x.ru"
    assert public["enabled"] is True
    assert public["last_sync"] == "2025-01-01"


def test_public_without_key_and_with_short_key() -> None:
    assert RetailCrmConfig().public()["api_key"] is None
    short = RetailCrmConfig(api_key="abc12345").public()["api_key"]
    assert short == "••••"
