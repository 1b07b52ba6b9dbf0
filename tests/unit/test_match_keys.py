"""Match keys against Meta's normalisation rules (conversions-api/parameters/customer-information-parameters).

Every expected hash is computed here from the expected *normalised* string, so a wrong
normalisation rule fails the test instead of being copied into it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.match_keys import KeySettings, match_keys, place_of, sha256_hex
from forwarder.places import ISO_ALPHA_2, normalize_country, place_key

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
GAID = "38400000-8CF0-11BD-B23E-10B96E40000D"


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def keys_of(options: KeySettings | None = None, **batch: Any) -> dict[str, Any]:
    """The user's keys: per neutral key its one value, or the tuple of its values when it has several."""
    user, options = read_batch({"events": [], **batch}).user, options or KeySettings()
    keys = match_keys(user, place_of(user, options.default_country), options.sources)
    return {name: values[0] if len(values) == 1 else values for name, values in keys.values.items()}


def keys_for_attribute(name: str, value: Any) -> dict[str, Any]:
    return keys_of(user_attributes={name: value})


# Meta: the Conversions API takes madid as it is, the Offline Conversions API extern_id; every other key is
# hashed on both (conversions-api/parameters/customer-information-parameters, offline-conversions match_keys).
SENT_UNHASHED_SOMEWHERE = {"madid", "external_id"}


def stored(key: str, normalised: str) -> str:
    """What the user's keys hold for a normalised value: its SHA-256, or the value itself for a key some API
    takes unhashed (the renderer hashes it for the others)."""
    return normalised if key in SENT_UNHASHED_SOMEWHERE else sha(normalised)


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
    keys = keys_of(user_identities={"email": raw})
    assert keys.get("email") == (sha(normalised) if normalised else None)


# RFC 5321 section 4.5.3.1.1: a local part is at most 64 octets; RFC 1035: a label at most 63. 64 + 1 + 189 = 254.
EMAIL_254 = "J" * 64 + "@" + "A" * 63 + "." + "b" * 63 + "." + "C" * 57 + ".com"


def meta_email_hash(raw: str) -> str:
    """Meta: an email is trimmed and lower-cased, then SHA-256 (conversions-api customer information)."""
    return hashlib.sha256(raw.strip().lower().encode("utf-8")).hexdigest()


def test_an_email_of_254_characters_is_hashed() -> None:
    assert len(EMAIL_254) == 254
    assert keys_of(user_identities={"email": EMAIL_254}) == {"email": meta_email_hash(EMAIL_254)}


@pytest.mark.parametrize("email", ["x" + EMAIL_254, EMAIL_254 + "m", "x" * 1000 + "@example.com", "a@" + "b." * 200])
def test_an_email_over_254_characters_is_omitted(email: str) -> None:
    assert len(email) > 254
    assert keys_of(user_identities={"email": email}) == {}


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
    assert keys_of(**{where: {name: value}}) == {key: stored(key, normalised)}
    assert keys_of(**{where: {name: value + "x"}}) == {}


@pytest.mark.parametrize("name", ["$gender", "$firstname", "$lastname", "$city", "$country"])
@pytest.mark.parametrize("value", ["f" * 257, "U" + " " * 256 + "S", "a@" + "b." * 60_000 + "@", "x" * 1_000_000])
def test_attributes_over_the_bound_are_omitted(name: str, value: str) -> None:
    assert keys_for_attribute(name, value) == {}


@pytest.mark.parametrize("device_id", ["ios_advertising_id", "android_advertising_id"])
def test_an_advertising_id_over_the_bound_is_ignored(device_id: str) -> None:
    # Advertising ids travel unhashed in every Conversions API event: the batch keeps at most 128 characters.
    assert keys_of(device_info={device_id: "a" * 128}).get("madid") == "a" * 128
    assert keys_of(device_info={device_id: "a" * 129}).get("madid") is None


def test_an_idfa_over_the_bound_falls_back_to_the_gaid() -> None:
    assert (
        keys_of(device_info={"ios_advertising_id": "A" * 257, "android_advertising_id": GAID}).get("madid")
        == GAID.lower()
    )


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
    assert keys_of(user_identities=identities) == {"email": sha("jane.doe@example.com")}


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


