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
# Anything Facebook says is trimmed to this after redaction.
MESSAGE_LIMIT = 300
# Redaction looks at a bounded prefix of the text (it may be megabytes): this much, plus the longest
# known value, so that every value starting in it is seen whole and none can survive cut in part.
_SCANNED = 4 * MESSAGE_LIMIT
# Shorter values (a country or gender code) identify nobody and would mangle ordinary words.
_MIN_LENGTH = 3
_MAX_VALUES = 500  # a batch carries one user: a few identities and attributes (secrets are never capped)
_MAX_VALUE_LENGTH = 256  # longer personal values are never match keys, so Facebook never receives them
# Linear patterns: a word (an email-shaped one is redacted whole) and an IDFA/GAID-shaped UUID.
_WORD = re.compile(r"\S+")
_DEVICE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Redactor:
    """Callable `(text) -> text` with the secrets, the known personal values and every email/device-id
    shape replaced by [redacted], trimmed to MESSAGE_LIMIT characters.

    `personal` values (the batch's) are kept up to _MAX_VALUES, each of 3 to 256 characters; `secrets`
    (the token, app secret, appsecret_proof) are always kept, whatever their number or length.
    """

    def __init__(self, personal: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        kept: set[str] = set()
        for value in personal:
            if len(kept) >= _MAX_VALUES:
                break
            value = value.strip()
            if _MIN_LENGTH <= len(value) <= _MAX_VALUE_LENGTH:
                kept.add(value)
        self.personal = frozenset(kept)
        self.secrets = frozenset(secret for secret in secrets if len(secret) >= _MIN_LENGTH)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor(self.personal, [*self.secrets, *secrets])

    @cached_property
    def _known(self) -> tuple[re.Pattern[str] | None, int]:
        """The values as one pattern, and the longest one's length; compiled on first use (only an error
        message needs it)."""
        values = self.personal | self.secrets
        if not values:
            return None, 0
        alternatives = sorted(values, key=len, reverse=True)  # the longest of overlapping values first
        return re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE), len(alternatives[0])

    def __call__(self, text: str) -> str:
        known, longest = self._known
        window = text[: _SCANNED + longest]
        # A value that starts before `cut` lies wholly inside the window, so it is matched whole.
        cut = len(window) if len(text) <= len(window) else len(window) - longest
        spans = [match.span() for match in known.finditer(window)] if known is not None else []
        spans += [match.span() for match in _WORD.finditer(window) if "@" in match.group()]
        spans += [match.span() for match in _DEVICE_ID.finditer(window)]
        parts: list[str] = []
        position = 0
        for start, end in sorted(spans):
            if start >= cut:
                break
            if end <= position:
                continue  # inside a span already redacted
            if start >= position:
                parts.append(window[position:start])
                parts.append(REDACTED)
            position = max(position, end)
        parts.append(window[position:cut])
        return "".join(parts)[:MESSAGE_LIMIT]


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


def user_values(user: User, *sent: str) -> list[str]:
    """Every raw value the batch holds about its user, those Facebook could have been sent first: the values
    sent unhashed as they were sent (`sent`: the madid, the Offline Conversions API's extern_id), the
    advertising ids, the mpid, identities of any type, reserved ($) attributes, the others."""
    values = [*sent, user.ios_advertising_id, user.android_advertising_id, user.mpid, *user.identities.values()]
    reserved = [text(value) for name, value in user.attributes.items() if name.startswith("$")]
    others = [text(value) for name, value in user.attributes.items() if not name.startswith("$")]
    return [value for value in (*values, *reserved, *others) if value]
