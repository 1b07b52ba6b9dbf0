"""Phone, state and ZIP keys against Meta's rules (conversions-api/parameters/customer-information-parameters).

Vectors come from Meta's docs (its `ph` example "(650)555-1212" in the US -> 16505551212 and the SHA-256 it
gives; `zp` 94035, 1987, 75018 and the UK's m11ae; `st` az, ca), from Meta's SDKs (facebook_business's
`serverside/normalize.py`, and the Snap/Meta example +44 844 412 4653 -> 448444124653), and from each country's
own numbering and postcode formats. Expected hashes are computed here from the expected normalised string, and
facebook_business is asked for the same field where its rules and Meta's docs agree.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.match_keys import match_keys, place_of
from forwarder.phones import normalize_phone
from forwarder.places import US_STATES, normalize_state, normalize_zip, us_state_code


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def keys_of(default_country: str | None = None, **batch: Any) -> dict[str, tuple[str, ...]]:
    user = read_batch({"events": [], **batch}).user
    return dict(match_keys(user, place_of(user, default_country)).values)


def metas_sdk() -> Any:
    return pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize


# ---- phone -----------------------------------------------------------------------------------------------
# (as written, the user's region (their $country, else DEFAULT_COUNTRY), what Meta matches: E.164 without +).
PHONES = [
    # Meta's example, and the same US number written every way people write it.
    ("(650)555-1212", "US", "16505551212"),
    ("(650) 555-1212", "US", "16505551212"),
    ("650-555-1212", "US", "16505551212"),
    ("650.555.1212", "US", "16505551212"),
    ("6505551212", "US", "16505551212"),
    ("1 (650) 555-1212", "US", "16505551212"),  # the national prefix 1
    ("+1 650 555 1212", None, "16505551212"),
    ("+1 (650) 555-1212", "GB", "16505551212"),  # written internationally: the region does not matter
    ("+1 650-555-1212 ext. 99", None, "16505551212"),  # E.164 has no extension
    ("011 44 20 7946 0958", "US", "442079460958"),  # the US international prefix
    # Canada shares +1.
    ("416-555-0134", "CA", "14165550134"),
    # The United Kingdom: the trunk zero goes, nationally or in the "(0)" some write after +44.
    ("+44 844 412 4653", None, "448444124653"),  # Meta's SDK example
    ("020 7946 0958", "GB", "442079460958"),
    ("+44 20 7946 0958", None, "442079460958"),
    ("+44 (0)20 7946 0958", None, "442079460958"),
    ("0044 20 7946 0958", None, "442079460958"),  # Meta: "remove any double 0 in front of the country code"
    ("0044 20 7946 0958", "US", "442079460958"),
    ("07700 900123", "GB", "447700900123"),
    # Germany, France, Italy (whose leading zero is part of the number: E.164 keeps it), Ireland, Russia.
    ("030 123456", "DE", "4930123456"),
    ("+49 30 123456", None, "4930123456"),
    ("01 23 45 67 89", "FR", "33123456789"),
    ("+33 1 23 45 67 89", None, "33123456789"),
    ("06 6982 1234", "IT", "390669821234"),
    ("+39 06 6982 1234", None, "390669821234"),
    ("+353 1 234 5678", None, "35312345678"),
    ("8 (495) 123-45-67", "RU", "74951234567"),
    ("+7 495 123-45-67", None, "74951234567"),
    # Asia, Oceania, Latin America, Africa.
    ("03-1234-5678", "JP", "81312345678"),
    ("09876543210", "IN", "919876543210"),
    ("+91 98765 43210", None, "919876543210"),
    ("010 1234 5678", "CN", "861012345678"),
    ("(02) 9876 5432", "AU", "61298765432"),
    ("0412 345 678", "AU", "61412345678"),
    ("(11) 91234-5678", "BR", "5511912345678"),
    ("+52 55 1234 5678", None, "525512345678"),
    ("+27 21 123 4567", None, "27211234567"),
    # Fullwidth digits and plus sign (East Asian input methods) are the same number.
    ("\uff0b\uff14\uff14 \uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff19\uff15\uff18", None, "442079460958"),
    # Omitted, never hashed: national numbers without a region, national numbers libphonenumber finds
    # impossible (too short, too long, a local number without its area code), numbers under 7 or over 15
    # digits with their country code, and what is no number at all. (Numbers written with their country code
    # that libphonenumber refuses but Meta's rule keeps: tests/unit/test_phones.py.)
    ("(650) 555-1212", None, None),
    ("020 7946 0958", None, None),
    ("555-0134", "US", None),
    ("12", "US", None),
    ("+44 12", None, None),
    ("+1 650 555 1212 1234 5678", None, None),
    ("n/a", "US", None),
    ("none", None, None),
    ("---", "US", None),
    ("+", None, None),
]


@pytest.mark.parametrize(("written", "region", "normalised"), PHONES)
def test_phone_is_e164_digits_with_the_country_code(written: str, region: str | None, normalised: str | None) -> None:
    assert normalize_phone(written, region) == normalised
    # Through the key: the region is the user's $country, else DEFAULT_COUNTRY.
    attributes = {"$mobile": written, **({"$country": region} if region else {})}
    assert keys_of(user_attributes=attributes).get("phone") == ((sha(normalised),) if normalised else None)
    assert keys_of(region, user_attributes={"$mobile": written}).get("phone") == (
        (sha(normalised),) if normalised else None
    )


def test_metas_documented_phone_hash() -> None:
    """Meta's own example: (650)555-1212 in the US, normalised 16505551212, and the SHA-256 Meta lists."""
    expected = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    keys = keys_of(user_identities={"mobile_number": "(650)555-1212"}, user_attributes={"$country": "US"})
    assert keys["phone"] == (expected,)