# ---- country: ISO 3166-1 alpha-2 --------------------------------------------------
# Meta: "Use the lowercase, 2-letter country codes in ISO 3166-1 alpha-2". Every expected code below is the
# one ISO 3166-1 assigns to the country named (as pycountry, the list Meta's own SDK validates codes with,
# records it); None: the value names no country, so no country key is sent.
COUNTRIES = [
    # A code, any case, spacing or dots.
    ("US", "us"),
    (" us ", "us"),
    ("Us", "us"),
    ("GB", "gb"),
    ("fr", "fr"),
    ("DE", "de"),
    (" De\t", "de"),
    ("D E", "de"),
    ("d.e.", "de"),
    ("U.S.", "us"),
    # An alpha-3 code.
    ("DEU", "de"),
    ("deu", "de"),
    (" Deu ", "de"),
    ("USA", "us"),
    ("U.S.A.", "us"),
    ("GBR", "gb"),
    ("CIV", "ci"),
    # ISO's English short name, official name or common name, any case, spacing or punctuation.
    ("Germany", "de"),
    ("GERMANY", "de"),
    ("germany ", "de"),
    ("Federal Republic of Germany", "de"),
    ("United States", "us"),
    ("united  states", "us"),
    ("United States of America", "us"),
    ("United Kingdom", "gb"),
    ("United Kingdom of Great Britain and Northern Ireland", "gb"),
    ("Korea, Republic of", "kr"),
    ("Korea Republic of", "kr"),
    ("South Korea", "kr"),
    ("North Korea", "kp"),
    ("Viet Nam", "vn"),
    ("Vietnam", "vn"),
    ("Bolivia", "bo"),
    ("Iran", "ir"),
    ("Czechia", "cz"),
    ("Czech Republic", "cz"),
    ("Russian Federation", "ru"),
    ("Taiwan", "tw"),
    ("Congo", "cg"),
    ("Congo, The Democratic Republic of the", "cd"),
    ("Virgin Islands, U.S.", "vi"),
    ("Virgin Islands, British", "vg"),
    ("Trinidad and Tobago", "tt"),
    ("Bosnia & Herzegovina", "ba"),  # & is "and"
    ("Netherlands", "nl"),
    ("The Netherlands", "nl"),  # a leading article
    ("the Bahamas", "bs"),
    # Accents as ISO writes them, or left out.
    ("Côte d'Ivoire", "ci"),
    ("Cote d'Ivoire", "ci"),
    ("COTE D IVOIRE", "ci"),
    ("Türkiye", "tr"),
    ("Turkiye", "tr"),
    ("Åland Islands", "ax"),
    ("Curaçao", "cw"),
    ("Réunion", "re"),
    # Fullwidth letters (East Asian input methods) are the same letters.
    ("\uff24\uff25", "de"),
    ("\uff27\uff45\uff52\uff4d\uff41\uff4e\uff59", "de"),
    # UK is a code ISO 3166/MA reserves for the United Kingdom (an "exceptionally reserved" code, as the .uk
    # domain): it means gb and nothing else. More names (tests/unit/test_country_names.py): each that names one
    # ISO country is sent as its code; one that may name several is omitted, never guessed.
    ("UK", "gb"),
    ("uk", "gb"),
    ("U.K.", "gb"),
    ("Great Britain", "gb"),
    ("Russia", "ru"),
    ("Turkey", "tr"),
    ("America", None),
    ("Korea", None),
    # Codes ISO does not assign: XX, the user-assigned ranges, XK (Kosovo: user-assigned, not
    # ISO's), reserved organisations.
    ("XX", None),
    ("xx", None),
    # "Not available", not Namibia (NA), nor "not applicable" read as a code.
    ("N/A", None),
    ("n/a", None),
    ("NA", "na"),
    ("ZZ", None),
    ("AA", None),
    ("QM", None),
    ("XK", None),
    ("EU", None),
    ("UN", None),
    ("XYZ", None),
    ("ZZZ", None),
    # Numbers: ISO numeric codes, dialling codes, codes with digits in them.
    ("840", None),
    ("276", None),
    ("1", None),
    ("49", None),
    ("0", None),
    ("US1", None),
    ("D3", None),
    # Other languages and scripts: only ISO's English names are looked up.
    ("Deutschland", None),
    ("Allemagne", None),
    ("\u0413\u0435\u0440\u043c\u0430\u043d\u0438\u044f", None),  # Германия
    ("\u30c9\u30a4\u30c4", None),  # ドイツ
    ("\u5fb7\u56fd", None),  # 德国
    ("\u0397\u03a0\u0391", None),  # ΗΠΑ
    ("\u0405\u0415", None),  # Cyrillic DZE and IE: looks like SE, is not
    ("\uff58\uff58", None),  # fullwidth xx
    # Nothing that could be a country.
    ("", None),
    ("U", None),
    ("?", None),
    ("--", None),
    ("the", None),
    # Long values within the 256-character bound.
    ("Germany" * 36, None),
    ("x" * 256, None),
    ("U" + " " * 254 + "S", "us"),
]


