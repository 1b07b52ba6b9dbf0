"""Phone numbers libphonenumber alone would refuse: Mexico's abolished prefixes, and Meta's own rule.

Expected values come from libphonenumber's data (today's Mexican numbers are 10 digits and the ones here are
valid there; Argentina's mobile `9` is part of the number, its metadata's national prefix transform `9\\1`),
from Meta's docs (customer-information-parameters, `ph`: "Remove symbols, letters, and any leading zeros.
Phone numbers must include a country code") and from Meta's SDK (facebook_business `serverside/normalize.py`,
`ph`), which is run here on every row it has a verdict for. ITU-T E.164 bounds a number at 15 digits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.match_keys import match_keys, place_of
from forwarder.phones import normalize_phone


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def phone_key(written: str, country: str | None) -> tuple[str, ...] | None:
    attributes = {"$mobile": written, **({"$country": country} if country else {})}
    user = read_batch({"events": [], "user_attributes": attributes}).user
    return dict(match_keys(user, place_of(user)).values).get("phone")


def phonenumbers() -> Any:
    return pytest.importorskip("phonenumbers")


def metas_sdk_ph(written: str) -> str | None:
    """What Meta's SDK sends for `ph` (before hashing), None where it refuses the value."""
    normalize = pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize
    try:
        return str(normalize.normalize_field_skip_hashing("ph", written))
    except ValueError:
        return None


# ---- Mexico ----------------------------------------------------------------------------------------------
# (as written, the user's region, today's number). In August 2019 Mexico abolished the mobile token 1 dialled
# after +52, the mobile prefixes 044 and 045 and the national prefixes 01 and 02; libphonenumber dropped them
# (8.10.17), so the old forms are too long for it. Today's number is the old one without the prefix.
MEXICO = [
    ("+5215541637145", None, "525541637145"),  # the old Mexican mobile form: a user's only key
    ("+52 1 55 4163 7145", None, "525541637145"),
    ("+52 1 (55) 4163-7145", "US", "525541637145"),  # written internationally: the region does not matter
    ("0052 1 55 4163 7145", None, "525541637145"),
    ("00 52 1 55 4163 7145", "MX", "525541637145"),
    ("011 52 1 55 4163 7145", "US", "525541637145"),  # the US international prefix
    ("5215541637145", "MX", "525541637145"),  # the country code without its +, in Mexico
    ("1 55 4163 7145", "MX", "525541637145"),
    ("044 55 4163 7145", "MX", "525541637145"),  # a mobile dialled locally from a fixed line, before 2019
    ("045 55 4163 7145", "MX", "525541637145"),  # ... from another area
    ("01 55 1234 5678", "MX", "525512345678"),  # a fixed line dialled from another area
    ("02 55 1234 5678", "MX", "525512345678"),
    ("+52 1 33 1234 5678", None, "523312345678"),  # Guadalajara
    ("+52 1 81 1234 5678", None, "528112345678"),  # Monterrey
    # Today's forms are left as they are.
    ("+52 55 4163 7145", None, "525541637145"),
    ("55 4163 7145", "MX", "525541637145"),
    ("+52 55 1234 5678", None, "525512345678"),
]


@pytest.mark.parametrize(("written", "region", "today"), MEXICO)
def test_a_mexican_number_in_an_abolished_form_is_sent_as_todays(written: str, region: str | None, today: str) -> None:
    assert normalize_phone(written, region) == today
    assert phone_key(written, region) == (sha(today),)


@pytest.mark.parametrize("today", sorted({today for _, _, today in MEXICO}))
def test_todays_mexican_numbers_are_valid_and_the_old_forms_are_not_for_libphonenumber(today: str) -> None:
    library = phonenumbers()
    assert library.is_valid_number(library.parse("+" + today))
    old = library.parse("+521" + today.removeprefix("52"))
    assert library.is_possible_number_with_reason(old) == library.ValidationResult.TOO_LONG


ARGENTINA_AND_OTHERS = [
    # Argentina's mobiles keep their 9 after +54 (libphonenumber writes it in E.164; Meta's SDK keeps it).
    ("+54 9 11 2345 6789", None, "5491123456789"),
    ("0054 9 11 2345 6789", None, "5491123456789"),
    ("011 15 2345 6789", "AR", "5491123456789"),  # national mobile form: 15 becomes the 9 (metadata's `9\1`)
    ("+54 11 2345 6789", None, "541123456789"),  # a fixed line in Buenos Aires
    # Other countries' numbers that start with 1 after their country code are not Mexico's.
    ("+1 521 555 0134", None, "15215550134"),
    ("+55 11 91234-5678", None, "5511912345678"),
    ("+44 1632 960123", None, "441632960123"),
]