def test_the_users_country_comes_before_the_default_country() -> None:
    # A national number is read in the user's country; DEFAULT_COUNTRY only stands in for a missing one.
    keys = keys_of("US", user_attributes={"$mobile": "020 7946 0958", "$country": "United Kingdom"})
    assert keys["phone"] == (sha("442079460958"),)
    assert "phone" not in keys_of("US", user_attributes={"$mobile": "020 7946 0958", "$country": "Atlantis"})


# facebook_business normalises `ph` as: strip spaces, dashes and brackets, then a leading + or 00; it cannot
# add a country code, so only numbers written internationally are compared.
SDK_PHONES = ["+1 (650) 555-1212", "+44 844 412 4653", "0044 20 7946 0958", "+49 30 123456", "+61 412 345 678"]


@pytest.mark.parametrize("written", SDK_PHONES)
def test_international_numbers_hash_as_metas_sdk_hashes_them(written: str) -> None:
    assert keys_of(user_attributes={"$mobile": written})["phone"] == (metas_sdk().normalize_field("ph", written),)


LAZY_PROBE = """
import sys
from forwarder.batch import read_batch
from forwarder.match_keys import match_keys, place_of
user = read_batch({"user_identities": {"email": "jane@example.com", "phone_number_2": "n/a"},
                   "user_attributes": {"$country": "US", "$mobile": " ", "$zip": "94103", "$state": "CA"}}).user
assert set(match_keys(user, place_of(user)).values) == {"email", "country", "zip", "st"}
assert "phonenumbers" not in sys.modules, "loaded for a batch without a phone number"
user = read_batch({"user_attributes": {"$country": "US", "$mobile": "(650) 555-1212"}}).user
assert "phone" in match_keys(user, place_of(user)).values
assert "phonenumbers" in sys.modules
"""


def test_the_phone_library_is_imported_only_for_a_batch_with_a_phone() -> None:
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", LAZY_PROBE], cwd=root, check=True, timeout=60)  # noqa: S603 - our probe


# ---- state -----------------------------------------------------------------------------------------------
# (the $state, the user's country (ISO code), what Meta matches).
STATES = [
    # The US: the two-letter code, lower case, from a code or a name, in any case, spacing or dots.
    ("CA", "us", "ca"),
    ("ca", "us", "ca"),
    (" Ca ", "us", "ca"),
    ("C.A.", "us", "ca"),
    ("California", "us", "ca"),
    ("CALIFORNIA", "us", "ca"),
    ("AZ", "us", "az"),  # Meta's examples: az, ca
    ("Arizona", "us", "az"),
    ("New York", "us", "ny"),
    ("new  york", "us", "ny"),
    ("N.Y.", "us", "ny"),
    ("North Carolina", "us", "nc"),
    ("District of Columbia", "us", "dc"),
    ("Washington, D.C.", "us", "dc"),
    ("Washington", "us", "wa"),
    ("Puerto Rico", "us", "pr"),
    ("Guam", "us", "gu"),
    ("\uff23\uff21", "us", "ca"),  # fullwidth CA
    # A US value that names no state is omitted, never guessed.
    ("Calif.", "us", None),
    ("XX", "us", None),
    ("Ontario", "us", None),
    ("94103", "us", None),
    # Without a country, a US state's code or name is still its code; anything else follows the rule for
    # other countries.
    ("California", None, "ca"),
    ("TX", None, "tx"),
    ("Ontario", None, "ontario"),
    # Elsewhere: lower case, no whitespace, punctuation, symbols or digits; letters such as é stay.
    ("ON", "ca", "on"),
    ("Ontario", "ca", "ontario"),
    ("Québec", "ca", "québec"),
    ("British Columbia", "ca", "britishcolumbia"),
    ("Bayern", "de", "bayern"),
    ("Baden-Württemberg", "de", "badenwürttemberg"),
    ("Île-de-France", "fr", "îledefrance"),
    ("Provence-Alpes-Côte d'Azur", "fr", "provencealpescôtedazur"),
    ("England", "gb", "england"),
    ("NSW", "au", "nsw"),
    ("New South Wales", "au", "newsouthwales"),
    ("Region 12", "fr", "region"),
    ("California", "mx", "california"),  # Baja California's neighbour is not a US state there
    ("!!", "fr", None),
    ("12", "de", None),
]