@pytest.mark.parametrize(("raw", "code"), COUNTRIES)
def test_country_is_the_iso_alpha_2_code_it_names_else_omitted(raw: str, code: str | None) -> None:
    expected = {"country": sha(code)} if code else {}
    assert keys_for_attribute("$country", raw) == expected


@pytest.mark.parametrize("value", [840, 276, 1, 0, 49.0])
def test_a_number_is_no_country(value: int | float) -> None:
    assert keys_for_attribute("$country", value) == {}


def iso_countries() -> list[Any]:
    return list(pytest.importorskip("pycountry").countries)


def test_the_frozen_alpha_2_set_is_pycountrys() -> None:
    assert {country.alpha_2.lower() for country in iso_countries()} == ISO_ALPHA_2


def test_every_iso_code_and_english_name_gives_its_alpha_2_code() -> None:
    for country in iso_countries():
        spellings = {country.alpha_2, country.alpha_3, country.name}
        spellings |= {getattr(country, name) for name in ("official_name", "common_name") if hasattr(country, name)}
        for spelling in spellings:
            assert normalize_country(spelling) == country.alpha_2.lower(), spelling
            assert normalize_country(spelling.upper()) == country.alpha_2.lower(), spelling


def test_no_two_countries_share_a_spelling() -> None:
    owner: dict[str, str] = {}
    for country in iso_countries():
        for name in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            if hasattr(country, name):
                key = place_key(getattr(country, name))
                assert owner.setdefault(key, country.alpha_2) == country.alpha_2, (key, owner[key], country.alpha_2)


LAZY_PROBE = """
import sys
from forwarder.match_keys import country_code
values = ("US", " de ", "GB", "u.s.", "\u200bUS", "840", "Германия", "")
assert [country_code(value) for value in values] == ["us", "de", "gb", "us", "us", None, None, None]
assert "pycountry" not in sys.modules, "loaded for a value that is already a code"
assert country_code("Germany") == "de"
assert "pycountry" in sys.modules
"""


def test_pycountry_is_imported_only_for_a_value_that_is_not_a_code() -> None:
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", LAZY_PROBE], cwd=root, check=True, timeout=60)  # noqa: S603 - our probe


def metas_sdk() -> Any:
    return pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize


@pytest.mark.parametrize("code", sorted(ISO_ALPHA_2))
def test_every_iso_code_hashes_as_metas_sdk_hashes_it(code: str) -> None:
    assert keys_for_attribute("$country", code.upper()) == {"country": metas_sdk().normalize_field("country", code)}


@pytest.mark.parametrize("raw", ["XX", "ZZ", "AA", "XK", "Q1"])
def test_codes_metas_sdk_refuses_are_omitted(raw: str) -> None:
    with pytest.raises(TypeError):
        metas_sdk().normalize_field("country", raw)
    assert keys_for_attribute("$country", raw) == {}


@pytest.mark.parametrize(("name", "code"), [("Germany", "de"), ("DEU", "de"), ("United Kingdom", "gb")])
def test_a_name_is_sent_as_metas_sdk_sends_its_code(name: str, code: str) -> None:
    assert keys_for_attribute("$country", name) == {"country": metas_sdk().normalize_field("country", code)}


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
    user = read_batch({"device_info": device_info}).user
    keys = match_keys(user, place_of(user)).values
    # Kept as it is (the renderer hashes it for the Offline Conversions API only); the first is sent.
    assert keys.get("madid", (None,))[0] == madid
    assert keys.keys() <= {"madid"}


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
    assert keys_of(user_identities={"email": value}) == {"email": HASHED_LOWER}


