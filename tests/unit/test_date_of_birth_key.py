"""The date of birth as a match key: DATE_OF_BIRTH_ATTRIBUTE names the user attribute; the Conversions API takes
`db` (YYYYMMDD, hashed), the Offline Conversions API `doby`, `dobm`, `dobd` (each hashed).

Expected values: Meta's customer-information-parameters (`db`: the input 2/16/1997 normalised 19970216, its
SHA-256 01acdbf6…f40f0c; "Hashing required"), Meta's SDK (serverside `Normalize`: `doby` YYYY, `dobm` MM,
`dobd` DD, each hashed: the oracle for the Offline Conversions API's three) and Meta's
offline-conversion-file-uploader, which cuts one `dob` into those three. The forms a date is read in are
tests/unit/test_dates_of_birth.py's; here, the key's wiring, both APIs and both batch shapes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forwarder.match_keys import DATE_OF_BIRTH_KEYS
from forwarder.render import keys_sent
from forwarder.settings import SettingsError
from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import NOW, commerce, mapped, product, rendered, sdk_batch, settings

Normalize = pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize

METAS_EXAMPLE = "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"  # SHA-256 of 19970216
SHAPES = {"inbound": lambda body: body, "outbound": outbound}
TODAY = datetime.fromtimestamp(NOW, UTC).date()


def batch(attributes: dict[str, Any]) -> dict[str, Any]:
    return {**sdk_batch(commerce("purchase", [product(id="sku-1", price=10.0)])), "user_attributes": attributes}


def offline_keys(yyyymmdd: str) -> dict[str, str]:
    """Meta's SDK's doby, dobm and dobd for a date: each part normalised and hashed."""
    parts = {"doby": yyyymmdd[:4], "dobm": yyyymmdd[4:6], "dobd": yyyymmdd[6:]}
    return {field: Normalize.normalize_field(field, value) for field, value in parts.items()}


def sent(body: dict[str, Any], api: str, attribute: str = "birthday") -> dict[str, Any]:
    [event] = rendered(body, settings(api, DATE_OF_BIRTH_ATTRIBUTE=attribute))[0]
    keys = event["user_data" if api == "conversions_api" else "match_keys"]
    return {field: keys[field] for field in ("db", *DATE_OF_BIRTH_KEYS) if field in keys}


# (the attribute's value, Meta's YYYYMMDD; None: no date of birth is sent)
DATES = [
    ("2/16/1997", "19970216"),  # Meta's example
    ("1997-02-16", "19970216"),
    ("19970216", "19970216"),
    ("16 February 1997", "19970216"),
    ("Feb 16th, 1997", "19970216"),
    ("16.02.1997", "19970216"),  # another country's order
    ("1990-07-04T00:00:00Z", "19900704"),
    ("02/03/1997", None),  # 2 March or 3 February: never guessed
    ("02/16/97", None),  # which century?
    ("1899-12-31", None),  # Meta: from 1900
    ("not a date", None),
    ("", None),
]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("written", "yyyymmdd"), DATES)
def test_the_date_of_birth_goes_to_both_apis_as_meta_takes_it(shape: str, written: str, yyyymmdd: str | None) -> None:
    body = SHAPES[shape](batch({"$country": "US", "Birthday": written}))
    if yyyymmdd is None:
        assert sent(body, "conversions_api") == {} == sent(body, "offline_conversions")
        return
    assert sent(body, "conversions_api") == {"db": Normalize.normalize_field("db", yyyymmdd)}
    assert sent(body, "offline_conversions") == offline_keys(yyyymmdd)


def test_metas_example_hashes_to_metas_digest() -> None:
    assert sent(batch({"birthday": "2/16/1997"}), "conversions_api") == {"db": METAS_EXAMPLE}


@pytest.mark.parametrize(
    ("setting", "attributes"),
    [
        ("birthday", {"BirthDay": "1997-02-16"}),  # attribute names are matched case-insensitively
        (" Birthday ", {"birthday": "1997-02-16"}),
        ("$dob", {"$DOB": "1997-02-16"}),
        ("date of birth", {"Date Of Birth": "1997-02-16"}),
    ],
)
def test_the_attribute_is_named_in_any_case(setting: str, attributes: dict[str, str]) -> None:
    assert sent(batch(attributes), "conversions_api", setting) == {"db": METAS_EXAMPLE}


def test_without_the_setting_no_attribute_is_a_date_of_birth() -> None:
    body = batch({"birthday": "1997-02-16", "$dob": "1997-02-16", "db": "1997-02-16"})
    [event] = rendered(body, settings("conversions_api"))[0]
    assert "db" not in event["user_data"]


def test_no_one_is_born_after_today() -> None:
    today, tomorrow = TODAY.isoformat(), (TODAY + timedelta(days=1)).isoformat()
    assert sent(batch({"birthday": today}), "conversions_api") == {
        "db": hashlib.sha256(today.replace("-", "").encode()).hexdigest()
    }
    assert sent(batch({"birthday": tomorrow}), "conversions_api") == {}


def test_a_hashed_date_of_birth_is_sent_as_db_and_cannot_be_cut_into_parts() -> None:
    body = batch({"birthday": METAS_EXAMPLE.upper()})
    assert sent(body, "conversions_api") == {"db": METAS_EXAMPLE}
    assert sent(body, "offline_conversions") == {}


@pytest.mark.parametrize(
    ("api", "names"),
    [("conversions_api", {"db"}), ("offline_conversions", {"doby", "dobm", "dobd"})],
)
def test_the_summary_counts_the_keys_each_api_received(api: str, names: set[str]) -> None:
    config = settings(api, DATE_OF_BIRTH_ATTRIBUTE="birthday")
    assert names <= set(keys_sent(mapped(batch({"birthday": "1997-02-16"}), config).keys, config.profile))


def test_a_long_attribute_name_names_the_variable_never_the_value() -> None:
    with pytest.raises(SettingsError, match="DATE_OF_BIRTH_ATTRIBUTE") as raised:
        settings(DATE_OF_BIRTH_ATTRIBUTE="secret-looking-" + "x" * 300)
    assert "secret-looking" not in str(raised.value)
