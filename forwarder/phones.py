"""Phone numbers as Meta matches them (match_keys.py's phone key): E.164 digits without the +.

Meta (conversions-api/parameters/customer-information-parameters, `ph`): digits only, always with the
country code ("the number 1 must precede a phone number in the United States"), no symbols, letters or
leading zeros: no `+`, `00` or `+00` before the country code, and no trunk zero (the national `0` of
`020 7946 0958`). Which digits are the country code, which zero is a trunk prefix, and how long a number of
each country can be is libphonenumber's knowledge (`phonenumbers`, the Python port; the project ships its
lite variant), so the number is parsed by it and written as E.164: `(650) 555-1212` in the US is
16505551212, `020 7946 0958` in the UK and `+44 20 7946 0958` are 442079460958, and Italy's `06 6982 1234`
keeps its zero (390669821234), which E.164 keeps.

A number written nationally is read in the user's region (their `$country`, else DEFAULT_COUNTRY); without
one, only numbers written with an international prefix (`+`, or `00` as most of the world dials it) are
read. Three cases past libphonenumber's verdict:
- A Mexican number in a form Mexico abolished in 2019 (the mobile `1` after +52, the national `044`, `045`,
  `01`, `02`) is sent as today's number, when what follows the old prefix is a valid Mexican number.
- A number written with its country code (one libphonenumber knows: `+999` has none, and is omitted) that
  libphonenumber finds too short, too long or only local for its country is sent by Meta's own rule, as
  Meta's SDK keeps it: the country code and the digits after it, 7 to 15 of them as E.164 allows.
  libphonenumber's lengths may lag a country's plan, and a number Meta would keep must not be dropped.
  Extensions are no part of it (E.164 has none), where Meta's "remove letters" would keep their digits.
- A number written nationally that libphonenumber finds impossible (too short, too long, a local number
  without its area code) is omitted, never hashed: without a country code Meta cannot use it.

libphonenumber costs about 17 ms to import, so it is imported only for a value with a digit in it: a batch
without a phone never loads it (the benchmark checks this, bench/coldstart.py).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber

# E.164 allows 15 digits; written with spaces, brackets, dashes and an extension a real number stays
# well under this. Longer values are omitted before any parsing (libphonenumber itself refuses over 250).
MAX_PHONE_LENGTH = 64
# A number sent by Meta's rule, country code included: at least 7 digits as Meta's SDK requires (serverside
# normalize.py, `ph`: a 1-4 digit country code, a 2-3 digit area code, 4 or more digits), at most 15
# (ITU-T E.164: at most 15 digits, country code included).
MIN_DIGITS_WITH_COUNTRY_CODE = 7
MAX_DIGITS_WITH_COUNTRY_CODE = 15
# Prefixes a country abolished that old records still carry, by country code: Mexico's national prefixes
# 01 and 02, its mobile prefixes 044 and 045 and its international mobile token 1, all gone in August 2019
# (Mexico's numbering plan as notified to the ITU, itu.int T020200008A0003; libphonenumber 8.10.17 dropped
# them: its earlier MX metadata read them with the national prefix pattern `0(?:[12]|4[45])|1`). Today's
# Mexican numbers are 10 digits (`[2-9]\d{9}`), so a number that still has one is too long for libphonenumber.
ABOLISHED_PREFIXES: dict[int, tuple[str, ...]] = {52: ("01", "02", "044", "045", "1")}


def normalize_phone(value: str, region: str | None) -> str | None:
    """E.164 digits without the + for a phone number written internationally, or nationally in `region`
    (ISO 3166-1 alpha-2, any case); None for anything that cannot be a number with its country code."""
    written = unicodedata.normalize("NFKC", value).strip()  # fullwidth digits and plus signs as ASCII
    text = _plus_for_international_prefix(written)
    if not any(char.isdigit() for char in text):
        return None  # "n/a", "none": not worth loading libphonenumber for
    if region is None and not text.lstrip("(").startswith("+"):
        return None
    import phonenumbers  # only for a value that may be a phone number (about 17 ms, once per container)

    # As written first where the region dials abroad with a prefix of its own (Australia's 0011, Colombia's
    # 005: libphonenumber knows them), then with `00` read as `+` as most of the world dials.
    readings = [written, text] if region and written.startswith("0") and written != text else [text]
    number = None
    for reading in readings:
        try:
            number = phonenumbers.parse(reading, region.upper() if region else None, keep_raw_input=True)
        except phonenumbers.NumberParseException:
            continue  # no country code ("+999"), no number at all, or over 17 digits after it
        # IS_POSSIBLE only: IS_POSSIBLE_LOCAL_ONLY is a number without its area code.
        if phonenumbers.is_possible_number_with_reason(number) == phonenumbers.ValidationResult.IS_POSSIBLE:
            return _e164_digits(number)
    if number is None:
        return None
    current = _without_abolished_prefix(number)
    if current is not None:
        return _e164_digits(current)
    return _by_metas_rule(number)


def _plus_for_international_prefix(text: str) -> str:
    """`00` before a country code as `+`, and no zero after the `+` (`+0044`, `+001`, `000 44`): Meta's rule
    removes "any leading zeros", and no country code starts with 0 (ITU-T E.164)."""
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        text = "+" + text[1:].lstrip("0 ")
    return text


def _e164_digits(number: PhoneNumber) -> str | None:
    """The country code and the national digits: E.164 without its +. Built from the parsed number, never
    the text as written (libphonenumber's formatting gives back the raw input of a number of zeros, which it
    finds possible); None for a national number of zeros, a placeholder for "no phone"."""
    import phonenumbers

    national = phonenumbers.national_significant_number(number)
    digits = f"{number.country_code}{national}"
    return digits if digits.isdigit() and national.strip("0") else None


def _without_abolished_prefix(number: PhoneNumber) -> PhoneNumber | None:
    """The number without a prefix its country abolished (ABOLISHED_PREFIXES), when what follows is a valid
    number there (libphonenumber's metadata says so); else None."""
    import phonenumbers

    country_code = number.country_code
    if country_code not in ABOLISHED_PREFIXES:
        return None
    national = phonenumbers.national_significant_number(number)  # with an Italian-style leading zero
    for prefix in ABOLISHED_PREFIXES[country_code]:
        rest = national.removeprefix(prefix)
        if rest != national and rest and rest[0] != "0":
            current = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(rest))
            if phonenumbers.is_valid_number(current):
                return current
    return None


def _by_metas_rule(number: PhoneNumber) -> str | None:
    """The digits Meta's rule keeps for a number libphonenumber refuses: only a number written with its
    country code (after `+`, `00` or another international prefix libphonenumber knows for the region), as
    the country code and the digits after it (no extension: E.164 has none), 7 to 15 of them."""
    import phonenumbers

    written_internationally = (
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
        phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
    )
    if number.country_code_source not in written_internationally:
        return None
    digits = _e164_digits(number)
    if digits is None:
        return None
    return digits if MIN_DIGITS_WITH_COUNTRY_CODE <= len(digits) <= MAX_DIGITS_WITH_COUNTRY_CODE else None