def test_a_63_character_hex_value_is_not_taken_for_a_hash() -> None:
    almost = HASHED_LOWER[:63]
    assert keys_for_attribute("$firstname", almost) == {"fn": sha(almost)}


def test_values_that_normalise_to_nothing_are_omitted_never_hashed_as_empty() -> None:
    keys = keys_of(
        user_identities={"email": "   ", "customerid": "  "},
        user_attributes={"$firstname": "!!", "$lastname": " . ", "$gender": "other", "$city": "123", "$country": "?"},
        device_info={"ios_advertising_id": ZERO_IDFA},
    )
    assert keys == {}
    assert EMPTY_SHA256 not in keys.values()


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
            "$Zip": "94107",
            "$State": "CA",
        }
    )
    assert keys == {
        "fn": sha("jane"),
        "ln": sha("odoe"),
        "gen": sha("f"),
        "ct": sha("sanfrancisco"),
        "country": sha("us"),
        "st": sha("ca"),
        "zip": sha("94107"),
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
def test_customer_id_becomes_the_external_id(identities: Any) -> None:
    # Kept as it is: the Offline Conversions API takes it unhashed, the renderer hashes it for the Conversions API.
    assert keys_of(user_identities=identities) == {"external_id": "123"}


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
    assert keys_of(**batch)[key] == normalize.normalize_field(sdk_field, raw)


# ---- invisible characters --------------------------------------------------------
# Meta hashes what the person typed elsewhere; an invisible character in our copy makes the hash differ
# from theirs, so it can never match. Every class of them, in front of, inside and after the value, for
# every key: the hash must be the one of the visible value normalised by Meta's rule.
INVISIBLE = [
    pytest.param("\u200b", id="zero width space U+200B"),
    pytest.param("\u200c", id="zero width non-joiner U+200C"),
    pytest.param("\u200d", id="zero width joiner U+200D"),
    pytest.param("\u2060", id="word joiner U+2060"),
    pytest.param("\ufeff", id="byte order mark U+FEFF"),
    pytest.param("\u200e", id="left-to-right mark U+200E"),
    pytest.param("\u200f", id="right-to-left mark U+200F"),
    pytest.param("\u061c", id="Arabic letter mark U+061C"),
    pytest.param("\u202e", id="right-to-left override U+202E"),
    pytest.param("\u2068", id="first strong isolate U+2068"),
    pytest.param("\u00ad", id="soft hyphen U+00AD"),
    pytest.param("\u2063", id="invisible separator U+2063"),
    pytest.param("\u180e", id="Mongolian vowel separator U+180E"),
    pytest.param("\U000e0041", id="tag letter U+E0041"),
    pytest.param("\ufff9", id="interlinear annotation anchor U+FFF9"),
    pytest.param("\ufe0f", id="variation selector-16 U+FE0F (Mn)"),
    pytest.param("\ufe00", id="variation selector-1 U+FE00 (Mn)"),
    pytest.param("\U000e0100", id="variation selector-17 U+E0100 (Mn)"),
    pytest.param("\u180b", id="Mongolian free variation selector U+180B (Mn)"),
    pytest.param("\u034f", id="combining grapheme joiner U+034F (Mn)"),
    pytest.param("\u3164", id="Hangul filler U+3164 (Lo)"),
    pytest.param("\x00", id="NUL U+0000"),
    pytest.param("\x1b", id="escape U+001B"),
    pytest.param("\x7f", id="delete U+007F"),
    pytest.param("\x80", id="C1 control U+0080"),
    pytest.param("\x9f", id="C1 control U+009F"),
    pytest.param("\ufeff\u200b\u200e\x00\ufe0f", id="several together"),
]
POSITIONS = {
    "in front": lambda value, char: char + value,
    "inside": lambda value, char: value[:1] + char + value[1:],
    "after": lambda value, char: value + char,
}
# (batch field, name in it, a visible value, what Meta's rule for the key makes of it, key).
EVERY_KEY = [
    pytest.param("user_identities", "email", "Jane.Doe@Example.com", "jane.doe@example.com", "email", id="email"),
    pytest.param("user_identities", "customerid", "C-1024", "C-1024", "external_id", id="customer id"),
    pytest.param("user_attributes", "$firstname", "Jane", "jane", "fn", id="first name"),
    pytest.param("user_attributes", "$lastname", "Doe", "doe", "ln", id="last name"),
    pytest.param("user_attributes", "$gender", "female", "f", "gen", id="gender"),
    pytest.param("user_attributes", "$city", "San Francisco", "sanfrancisco", "ct", id="city"),
    pytest.param("user_attributes", "$country", "US", "us", "country", id="country code"),
    pytest.param("user_attributes", "$country", "Germany", "de", "country", id="country name"),
]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize(("where", "name", "visible", "normalised", "key"), EVERY_KEY)
def test_invisible_characters_are_not_hashed_into_any_key(
    where: str, name: str, visible: str, normalised: str, key: str, char: str, position: str
) -> None:
    value = POSITIONS[position](visible, char)
    assert keys_of(**{where: {name: value}}) == {key: stored(key, normalised)}


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("device_id", ["ios_advertising_id", "android_advertising_id"])
def test_invisible_characters_are_not_in_the_advertising_id(device_id: str, char: str, position: str) -> None:
    assert keys_of(device_info={device_id: POSITIONS[position](IDFA, char)}).get("madid") == IDFA.lower()


@pytest.mark.parametrize("char", INVISIBLE)
def test_an_already_hashed_value_with_an_invisible_character_passes_through(char: str) -> None:
    assert keys_for_attribute("$firstname", char + HASHED_UPPER + char) == {"fn": HASHED_LOWER}


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("attribute", ["$firstname", "$gender", "$country"])
def test_a_value_of_invisible_characters_only_is_omitted(attribute: str, char: str) -> None:
    assert keys_for_attribute(attribute, char * 3) == {}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


ZWNJ, ZWJ = "\u200c", "\u200d"
ALIZADEH = "\u0639\u0644\u06cc\u0632\u0627\u062f\u0647"  # a Persian surname: Ali + zadeh
LAKSHMI = "\u0932\u0915\u094d\u0937\u094d\u092e\u0940"  # a Hindi name: la ka virama ssa virama ma ii
PRIYA = "\u092a\u094d\u0930\u093f\u092f\u093e"  # a Hindi name: pa virama ra (vowel sign i) ya (vowel sign aa)
SUNITA = "\u0938\u0941\u0928\u0940\u0924\u093e"  # a Hindi name: sa (vowel sign u) na (vowel sign ii) ta (aa)
MUHAMMAD = "\u0645\u064f\u062d\u064e\u0645\u064e\u0651\u062f"  # an Arabic name with its vowel marks

# Neighbours that must stay as they are: letters of other scripts with their marks, accents, whitespace.
KEPT = [
    # Devanagari: virama (Mn) and vowel signs (Mc, Mn) are part of the letters.
    pytest.param("$firstname", PRIYA, PRIYA, id="Devanagari virama and vowel signs"),
    pytest.param("$firstname", SUNITA, SUNITA, id="Devanagari vowel signs u and ii"),
    # Arabic vowel marks (Mn) stay; NFC only puts them in Unicode's canonical order.
    pytest.param("$lastname", MUHAMMAD, nfc(MUHAMMAD), id="Arabic vowel marks"),
    # Khmer with its subscript sign (Mn).
    pytest.param("$firstname", "\u179f\u17d2\u179a\u17b8", "\u179f\u17d2\u179a\u17b8", id="Khmer subscript sign"),
    # Hangul syllables are letters; only the Hangul fillers are invisible.
    pytest.param("$city", "\uc11c\uc6b8", "\uc11c\uc6b8", id="Hangul syllables"),
    # é as e + combining acute becomes the single character (NFC), with or without an invisible one between.
    pytest.param("$firstname", "Ze\u0301lie", "z\u00e9lie", id="decomposed é"),
    pytest.param("$firstname", "Ze\u200b\u0301lie", "z\u00e9lie", id="decomposed é split by a zero width space"),
    pytest.param("$firstname", "Ze\ufeff\u0301lie", "z\u00e9lie", id="decomposed é split by a byte order mark"),
    pytest.param("$lastname", "Nguye\u0302\u0303n", "nguy\u1ec5n", id="stacked accents"),
    pytest.param("$city", "K\u00f8benhavn", "k\u00f8benhavn", id="o with stroke"),
    # Whitespace controls are whitespace: trimmed, or removed from names and places, as before.
    pytest.param("$firstname", "\tJane\n", "jane", id="tab and newline around"),
    pytest.param("$city", "San\tFrancisco", "sanfrancisco", id="tab inside a city"),
]


@pytest.mark.parametrize(("attribute", "raw", "normalised"), KEPT)
def test_letters_marks_and_whitespace_are_not_taken_for_invisible(attribute: str, raw: str, normalised: str) -> None:
    key = {"$firstname": "fn", "$lastname": "ln", "$city": "ct"}[attribute]
    assert keys_for_attribute(attribute, raw) == {key: sha(normalised)}


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("jane\u00addoe@example.com", "janedoe@example.com"),  # a soft hyphen is not part of the address
        ("\ufeffJane.Doe@Example.com\u200b", "jane.doe@example.com"),
        ("jane\tdoe@example.com", None),  # a tab is whitespace, not invisible: still no address
        ("jane doe@example.com\u200b", None),
        ("\u200b", None),
    ],
)
def test_email_neighbours(raw: str, normalised: str | None) -> None:
    assert keys_of(user_identities={"email": raw}) == ({"email": sha(normalised)} if normalised else {})


