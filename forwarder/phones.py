"""Phone numbers as Meta matches them (match_keys.py's phone key): E.164 digits without the +.

Meta (conversions-api/parameters/customer-information-parameters, `ph`): digits only, always with the
country code ("the number 1 must precede a phone number in the United States"), no leading zeros: no `+`
or `00` before the country code, and no trunk zero (the national `0` of `020 7946 0958`). Which digits
are the country code, which zero is a trunk prefix, and how long a number of each country can be is
libphonenumber's knowledge (`phonenumbers`, the Python port; the project ships its lite variant), so the
number is parsed by it and written as E.164: `(650) 555-1212` in the US is 16505551212, `020 7946 0958`
in the UK and `+44 20 7946 0958` are 442079460958, and Italy's `06 6982 1234` keeps its zero
(390669821234), which E.164 keeps.

A number written nationally is read in the user's region (their `$country`, else DEFAULT_COUNTRY); without
one, only numbers written with an international prefix (`+`, or `00` as most of the world dials it) are
read. A number libphonenumber finds impossible for its country (too short, too long, a local number
without its area code) is omitted, never hashed: it cannot match anyone.

libphonenumber costs about 17 ms to import, so it is imported only for a value with a digit in it: a batch
without a phone never loads it (the benchmark checks this, bench/coldstart.py).
"""

from __future__ import annotations

import unicodedata

# E.164 allows 15 digits; written with spaces, brackets, dashes and an extension a real number stays
# well under this. Longer values are omitted before any parsing (libphonenumber itself refuses over 250).
MAX_PHONE_LENGTH = 64


def normalize_phone(value: str, region: str | None) -> str | None:
    """E.164 digits without the + for a phone number written internationally, or nationally in `region`
    (ISO 3166-1 alpha-2, any case); None for anything that is not a possible number."""
    text = unicodedata.normalize("NFKC", value).strip()  # fullwidth digits and plus signs as ASCII
    if not any(char.isdigit() for char in text):
        return None  # "n/a", "none": not worth loading libphonenumber for
    if text.startswith("00"):
        text = "+" + text[2:]  # Meta: "remove any double 0 in front of the country code"
    if region is None and not text.lstrip("(").startswith("+"):
        return None
    import phonenumbers  # only for a value that may be a phone number (about 17 ms, once per container)

    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    # IS_POSSIBLE only: IS_POSSIBLE_LOCAL_ONLY is a number without its area code, which matches nobody.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")