@pytest.mark.parametrize(("state", "country", "normalised"), STATES)
def test_state_is_the_us_code_or_a_plain_name_elsewhere(state: str, country: str | None, normalised: str | None):
    assert normalize_state(state, country) == normalised
    attributes = {"$state": state, **({"$country": country.upper()} if country else {})}
    assert keys_of(user_attributes=attributes).get("st") == ((sha(normalised),) if normalised else None)


def test_every_us_state_code_and_name_gives_its_code() -> None:
    assert len({code for code, *_ in US_STATES}) == len(US_STATES) == 57  # 50 states, DC, 6 territories
    for code, *names in US_STATES:
        for spelling in (code, code.lower(), *names, *(name.upper() for name in names)):
            assert us_state_code(spelling) == code.lower(), spelling


# facebook_business normalises `st` as lower case without digits, spaces, dots, dashes and brackets: it agrees
# with Meta's docs for codes and for names outside the US (it keeps "california", which Meta's docs make ca).
SDK_STATES = [("CA", "us"), (" ny ", "us"), ("AZ", "us"), ("ON", "ca"), ("Bayern", "de"), ("Île-de-France", "fr")]


@pytest.mark.parametrize(("state", "country"), SDK_STATES)
def test_states_hash_as_metas_sdk_hashes_them_where_its_rule_is_metas(state: str, country: str) -> None:
    keys = keys_of(user_attributes={"$state": state, "$country": country})
    assert keys["st"] == (metas_sdk().normalize_field("st", state),)


# ---- ZIP -------------------------------------------------------------------------------------------------
# (the $zip, the user's country (ISO code), what Meta matches).
ZIPS = [
    # The US: the first five digits of a ZIP or ZIP+4.
    ("94035", "us", "94035"),  # Meta's example
    ("94103-1234", "us", "94103"),
    ("94103 1234", "us", "94103"),
    ("941031234", "us", "94103"),
    (" 94103 ", "us", "94103"),
    ("\uff19\uff14\uff11\uff10\uff13", "us", "94103"),  # fullwidth digits
    # A US value that is no ZIP is omitted: 2134 is probably 02134 with its zero lost, and would be another ZIP.
    ("2134", "us", None),
    ("94103-12", "us", None),
    ("SW1A 1AA", "us", None),
    ("ABCDE", "us", None),
    # Without a country, ZIP+4 is still American; anything else follows the rule for other countries.
    ("94103-1234", None, "94103"),
    ("94103", None, "94103"),
    ("SW1A 1AA", None, "sw1a1aa"),
    # The United Kingdom: the whole postcode, as Meta's example m11ae is M1 1AE.
    ("M1 1AE", "gb", "m11ae"),
    ("m1 1ae", "gb", "m11ae"),
    ("SW1A 1AA", "gb", "sw1a1aa"),
    ("EC1A 1BB", "gb", "ec1a1bb"),
    ("W1A 0AX", "gb", "w1a0ax"),
    # Canada: the six characters, lower case.
    ("K1A 0B1", "ca", "k1a0b1"),
    ("k1a-0b1", "ca", "k1a0b1"),
    ("M5V 3L9", "ca", "m5v3l9"),
    # Elsewhere: lower case, no spaces or dashes.
    ("1987", "au", "1987"),  # Meta's example
    ("75018", "fr", "75018"),  # Meta's example
    ("00-950", "pl", "00950"),
    ("1012 AB", "nl", "1012ab"),
    ("100-0001", "jp", "1000001"),
    ("01310-100", "br", "01310100"),
    ("---", "de", None),
]


@pytest.mark.parametrize(("zip_code", "country", "normalised"), ZIPS)
def test_zip_is_compact_lower_case_and_five_digits_in_the_us(
    zip_code: str, country: str | None, normalised: str | None
):
    assert normalize_zip(zip_code, country) == normalised
    attributes = {"$zip": zip_code, **({"$country": country} if country else {})}
    assert keys_of(user_attributes=attributes).get("zip") == ((sha(normalised),) if normalised else None)


@pytest.mark.parametrize("value", [94103, 94103.0])
def test_a_zip_sent_as_a_number_is_read_as_its_digits(value: int | float) -> None:
    expected = (sha("94103"),) if isinstance(value, int) else None  # "94103.0" is no ZIP
    assert keys_of(user_attributes={"$zip": value, "$country": "US"}).get("zip") == expected


# facebook_business normalises `zp` as lower case without whitespace, cut at the first dash: the same as Meta's
# docs for US ZIP+4, UK and Canadian postcodes.
SDK_ZIPS = [("94103-1234", "us"), ("94035", "us"), ("SW1A 1AA", "gb"), ("M1 1AE", "gb"), ("K1A 0B1", "ca")]


@pytest.mark.parametrize(("zip_code", "country"), SDK_ZIPS)
def test_zips_hash_as_metas_sdk_hashes_them(zip_code: str, country: str) -> None:
    keys = keys_of(user_attributes={"$zip": zip_code, "$country": country})
    assert keys["zip"] == (metas_sdk().normalize_field("zp", zip_code),)