# ZWJ and ZWNJ inside Persian and Hindi names: Unicode defines them as rendering controls (join or do not
# join, half form or conjunct) that change no letter, and people type them or not depending on keyboard
# and platform; a Persian ZWNJ stands where others type a space, which every name loses anyway. The hash
# must equal the one of the same name typed elsewhere, so every spelling hashes as the letters alone.
SAME_NAME = [
    pytest.param(
        [ALIZADEH[:3] + ZWNJ + ALIZADEH[3:], ALIZADEH[:3] + " " + ALIZADEH[3:], ALIZADEH],
        ALIZADEH,
        id="Persian surname with ZWNJ, a space, or neither",
    ),
    pytest.param([LAKSHMI[:3] + ZWJ + LAKSHMI[3:], LAKSHMI], LAKSHMI, id="Hindi name with ZWJ (half form) or without"),
    pytest.param(
        [LAKSHMI[:3] + ZWNJ + LAKSHMI[3:], LAKSHMI], LAKSHMI, id="Hindi name with ZWNJ (explicit virama) or without"
    ),
]


@pytest.mark.parametrize(("spellings", "letters"), SAME_NAME)
def test_zwj_and_zwnj_inside_names_do_not_change_the_hash(spellings: list[str], letters: str) -> None:
    for spelling in spellings:
        assert keys_for_attribute("$lastname", spelling) == {"ln": sha(letters)}, spelling


