"""The match-key table: every key's sources in priority order, several values per key, the operator's choices
(EMAIL_IDENTITY_TYPES, EXTERNAL_ID_IDENTITY_TYPE, DEFAULT_COUNTRY), and each API's names, hashing and arrays.

The rules of each normaliser are tested in test_match_keys.py and test_phone_state_zip.py.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from forwarder.batch import IDENTITY_TYPES, read_batch
from forwarder.facebook_api import PROFILES, FacebookApi
from forwarder.match_keys import (
    DATE_OF_BIRTH_KEYS,
    KEYS,
    MAX_VALUES_PER_KEY,
    KeySettings,
    MatchKeys,
    match_keys,
    place_of,
)
from forwarder.redaction import user_values
from forwarder.render import keys_sent, render_keys
from forwarder.settings import Settings, SettingsError, load_settings
from localdev.graph_stub import HEX, MATCH_KEY_FIELDS

REQUIRED = {"SECRET_ID": "s", "OFFLINE_EVENT_SET_ID": "1234567890", "PARKING_QUEUE_URL": "q"}
OFFLINE, CAPI = FacebookApi.OFFLINE_CONVERSIONS, FacebookApi.CONVERSIONS_API
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def settings(**env: str) -> Settings:
    return load_settings({**REQUIRED, **env})


def keys_of(env: dict[str, str] | None = None, **batch: Any) -> MatchKeys:
    user, options = read_batch({"events": [], **batch}).user, settings(**(env or {})).key_settings
    return match_keys(user, place_of(user, options.default_country), options.sources)


def rendered(keys: MatchKeys, api: FacebookApi) -> dict[str, Any]:
    return render_keys(keys, PROFILES[api])


# ---- the table ---------------------------------------------------------------------------------------------


def test_each_api_takes_each_key_under_one_name() -> None:
    assert len({key.name for key in KEYS}) == len(KEYS)
    for api in FacebookApi:
        names = [key.sent[api].name for key in KEYS if api in key.sent]
        assert len(set(names)) == len(names), api


@pytest.mark.parametrize("api", list(FacebookApi))
def test_the_table_sends_only_what_meta_accepts(api: FacebookApi) -> None:
    """Field names, hashing and arrays as the Graph stand-in checks them (its table cites Meta's pages)."""
    accepted = MATCH_KEY_FIELDS[api.value]
    for key in (key for key in KEYS if api in key.sent):
        sent = key.sent[api]
        kind, arrays = accepted[sent.name]
        assert sent.hashed or kind != HEX, (key.name, api)  # what is sent unhashed is a field Meta takes so
        assert arrays or not sent.many, (key.name, api)


def test_the_issues_keys_go_to_both_apis() -> None:
    # The date of birth as each API takes it: Conversions API `db`; Offline Conversions API `doby`, `dobm`, `dobd`
    # (Meta's customer-information-parameters; Meta's offline-conversion-file-uploader splits a `dob` so).
    expected = {
        OFFLINE: {"email", "phone", "fn", "ln", "gen", "ct", "st", "zip", "country", "extern_id", "madid"}
        | {"doby", "dobm", "dobd"},
        CAPI: {"em", "ph", "fn", "ln", "ge", "ct", "st", "zp", "country", "external_id", "madid", "db"},
    }
    for api, names in expected.items():
        assert {key.sent[api].name for key in KEYS if api in key.sent} == names
    # Meta: extern_id unhashed on the Offline Conversions API; madid unhashed on the Conversions API.
    unhashed = {
        api: {key.sent[api].name for key in KEYS if api in key.sent and not key.sent[api].hashed} for api in FacebookApi
    }
    assert unhashed == {OFFLINE: {"extern_id"}, CAPI: {"madid"}}
    # Arrays: email and phone on both APIs, every hashed key on the Conversions API.
    arrays = {
        api: {key.sent[api].name for key in KEYS if api in key.sent and key.sent[api].many} for api in FacebookApi
    }
    assert arrays[OFFLINE] == {"email", "phone"}
    assert arrays[CAPI] == expected[CAPI] - {"madid"}


# ---- several values, in priority order ---------------------------------------------------------------------

PHONES = {
    "mobile_number": "(650) 555-1212",
    "phone_number_2": "+44 20 7946 0958",
    "phone_number_3": "+1 650 555 1212",  # the mobile number again, written another way: one value
}
US_USER = {"$country": "US", "$mobile": "415-555-0134", "$firstname": "Jane"}


def test_every_distinct_phone_in_priority_order() -> None:
    keys = keys_of(user_identities=PHONES, user_attributes=US_USER)
    assert keys.values["phone"] == (sha("16505551212"), sha("442079460958"), sha("14155550134"))


def test_the_outbound_array_gives_the_same_phones() -> None:
    identities = [{"identity_type": kind, "identity": value} for kind, value in PHONES.items()]
    inbound = keys_of(user_identities=PHONES, user_attributes=US_USER)
    assert keys_of(user_identities=identities, user_attributes=US_USER) == inbound


def test_several_values_are_an_array_where_the_api_takes_one_else_the_first() -> None:
    keys = keys_of(
        {"EMAIL_IDENTITY_TYPES": "email,other"},
        user_identities={**PHONES, "email": "Jane@Example.com", "other": "jane.doe@work.example"},
        user_attributes=US_USER,
    )
    emails = [sha("jane@example.com"), sha("jane.doe@work.example")]
    phones = [sha("16505551212"), sha("442079460958"), sha("14155550134")]
    assert rendered(keys, OFFLINE) == {"email": emails, "phone": phones, "fn": sha("jane"), "country": sha("us")}
    assert rendered(keys, CAPI) == {"em": emails, "ph": phones, "fn": sha("jane"), "country": sha("us")}


def test_one_value_is_a_string_as_before() -> None:
    keys = keys_of(user_identities={"email": "jane@example.com", "mobile_number": "+16505551212"})
    assert rendered(keys, CAPI) == {"em": sha("jane@example.com"), "ph": sha("16505551212")}


def test_values_alike_once_normalised_are_one() -> None:
    keys = keys_of(
        {"EMAIL_IDENTITY_TYPES": "email,other,other_id_2"},
        user_identities={
            "email": "JANE@example.com",
            "other": " jane@example.com",
            "other_id_2": sha("jane@example.com"),
        },
    )
    assert keys.values["email"] == (sha("jane@example.com"),)


def test_a_key_holds_at_most_its_cap_of_values_the_first_in_priority_order() -> None:
    types = ["email", "other", *(f"other_id_{n}" for n in range(2, 11)), "alias"]  # 12 identity types
    identities = {kind: f"user{i}@example.com" for i, kind in enumerate(types)}
    keys = keys_of({"EMAIL_IDENTITY_TYPES": ",".join(types)}, user_identities=identities)
    assert MAX_VALUES_PER_KEY == 10
    assert keys.values["email"] == tuple(sha(f"user{i}@example.com") for i in range(10))
    assert len(rendered(keys, CAPI)["em"]) == 10


def test_unusable_values_make_room_for_the_next_source() -> None:
    identities = {"mobile_number": "n/a", "phone_number_2": "12", "phone_number_3": "+44 20 7946 0958"}
    assert keys_of(user_identities=identities).values["phone"] == (sha("442079460958"),)


def test_without_a_region_only_international_numbers_are_sent() -> None:
    identities = {"mobile_number": "(650) 555-1212", "phone_number_2": "+44 20 7946 0958"}
    assert keys_of(user_identities=identities).values["phone"] == (sha("442079460958"),)
    with_default = keys_of({"DEFAULT_COUNTRY": "us"}, user_identities=identities)
    assert with_default.values["phone"] == (sha("16505551212"), sha("442079460958"))


# ---- email and external id from the operator's identity types ----------------------------------------------


def test_emails_come_from_the_chosen_identity_types_in_their_order() -> None:
    identities = {"email": "a@example.com", "other": "b@example.com", "other_id_4": "c@example.com"}
    assert keys_of(user_identities=identities).values["email"] == (sha("a@example.com"),)
    chosen = keys_of({"EMAIL_IDENTITY_TYPES": " other_id_4 , OTHER "}, user_identities=identities)
    assert chosen.values["email"] == (sha("c@example.com"), sha("b@example.com"))


def test_a_non_email_in_an_email_identity_type_is_omitted() -> None:
    identities = {"email": "a@example.com", "other": "loyalty-42"}
    keys = keys_of({"EMAIL_IDENTITY_TYPES": "email,other"}, user_identities=identities)
    assert keys.values["email"] == (sha("a@example.com"),)


BATCH_IDS = {
    "user_identities": {"customerid": "C-1", "other": "O-1", "other_id_2": "O-2", "other_id_10": "O-10"},
    "mpid": 7346244611012968789,
}


@pytest.mark.parametrize(
    ("choice", "external_id"),
    [
        (None, "C-1"),  # the default: customer_id
        ("customer_id", "C-1"),
        ("mpid", "7346244611012968789"),
        ("other", "O-1"),
        ("other_id_2", "O-2"),
        ("OTHER_ID_10", "O-10"),
        ("other_id_5", None),  # the user has none
        ("none", None),
    ],
)
def test_the_external_id_is_the_chosen_identity(choice: str | None, external_id: str | None) -> None:
    env = {"EXTERNAL_ID_IDENTITY_TYPE": choice} if choice else {}
    keys = keys_of(env, **BATCH_IDS)
    assert keys.values.get("external_id") == ((external_id,) if external_id else None)
    if external_id:
        # Meta: unhashed on the Offline Conversions API, hashed (recommended) on the Conversions API.
        assert rendered(keys, OFFLINE) == {"extern_id": external_id}
        assert rendered(keys, CAPI) == {"external_id": sha(external_id)}
    else:
        assert rendered(keys, OFFLINE) == rendered(keys, CAPI) == {}


# mParticle's user id is a signed 64-bit integer (sometimes a string of one); 0 is no user.
MPIDS = [
    (7346244611012968789, "7346244611012968789"),
    (-8433569949297563456, "-8433569949297563456"),
    (INT64_MAX, str(INT64_MAX)),
    (INT64_MIN, str(INT64_MIN)),
    (INT64_MAX + 1, None),
    (INT64_MIN - 1, None),
    (10**30, None),
    ("7346244611012968789", "7346244611012968789"),
    (" 42 ", "42"),
    ("-42", "-42"),
    ("007", "7"),
    (str(INT64_MAX + 1), None),
    ("9" * 25, None),
    ("1e3", None),
    ("+5", None),
    ("--5", None),
    ("-", None),
    ("\u0664\u0662", None),  # Arabic-Indic digits: not how mParticle writes an MPID
    (0, None),
    ("0", None),
    ("-0", None),
    (7.346244611012969e18, None),  # a float has lost the last digits
    (True, None),
    (None, None),
    ("", None),
    ([42], None),
]


@pytest.mark.parametrize(("mpid", "read"), MPIDS)
def test_the_mpid_is_read_within_int64(mpid: Any, read: str | None) -> None:
    user = read_batch({"mpid": mpid}).user
    assert user.mpid == read
    keys = keys_of({"EXTERNAL_ID_IDENTITY_TYPE": "mpid"}, mpid=mpid)
    assert keys.values.get("external_id") == ((read,) if read else None)


# ---- what the summary and the redactor are told -------------------------------------------------------------


def test_the_summary_names_the_keys_each_api_received() -> None:
    keys = keys_of(
        user_identities={"email": "a@example.com", "customerid": "C-1"},
        user_attributes={"$zip": "94103", "$country": "US"},
        device_info={"android_advertising_id": "38400000-8CF0-11BD-B23E-10B96E40000D"},
    )
    expected = ("email", "zip", "country", "external_id", "madid")
    assert keys_sent(keys, PROFILES[OFFLINE]) == keys_sent(keys, PROFILES[CAPI]) == expected
    assert keys_sent(MatchKeys(), PROFILES[CAPI]) == ()


def test_the_redactor_knows_the_mpid_and_what_is_sent_unhashed() -> None:
    body = {
        "mpid": -42,
        "user_identities": {"customerid": "C-1\u200b"},  # sent as C-1: the invisible character is removed
        "device_info": {"ios_advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"},
    }
    batch = read_batch(body)
    keys = match_keys(batch.user, place_of(batch.user))
    assert sorted(keys.unhashed()) == ["6d92078a-8246-4ba4-ae5b-76104861e7dc", "C-1"]
    values = user_values(batch.user, *keys.unhashed())
    assert {"-42", "C-1", "C-1\u200b", "6d92078a-8246-4ba4-ae5b-76104861e7dc"} <= set(values)


# ---- the settings -----------------------------------------------------------------------------------------


def test_the_defaults() -> None:
    options = settings().key_settings
    assert options == KeySettings(sources={"email": ("email",), "external_id": ("customer_id",)})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"EMAIL_IDENTITY_TYPES": ""}, KeySettings({"email": ("email",), "external_id": ("customer_id",)})),
        ({"EMAIL_IDENTITY_TYPES": " , "}, KeySettings({"email": ("email",), "external_id": ("customer_id",)})),
        (
            {"EMAIL_IDENTITY_TYPES": "Email, other,email"},
            KeySettings({"email": ("email", "other"), "external_id": ("customer_id",)}),
        ),
        ({"EXTERNAL_ID_IDENTITY_TYPE": " MPID "}, KeySettings({"email": ("email",), "external_id": ("mpid",)})),
        ({"EXTERNAL_ID_IDENTITY_TYPE": "none"}, KeySettings({"email": ("email",), "external_id": ()})),
        ({"DEFAULT_COUNTRY": " gb "}, KeySettings({"email": ("email",), "external_id": ("customer_id",)}, "gb")),
        ({"DEFAULT_COUNTRY": "US"}, KeySettings({"email": ("email",), "external_id": ("customer_id",)}, "us")),
    ],
)
def test_the_settings_are_read(env: dict[str, str], expected: KeySettings) -> None:
    assert settings(**env).key_settings == expected


