"""Custom data: an event's custom attributes as Meta's `custom_data`, without personal data in clear.

Meta's terms forbid sending unhashed personal data (emails, phone numbers, names, addresses) in
`custom_data` (conversions-api/parameters/custom-data). An attribute whose value (or name) is an email
address (or holds one) or a phone number is therefore removed before rendering, so it is never sent, logged or parked,
and counted under `email_in_custom_data` / `phone_in_custom_data` (README, "Custom data").

A phone number is a value made only of digits and phone punctuation, with 7 to 15 digits (E.164's
maximum), that libphonenumber (`phonenumbers`, imported only for such a value) finds valid: written
internationally (`+…`, `00…`), or nationally for the user's `$country`. Without a country, a national
number is taken for one only under a name that says so (`phone`, `mobile`, `tel`…): a bare run of digits
is more often an id. Dates and amounts are not valid numbers, so they stay.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forwarder.instructions import INSTRUCTIONS
from forwarder.limits import (
    ATTRIBUTE_OVERHEAD_BYTES,
    JSON_BYTES_PER_CHAR,
    MAX_ATTRIBUTES_PER_EVENT,
    MAX_TEXT_LENGTH,
    TooLong,
)
from forwarder.normalize import normalize_email, remove_invisible

EMAIL_IN_CUSTOM_DATA = "email_in_custom_data"
PHONE_IN_CUSTOM_DATA = "phone_in_custom_data"

_SCALARS = frozenset({str, int, float, bool})
_AROUND_WORDS = "<>()[]{},;:'\"`"
# Digits and what people write between them: spaces (no-break too), dots, slashes, brackets, and the
# hyphens and dashes (U+2010-U+2015, the minus sign) that NFKC leaves as they are.
_PHONE_CHARACTERS = frozenset("0123456789+-(). /\u00a0\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# libphonenumber parses about 20,000 numbers a second: this bounds a batch's checks to about 50 ms.
MAX_PHONE_CHECKS_PER_BATCH = 1000
_MAX_PHONE_LENGTH = 32
_PHONE_STARTS = frozenset("0123456789+(")  # how a written phone number begins
_PHONE_NAMES = ("phone", "mobile", "tel", "cell", "sms", "whatsapp", "fax")


class TooManyAttributes(ValueError):
    """More than MAX_ATTRIBUTES_PER_EVENT custom attributes."""


@dataclass(slots=True)
class Screen:
    """What one batch's custom attributes are screened with: the user's country (ISO 3166-1 alpha-2, for
    national phone numbers) and how many phone numbers libphonenumber may still check. Past that budget
    a value shaped like a phone number is removed unchecked: a body of them costs linear time, and errs
    on the side of privacy."""

    region: str | None = None
    checks_left: int = MAX_PHONE_CHECKS_PER_BATCH


def custom_data(data: Mapping[str, Any], screen: Screen) -> tuple[dict[str, Any], int, list[str]]:
    """The event's scalar custom attributes without personal data (nor the `Facebook.*` instructions of
    instructions.py, which are read, never screened), an upper bound in bytes of their JSON, and the reasons
    of what was removed.

    The event's own dict is used as it is when nothing is left out (the usual case): no copy per event.
    Raises TooManyAttributes or TooLong.
    """
    attributes = data.get("custom_attributes")
    if type(attributes) is not dict or not attributes:
        return {}, 0, []
    if len(attributes) > MAX_ATTRIBUTES_PER_EVENT:
        raise TooManyAttributes
    chars = 0
    left_out: list[str] = []
    removed: list[str] = []
    for key, value in attributes.items():
        kind = type(value)
        if type(key) is not str or kind not in _SCALARS or key in INSTRUCTIONS:
            left_out.append(key)
            continue
        key_length, value_length = len(key), len(value) if kind is str else 0
        if key_length > MAX_TEXT_LENGTH or value_length > MAX_TEXT_LENGTH:
            raise TooLong
        if reason := _personal(key, value, screen):
            left_out.append(key)
            removed.append(reason)
            continue
        chars += key_length + value_length
    if left_out:
        attributes = {key: value for key, value in attributes.items() if key not in left_out}
    return attributes, JSON_BYTES_PER_CHAR * chars + ATTRIBUTE_OVERHEAD_BYTES * len(attributes), removed


def _plain(text: str) -> str:
    """Text as a person reads it: without invisible characters, and compatibility forms folded (a
    fullwidth at sign U+FF20 is an @, a non-breaking hyphen a hyphen). ASCII text, the usual case, is left as it is."""
    return text if text.isascii() else unicodedata.normalize("NFKC", remove_invisible(text))


def _personal(key: str, value: str | float | bool, screen: Screen) -> str | None:
    """The reason to remove the attribute, or None. Runs for every attribute of every event: the common
    cases (short ASCII text, small numbers, words) are settled by a cheap look before any normalising."""
    if not key.isascii() or "@" in key:
        plain_key = _plain(key)
        if "@" in plain_key and normalize_email(plain_key):
            return EMAIL_IN_CUSTOM_DATA
    if type(value) is int:  # a JSON number can be a phone number written without punctuation
        if -1_000_000 < value < 1_000_000:
            return None
        text = str(value)
    elif type(value) is str:
        text = value
    else:
        return None
    if not text.isascii():
        text = _plain(text)
    elif "@" not in text and (len(text) < 7 or text.lstrip()[:1] not in _PHONE_STARTS):
        return None
    if "@" in text and _holds_email(text):
        return EMAIL_IN_CUSTOM_DATA
    if _is_phone(key, text, screen):
        return PHONE_IN_CUSTOM_DATA
    return None


def _holds_email(value: str) -> bool:
    """The value is, or has a word that is, an email address (`Jane <jane@example.com>` too)."""
    return any("@" in word and normalize_email(word.strip(_AROUND_WORDS)) for word in value.split())


def _is_phone(key: str, value: str, screen: Screen) -> bool:
    candidate = value.strip()
    if not 7 <= len(candidate) <= _MAX_PHONE_LENGTH or not _PHONE_CHARACTERS.issuperset(candidate):
        return False
    if not 7 <= sum(char.isdigit() for char in candidate) <= 15:
        return False
    named = any(word in key.lower() for word in _PHONE_NAMES)
    international = candidate.startswith(("+", "00"))
    if named or (not international and screen.region is None):
        return named
    if screen.checks_left <= 0:
        return True
    screen.checks_left -= 1
    import phonenumbers  # only for a value shaped like a phone number (about 17 ms, once)

    try:
        number = phonenumbers.parse(
            "+" + candidate[2:] if candidate.startswith("00") else candidate, None if international else screen.region
        )
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)