@pytest.mark.parametrize(
    ("sdk_field", "visible"),
    [("em", " Jane.Doe@Example.com "), ("fn", "Jane"), ("fn", PRIYA), ("ct", "St. Louis"), ("country", "US")],
)
def test_with_invisible_characters_removed_the_hash_is_metas_sdks_for_the_visible_value(
    sdk_field: str, visible: str
) -> None:
    where, name, key = {
        "em": ("user_identities", "email", "email"),
        "fn": ("user_attributes", "$firstname", "fn"),
        "ct": ("user_attributes", "$city", "ct"),
        "country": ("user_attributes", "$country", "country"),
    }[sdk_field]
    value = "\ufeff" + visible[:2] + "\u200b\u2060" + visible[2:] + "\u200e\x00"
    assert keys_of(**{where: {name: value}})[key] == metas_sdk().normalize_field(sdk_field, visible)


def test_removing_invisible_characters_stays_linear() -> None:
    """The bound still comes first: 256 invisible characters are at most 256 characters of work."""
    assert keys_for_attribute("$firstname", "\u200b" * 255 + "J") == {"fn": sha("j")}
    assert keys_for_attribute("$firstname", "\u200b" * 256 + "J") == {}  # over the bound before anything is removed
    assert keys_of(user_identities={"email": "\u200b" * 250 + "a@b.co"}) == {}  # 256 > 254