def test_every_identity_type_may_hold_emails() -> None:
    options = settings(EMAIL_IDENTITY_TYPES=",".join(sorted(IDENTITY_TYPES))).key_settings
    assert set(options.sources["email"]) == IDENTITY_TYPES


SECRET_LOOKING = "EAAGsecret-looking-value"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EMAIL_IDENTITY_TYPES", "email,emails"),
        ("EMAIL_IDENTITY_TYPES", "customerid"),  # the SDK's spelling of customer_id, not an identity type
        ("EMAIL_IDENTITY_TYPES", "email;other"),
        ("EMAIL_IDENTITY_TYPES", f"email,{SECRET_LOOKING}"),
        ("EXTERNAL_ID_IDENTITY_TYPE", "email"),
        ("EXTERNAL_ID_IDENTITY_TYPE", "other_id_11"),
        ("EXTERNAL_ID_IDENTITY_TYPE", "customer_id,mpid"),
        ("EXTERNAL_ID_IDENTITY_TYPE", SECRET_LOOKING),
        ("DEFAULT_COUNTRY", "USA"),
        ("DEFAULT_COUNTRY", "UK"),  # reserved, not assigned: the code is GB
        ("DEFAULT_COUNTRY", "XX"),
        ("DEFAULT_COUNTRY", "1"),
        ("DEFAULT_COUNTRY", SECRET_LOOKING),
    ],
)
def test_an_invalid_value_names_the_variable_never_the_value(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as raised:
        settings(**{variable: value})
    assert SECRET_LOOKING not in str(raised.value)


# ---- docs/mapping.md shows the same rows ---------------------------------------------------------------------


def documented_key_rows() -> dict[str, list[str]]:
    """The match-key table of docs/mapping.md: key name -> its cells."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "mapping.md").read_text()
    section = text[text.index("## Match keys") : text.index("### How to raise your match rate")]
    rows = [line.strip(" |").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return {name: cells for cells in rows for name in re.findall(r"`(\w+)`", cells[0])}


# The variables whose identity types replace a key's sources (docs/mapping.md, "Configuration").
REPLACED_BY = {
    "email": "EMAIL_IDENTITY_TYPES",
    "external_id": "EXTERNAL_ID_IDENTITY_TYPE",
    **dict.fromkeys(DATE_OF_BIRTH_KEYS, "DATE_OF_BIRTH_ATTRIBUTE"),
}


def test_the_documented_match_key_table_shows_the_table_in_the_code() -> None:
    rows = documented_key_rows()
    assert set(rows) == {key.name for key in KEYS} >= set(REPLACED_BY)
    for key in KEYS:
        sources, _, offline, capi = rows[key.name][1:]
        for source in key.sources:
            assert f"`{source}`" in sources or source.removeprefix("$") in sources, (key.name, source)
        if key.name in REPLACED_BY:
            assert f"`{REPLACED_BY[key.name]}`" in sources, key.name
        for api, cell in ((OFFLINE, offline), (CAPI, capi)):
            if api not in key.sent:
                assert cell == "—", (key.name, api)  # the API does not take the key
                continue
            sent = key.sent[api]
            assert re.findall(r"`(\w+)`", cell)[0] == sent.name, (key.name, api)
            assert ("array" in cell) == sent.many, (key.name, api)
            assert ("**not** hashed" in cell) == (not sent.hashed), (key.name, api)
