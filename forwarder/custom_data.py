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

from collections.abc import Mapping
from typing import Any

from forwarder.limits import ATTRIBUTE_OVERHEAD_BYTES, JSON_BYTES_PER_CHAR, MAX_ATTRIBUTES_PER_EVENT, MAX_TEXT_LENGTH
from forwarder.match_keys import normalize_email

EMAIL_IN_CUSTOM_DATA = "email_in_custom_data"
PHONE_IN_CUSTOM_DATA = "phone_in_custom_data"

_SCALARS = frozenset({str, int, float, bool})
_AROUND_WORDS = "<>()[]{},;:'\"`"
_PHONE_CHARACTERS = frozenset("0123456789+-(). /\u00a0")
_MAX_PHONE_LENGTH = 32
_PHONE_NAMES = ("phone", "mobile", "tel", "cell", "sms", "whatsapp", "fax")


class TooManyAttributes(ValueError):
    """More than MAX_ATTRIBUTES_PER_EVENT custom attributes."""


class TooLong(ValueError):
    """A name or value over MAX_TEXT_LENGTH."""


def custom_data(data: Mapping[str, Any], region: str | None) -> tuple[dict[str, Any], int, list[str]]:
    """The event's scalar custom attributes without personal data, an upper bound in bytes of their
    JSON, and the reasons of what was removed. `region` is the user's ISO 3166-1 alpha-2 country, if known.

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
        if type(key) is not str or kind not in _SCALARS:
            left_out.append(key)
            continue
        key_length, value_length = len(key), len(value) if kind is str else 0
        if key_length > MAX_TEXT_LENGTH or value_length > MAX_TEXT_LENGTH:
            raise TooLong
        if reason := _personal(key, value if kind is str else None, region):
            left_out.append(key)
            removed.append(reason)
            continue
        chars += key_length + value_length
    if left_out:
        attributes = {key: value for key, value in attributes.items() if key not in left_out}
    return attributes, JSON_BYTES_PER_CHAR * chars + ATTRIBUTE_OVERHEAD_BYTES * len(attributes), removed


def _personal(key: str, value: str | None, region: str | None) -> str | None:
    if "@" in key and normalize_email(key):
        return EMAIL_IN_CUSTOM_DATA
    if value is None:
        return None
    if "@" in value and _holds_email(value):
        return EMAIL_IN_CUSTOM_DATA
    if _is_phone(key, value, region):
        return PHONE_IN_CUSTOM_DATA
    return None


def _holds_email(value: str) -> bool:
    """The value is, or has a word that is, an email address (`Jane <jane@example.com>` too)."""
    return any("@" in word and normalize_email(word.strip(_AROUND_WORDS)) for word in value.split())


def _is_phone(key: str, value: str, region: str | None) -> bool:
    candidate = value.strip()
    if not 7 <= len(candidate) <= _MAX_PHONE_LENGTH or not _PHONE_CHARACTERS.issuperset(candidate):
        return False
    if not 7 <= sum(char.isdigit() for char in candidate) <= 15:
        return False
    named = any(word in key.lower() for word in _PHONE_NAMES)
    international = candidate.startswith(("+", "00"))
    if not international and region is None:
        return named
    import phonenumbers  # only for a value shaped like a phone number (about 17 ms, once)

    try:
        number = phonenumbers.parse(
            "+" + candidate[2:] if candidate.startswith("00") else candidate, None if international else region
        )
    except phonenumbers.NumberParseException:
        return named
    return named or phonenumbers.is_valid_number(number)
