"""Redaction of text that comes from outside before it reaches a response, a log line or a parked message.

Facebook's error messages may quote what they were sent: the unhashed `madid` of the Conversions API,
a custom attribute, the request's own fields. A `Redactor` knows the secrets in force and the batch's
raw personal values (every identity, user attribute and advertising id, whatever its type) and removes
them, case-insensitively, together with anything shaped like an email address or a device id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property

from forwarder.batch import User, text
from forwarder.match_keys import is_sha256_hex

REDACTED = "[redacted]"
# Anything Facebook says is trimmed to this after redaction; redaction looks at a bounded prefix first, so
# a value cut at the end can never survive in part.
MESSAGE_LIMIT = 300
_SCANNED = 4 * MESSAGE_LIMIT
# Shorter values (a country or gender code) identify nobody and would mangle ordinary words.
_MIN_LENGTH = 3
_MAX_VALUES = 200  # a batch carries one user: a few identities and attributes
_MAX_VALUE_LENGTH = 256  # longer values are never match keys, so Facebook never receives them
# Linear patterns: a word (an email-shaped one is redacted whole) and an IDFA/GAID-shaped UUID.
_WORD = re.compile(r"\S+")
_DEVICE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Redactor:
    """Callable `(text) -> text` with every known value and email/device-id shape replaced by [redacted],
    trimmed to MESSAGE_LIMIT characters."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept: set[str] = set()
        for value in values:
            if len(kept) >= _MAX_VALUES:
                break
            value = value.strip()
            if _MIN_LENGTH <= len(value) <= _MAX_VALUE_LENGTH:
                kept.add(value)
        self.values = frozenset(kept)

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor([*self.values, *values])

    @cached_property
    def _known(self) -> re.Pattern[str] | None:
        """Compiled on first use: only an error message needs it."""
        if not self.values:
            return None
        alternatives = sorted(self.values, key=len, reverse=True)  # the longest of overlapping values first
        return re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)

    def __call__(self, text: str) -> str:
        text = text[:_SCANNED]
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        text = _WORD.sub(_email_shaped, text)
        return _DEVICE_ID.sub(REDACTED, text)[:MESSAGE_LIMIT]


def _email_shaped(word: re.Match[str]) -> str:
    return REDACTED if "@" in word.group() else word.group()


def raw_values(keys: object) -> list[str]:
    """The string values of a rendered event's `user_data`/`match_keys` that are not SHA-256 digests:
    what replay must redact, since the user's raw values are gone by then (the unhashed madid)."""
    if not isinstance(keys, dict):
        return []
    values = []
    for value in keys.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not is_sha256_hex(item):
                values.append(item)
    return values


def user_values(user: User) -> list[str]:
    """Every raw value the batch holds about its user: identities of any type, user attributes, device ids."""
    values = [*user.identities.values(), *(text(value) for value in user.attributes.values())]
    values += [user.ios_advertising_id, user.android_advertising_id]
    return [value for value in values if value]
