"""Match keys against Meta's normalisation rules (conversions-api/parameters/customer-information-parameters).

Every expected hash is computed here from the expected *normalised* string, so a wrong
normalisation rule fails the test instead of being copied into it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.match_keys import MatchKeys, match_keys, sha256_hex

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
GAID = "38400000-8CF0-11BD-B23E-10B96E40000D"


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def keys_of(**batch: Any) -> MatchKeys:
    return match_keys(read_batch({"events": [], **batch}).user)


def keys_for_attribute(name: str, value: Any) -> dict[str, str]:
    return keys_of(user_attributes={name: value}).hashed


EMAILS = [
    ("Jane.Doe@Example.com ", "jane.doe@example.com"),
    ("  JOHN@EXAMPLE.ORG\t", "john@example.org"),
    ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ("not-an-email", None),
    ("jane@", None),
    ("@example.com", None),
    ("jane@example", None),
    ("jane doe@example.com", None),
    ("   ", None),
    ("", None),
    # One @, a non-empty local part, a domain of non-empty dot-separated labels, no whitespace (RFC 5321).
    ("a@b.co", "a@b.co"),
    ("a@b.c.d", "a@b.c.d"),
    ("a@@b.co", None),
    ("a@b@c.co", None),
    ("a@b.co@", None),
    ("a@b..co", None),
    ("a@.b.co", None),
    ("a@b.co.", None),
    ("a.@b.co", "a.@b.co"),  # the local part is the mailbox's own business; Meta does not check it
    ("jane\tdoe@example.com", None),
    ("jane@exa\nmple.com", None),
    ("jane\u2003doe@example.com", None),  # an em space is whitespace too
    ("\u00a0Jane@Example.com\u00a0", "jane@example.com"),  # and is trimmed like any other
    ("a@" + "b." * 60_000 + "@", None),  # an email built to be slow: over the length bound, and not an address
]


@pytest.mark.parametrize(("raw", "normalised"), EMAILS)
def test_email_is_trimmed_lower_cased_and_validated(raw: str, normalised: str | None) -> None:
    keys = keys_of(user_identities={"email": raw}).hashed
    assert keys.get("email") == (sha(normalised) if normalised else None)


# RFC 5321 section 4.5.3.1.1: a local part is at most 64 octets; RFC 1035: a label at most 63. 64 + 1 + 189 = 254.
EMAIL_254 = "J" * 64 + "@" + "A" * 63 + "." + "b" * 63 + "." + "C" * 57 + ".com"


def meta_email_hash(raw: str) -> str:
    """Meta: an email is trimmed and lower-cased, then SHA-256 (conversions-api customer information)."""
    return hashlib.sha256(raw.strip().lower().encode("utf-8")).hexdigest()


def test_an_email_of_254_characters_is_hashed() -> None:
    assert len(EMAIL_254) == 254
    assert keys_of(user_identities={"email": EMAIL_254}).hashed == {"email": meta_email_hash(EMAIL_254)}


@pytest.mark.parametrize("email", ["x" + EMAIL_254, EMAIL_254 + "m", "x" * 1000 + "@example.com", "a@" + "b." * 200])
def test_an_email_over_254_characters_is_omitted(email: str) -> None:
    assert len(email) > 254
    assert keys_of(user_identities={"email": email}).hashed == {}


# (batch field, name in it, value at the 256-character bound, the value Meta's rules normalise it to, key).
AT_BOUND = [
    ("user_identities", "customerid", "7" * 256, "7" * 256, "external_id"),
    ("user_attributes", "$firstname", "Ab" * 128, "ab" * 128, "fn"),
    ("user_attributes", "$lastname", "O'" + "d" * 254, "o" + "d" * 254, "ln"),
    ("user_attributes", "$city", "San Francisco " * 18 + "SF" * 2, "sanfrancisco" * 18 + "sf" * 2, "ct"),
    ("user_attributes", "$country", "U" + " " * 254 + "S", "us", "country"),
]


@pytest.mark.parametrize(("where", "name", "value", "normalised", "key"), AT_BOUND)
def test_a_value_at_the_bound_is_hashed_and_one_character_more_is_omitted(
    where: str, name: str, value: str, normalised: str, key: str
) -> None:
    assert len(value) == 256
    assert keys_of(**{where: {name: value}}).hashed == {key: sha(normalised)}
    assert keys_of(**{where: {name: value + "x"}}).hashed == {}


@pytest.mark.parametrize("name", ["$gender", "$firstname", "$lastname", "$city", "$country"])
@pytest.mark.parametrize("value", ["f" * 257, "U" + " " * 256 + "S", "a@" + "b." * 60_000 + "@", "x" * 1_000_000])
def test_attributes_over_the_bound_are_omitted(name: str, value: str) -> None:
    assert keys_for_attribute(name, value) == {}


@pytest.mark.parametrize("device_id", ["ios_advertising_id", "android_advertising_id"])
def test_an_advertising_id_over_the_bound_is_ignored(device_id: str) -> None:
    # Advertising ids travel unhashed in every Conversions API event: the batch keeps at most 128 characters.
    assert keys_of(device_info={device_id: "a" * 128}).madid == "a" * 128
    assert keys_of(device_info={device_id: "a" * 129}).madid is None


def test_an_idfa_over_the_bound_falls_back_to_the_gaid() -> None:
    assert keys_of(device_info={"ios_advertising_id": "A" * 257, "android_advertising_id": GAID}).madid == GAID.lower()


def test_long_values_are_hashed_without_growing_the_cache() -> None:
    sha256_hex.cache_clear()
    long_values = [f"{i}-" + "x" * 256 for i in range(3)] + ["y" * 1_000_000]
    assert [sha256_hex(value) for value in long_values] == [sha(value) for value in long_values]
    assert sha256_hex.cache_info().currsize == 0
    short_values = [f"{i}-" + "x" * 254 for i in range(3)] + ["jane"]  # 256 characters is still short
    assert [sha256_hex(value) for value in short_values] == [sha(value) for value in short_values]
    assert sha256_hex.cache_info().currsize == len(short_values)


@pytest.mark.parametrize("shape", ["outbound_array", "inbound_map"])
def test_email_is_read_from_both_identity_shapes(shape: str) -> None:
    email = "Jane.Doe@Example.com "
    identities: Any = (
        [{"identity_type": "email", "identity": email, "timestamp_unixtime_ms": 1}]
        if shape == "outbound_array"
        else {"email": email}
    )
    assert keys_of(user_identities=identities).hashed == {"email": sha("jane.doe@example.com")}


NAMES = [
    ("Jane", "jane"),
    ("  JANE ", "jane"),
    ("O'Doe", "odoe"),
    ("Mary Ann", "maryann"),
    ("Jean-Luc", "jeanluc"),
    ("Dr. Smith, Jr.", "drsmithjr"),
    ("Émilie", "émilie"),
    ("José\u00a0María", "josémaría"),  # a no-break space is whitespace too
    ("Zoë!", "zoë"),
    ("Ze\u0301lie", "z\u00e9lie"),  # a decomposed é hashes like the composed one
    ("Anne+Marie `Jo`", "annemariejo"),  # ASCII punctuation includes + and ` (Unicode calls them symbols)
    ("O\u2019Brien", "obrien"),  # a typographic apostrophe
    ("!!!", None),
    ("  ", None),
    ("-", None),
]


@pytest.mark.parametrize("attribute", ["$firstname", "$lastname"])
@pytest.mark.parametrize(("raw", "normalised"), NAMES)
def test_names_drop_whitespace_and_punctuation_but_keep_letters(
    attribute: str, raw: str, normalised: str | None
) -> None:
    key = {"$firstname": "fn", "$lastname": "ln"}[attribute]
    expected = {key: sha(normalised)} if normalised else {}
    assert keys_for_attribute(attribute, raw) == expected


GENDERS = [
    ("Male", "m"),
    ("FEMALE", "f"),
    ("m", "m"),
    ("f", "f"),
    ("M", "m"),
    (" female ", "f"),
    ("other", None),
    ("x", None),
    ("unknown", None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "normalised"), GENDERS)
def test_gender_maps_to_m_or_f_else_is_omitted(raw: str, normalised: str | None) -> None:
    expected = {"gen": sha(normalised)} if normalised else {}
    assert keys_for_attribute("$gender", raw) == expected


CITIES = [
    ("San Francisco", "sanfrancisco"),
    ("St. Louis", "stlouis"),
    ("New York 10001", "newyork"),
    ("Winston-Salem", "winstonsalem"),
    ("Zürich", "zürich"),
    ("Paris <75>", "paris"),
    ("12345", None),
    ("--", None),
]


@pytest.mark.parametrize(("raw", "normalised"), CITIES)
def test_city_drops_whitespace_punctuation_and_digits(raw: str, normalised: str | None) -> None:
    expected = {"ct": sha(normalised)} if normalised else {}
    assert keys_for_attribute("$city", raw) == expected


COUNTRIES = [
    ("US", "us"),
    (" us ", "us"),
    ("Us", "us"),
    ("GB", "gb"),
    ("fr", "fr"),
    ("Germany", None),
    ("XYZ", None),
    ("1", None),
    ("U", None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "normalised"), COUNTRIES)
def test_country_is_a_lower_case_two_letter_code_else_omitted(raw: str, normalised: str | None) -> None:
    expected = {"country": sha(normalised)} if normalised else {}
    assert keys_for_attribute("$country", raw) == expected


DEVICES = [
    ({"ios_advertising_id": IDFA}, IDFA.lower()),
    ({"android_advertising_id": GAID}, GAID.lower()),
    ({"ios_advertising_id": IDFA, "android_advertising_id": GAID}, IDFA.lower()),
    ({"ios_advertising_id": ZERO_IDFA, "android_advertising_id": GAID}, GAID.lower()),
    ({"ios_advertising_id": ZERO_IDFA}, None),
    ({"ios_advertising_id": "", "android_advertising_id": "  "}, None),
    ({}, None),
]


@pytest.mark.parametrize(("device_info", "madid"), DEVICES)
def test_madid_is_the_lower_cased_idfa_else_the_gaid(device_info: dict[str, str], madid: str | None) -> None:
    keys = keys_of(device_info=device_info)
    assert keys.madid == madid
    assert keys.hashed == {}  # the madid is hashed (or not) by the renderer, per API


HASHED_LOWER = sha("already hashed by the customer")
HASHED_UPPER = HASHED_LOWER.upper()


@pytest.mark.parametrize(
    ("attribute", "key"),
    [("$firstname", "fn"), ("$lastname", "ln"), ("$gender", "gen"), ("$city", "ct"), ("$country", "country")],
)
@pytest.mark.parametrize("value", [HASHED_LOWER, HASHED_UPPER, f"  {HASHED_LOWER} "])
def test_already_hashed_attributes_pass_through_lower_cased(attribute: str, key: str, value: str) -> None:
    assert keys_for_attribute(attribute, value) == {key: HASHED_LOWER}


@pytest.mark.parametrize("value", [HASHED_LOWER, HASHED_UPPER])
def test_already_hashed_email_passes_through(value: str) -> None:
    assert keys_of(user_identities={"email": value}).hashed == {"email": HASHED_LOWER}


def test_a_63_character_hex_value_is_not_taken_for_a_hash() -> None:
    almost = HASHED_LOWER[:63]
    assert keys_for_attribute("$firstname", almost) == {"fn": sha(almost)}


def test_values_that_normalise_to_nothing_are_omitted_never_hashed_as_empty() -> None:
    keys = keys_of(
        user_identities={"email": "   ", "customerid": "  "},
        user_attributes={"$firstname": "!!", "$lastname": " . ", "$gender": "other", "$city": "123", "$country": "?"},
        device_info={"ios_advertising_id": ZERO_IDFA},
    )
    assert keys.hashed == {}
    assert keys.madid is None
    assert EMPTY_SHA256 not in keys.hashed.values()


@pytest.mark.parametrize("value", [None, ["Jane"], {"first": "Jane"}, True])
def test_non_text_attribute_values_are_ignored(value: Any) -> None:
    assert keys_for_attribute("$firstname", value) == {}


@pytest.mark.parametrize("spelling", ["$firstname", "$FirstName", "$FIRSTNAME", "$firstName"])
def test_reserved_attributes_are_matched_case_insensitively(spelling: str) -> None:
    assert keys_for_attribute(spelling, "Jane") == {"fn": sha("jane")}


def test_all_reserved_attributes_in_sdk_spelling() -> None:
    keys = keys_of(
        user_attributes={
            "$FirstName": "Jane",
            "$LastName": "O'Doe",
            "$Gender": "Female",
            "$City": "San Francisco",
            "$Country": "US",
            "$Zip": "94107",  # not a match key mParticle's integration forwards
        }
    ).hashed
    assert keys == {
        "fn": sha("jane"),
        "ln": sha("odoe"),
        "gen": sha("f"),
        "ct": sha("sanfrancisco"),
        "country": sha("us"),
    }


@pytest.mark.parametrize(
    "identities",
    [
        {"customerid": " 123 "},
        {"customer_id": "123"},
        [{"identity_type": "customer_id", "identity": "123"}],
        [{"identity_type": "Customer_ID", "identity": 123}],
    ],
)
def test_customer_id_becomes_a_hashed_external_id(identities: Any) -> None:
    assert keys_of(user_identities=identities).hashed == {"external_id": sha("123")}


# Cross-check against Meta's own SDK where its rules and the reference table coincide. The SDK does not
# strip punctuation from names, so only plain names are compared for fn.
SDK_CASES = [
    ("em", " Jane.Doe@Example.com ", "email", {"user_identities": {"email": " Jane.Doe@Example.com "}}),
    ("em", "JOHN@EXAMPLE.ORG", "email", {"user_identities": {"email": "JOHN@EXAMPLE.ORG"}}),
    ("ct", "San Francisco", "ct", {"user_attributes": {"$city": "San Francisco"}}),
    ("ct", "St. Louis", "ct", {"user_attributes": {"$City": "St. Louis"}}),
    ("country", "US", "country", {"user_attributes": {"$country": "US"}}),
    ("country", " gb ", "country", {"user_attributes": {"$Country": " gb "}}),
    ("fn", "Jane", "fn", {"user_attributes": {"$firstname": "Jane"}}),
    ("fn", " ÉMILIE ", "fn", {"user_attributes": {"$FirstName": " ÉMILIE "}}),
    ("fn", HASHED_UPPER, "fn", {"user_attributes": {"$firstname": HASHED_UPPER}}),
]


@pytest.mark.parametrize(("sdk_field", "raw", "key", "batch"), SDK_CASES)
def test_hashes_agree_with_metas_sdk(sdk_field: str, raw: str, key: str, batch: dict[str, Any]) -> None:
    normalize = pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize
    assert keys_of(**batch).hashed[key] == normalize.normalize_field(sdk_field, raw)