@pytest.mark.parametrize(("written", "region", "normalised"), ARGENTINA_AND_OTHERS)
def test_other_countries_are_unchanged(written: str, region: str | None, normalised: str) -> None:
    assert normalize_phone(written, region) == normalised


@pytest.mark.parametrize("written", ["+54 9 11 2345 6789", "+1 521 555 0134", "+55 11 91234-5678"])
def test_metas_sdk_agrees_on_the_other_countries(written: str) -> None:
    assert metas_sdk_ph(written) == normalize_phone(written, None)


# ---- Meta's rule where libphonenumber refuses -------------------------------------------------------------
# (as written, the user's region, what is sent). A number written with its country code (after +, 00, +00 or
# the region's international prefix) that libphonenumber finds too short, too long or local-only is sent as
# Meta's rule keeps it, as long as it is 7 to 15 digits (Meta's SDK's minimum; E.164's maximum).
METAS_RULE = [
    ("+001 (616) 954-78 88", None, "16169547888"),  # "+00" before the country code
    ("+0044 20 7946 0958", None, "442079460958"),
    ("+00 44 20 7946 0958", "US", "442079460958"),
    ("000 44 20 7946 0958", None, "442079460958"),  # "any leading zeros"
    ("00 1 650 555 1212", None, "16505551212"),
    ("+1 555 0134", None, "15550134"),  # local only: no area code, yet Meta's rule keeps it
    ("+7 495 123 45", None, "749512345"),  # too short for Russia
    ("+33 1 23 45 67", None, "331234567"),  # too short for France
    ("+44 20 7946 09581", None, "4420794609581"),  # too long for the UK
    ("+1 650 555 12120", None, "165055512120"),  # too long for the US
    ("+52 1 12 3456 7890", None, "5211234567890"),  # no valid Mexican number without the 1: kept as written
]


@pytest.mark.parametrize(("written", "region", "normalised"), METAS_RULE)
def test_a_number_written_with_its_country_code_is_kept_as_metas_rule_keeps_it(
    written: str, region: str | None, normalised: str
) -> None:
    assert normalize_phone(written, region) == normalised
    assert phone_key(written, region) == (sha(normalised),)
    assert metas_sdk_ph(written) == normalised


# Where this product and Meta's SDK part ways, each for a reason: (as written, region, sent here, Meta's SDK).
DIFFERENCES = [
    # libphonenumber knows what the SDK does not: extensions, keypad letters (ITU E.161), dots, the US
    # international prefix, today's Mexican numbers.
    ("+1 555 0134 ext. 12", None, "15550134", None),
    ("+1 650 555 1212 x99", None, "16505551212", None),
    ("+1-800-FLOWERS", None, "18003569377", None),
    ("+1.650.555.1212", None, "16505551212", None),
    ("011 1 555 0134", "US", "15550134", "1115550134"),
    ("+5215541637145", None, "525541637145", "5215541637145"),
    # No country code begins 999 (ITU-T E.164 assigns none): Meta cannot place the number.
    ("+999 555 0134", None, None, "9995550134"),
    # Over E.164's 15 digits: no number.
    ("+1 650 555 1212 1234 5678", None, None, "1650555121212345678"),
    ("+86 138 0013 8000 1234", None, None, "86138001380001234"),
    # Written nationally: the SDK sends the digits as if they began with a country code (5550134 would read
    # as Brazil's +55, 6505551212 as Singapore's +65); here they are read in the user's region, where they
    # are no whole number, or in none.
    ("555-0134", "US", None, "5550134"),
    ("6505551212", None, None, "6505551212"),
]


@pytest.mark.parametrize(("written", "region", "sent", "sdk"), DIFFERENCES)
def test_where_this_product_and_metas_sdk_differ(
    written: str, region: str | None, sent: str | None, sdk: str | None
) -> None:
    assert normalize_phone(written, region) == sent
    assert metas_sdk_ph(written) == sdk


# Still omitted: no country code, under 7 digits with it, or no number at all.
OMITTED = [
    ("555-0134", "US"),  # a local number, written nationally
    ("0 1234", "GB"),
    ("6505551212", None),  # national, and no region to read it in
    ("+44 12", None),
    ("+1 23", None),
    ("0044 12", None),
    ("+", None),
    ("+0", None),
    ("+00", None),
    ("00", "US"),
    ("+ - ( )", None),
    ("+abc", None),
    ("phone", "US"),
]


@pytest.mark.parametrize(("written", "region"), OMITTED)
def test_what_is_no_number_with_a_country_code_is_omitted(written: str, region: str | None) -> None:
    assert normalize_phone(written, region) is None
    assert phone_key(written, region) is None


@pytest.mark.parametrize("written", ["0 1234", "+44 12", "+1 23", "0044 12", "+", "+0", "+00", "00", "+ - ( )", "+abc"])
def test_metas_sdk_refuses_them_too(written: str) -> None:
    assert metas_sdk_ph(written) is None
