"""Redaction of text that comes from outside before it reaches a response, a log line or a parked message.

Facebook's error messages may quote what they were sent, in whatever form: a value as the user typed it,
as Meta normalises it (the phone `16505551212`, with or without `+`, the email lower-cased), as we hashed
it, or a value sent unhashed (the Conversions API's `madid`, the Offline Conversions API's `extern_id`).
One `Redactor` serves every path (the webhook, the buffered sender, replay, the backfill) and knows every
form it can: the secrets in force; the raw personal values when the path has them (the webhook has the
batch); the values the events carry unhashed; and the SHA-256 digests they carry, against which every
word and run of up to four words (six for a number) in the text is checked in its normalised forms (any
case; a number written nationally, after every country calling code), so a value is found even where only
its hash travelled.
Anything shaped like an email address, a device id or a SHA-256 digest goes too. Matching is
case-insensitive.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from forwarder.batch import User, text

REDACTED = "[redacted]"
# Anything Facebook says is trimmed to this after redaction.
MESSAGE_LIMIT = 300
# Redaction looks at a bounded prefix of the text (it may be megabytes): four times what it keeps, plus the
# longest known value, so that every value starting in it is seen whole and none can survive cut in part.
# Shorter values (a country or gender code) identify nobody and would mangle ordinary words.
_MIN_LENGTH = 3
_MAX_VALUES = 500  # a batch carries one user: a few identities and attributes (secrets are never capped)
_MAX_VALUE_LENGTH = 256  # longer personal values are never match keys, so Facebook never receives them
_SPAN_WORDS = 4  # a name or a city quoted in up to four words ("Santa Cruz de Tenerife")
_NUMBER_WORDS = 6  # a phone number in up to six ("+33 6 12 34 56 78")
_NUMBER_CHECKS = 40  # numbers whose national forms are tried (each costs a hash per country calling code)
_MIN_PHONE_DIGITS = 7
_MIN_NATIONAL_DIGITS, _MAX_NATIONAL_DIGITS = 6, 14  # a national number: E.164's 15 digits less a country code
# Linear patterns: a word (an email-shaped one is redacted whole), an IDFA/GAID-shaped UUID, a SHA-256 digest.
_WORD = re.compile(r"\S+")
_DEVICE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGEST = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_QUOTES = "'\"`\u2018\u2019\u201c\u201d\u00ab\u00bb()[]{}<>,;:.!?"  # quotes and brackets around a value


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _forms(value: str) -> set[str]:
    """The forms Meta may quote of a value it received hashed or not: as written, lower-cased, letters and
    digits only (names, cities, ZIP codes: Meta's normalisation), and for a phone number (no letters) its
    digits with and without leading zeros (Meta: "remove symbols, letters, and any leading zeros")."""
    lowered = value.lower()
    forms = {value, lowered, value.upper(), "".join(char for char in lowered if char.isalnum())}
    if not any(char.isalpha() for char in value):
        digits = "".join(char for char in value if char.isdigit())
        if len(digits) >= _MIN_PHONE_DIGITS:
            forms |= {digits, digits.lstrip("0")}
    return {form for form in forms if len(form) >= _MIN_LENGTH}


def _pattern(value: str) -> str:
    """A known value as a pattern matching it whole, never inside a longer word or number ("Doe" is not in
    "does"). A number is found whatever Meta wrote before it: a "+", or the zeros of an international prefix."""
    if value.isdigit():
        return rf"(?<!\d)\+?0{{0,4}}{value}(?!\d)"
    before = r"(?<![^\W_])" if value[0].isalnum() else ""  # a letter or digit before it: part of a longer word
    after = r"(?![^\W_])" if value[-1].isalnum() else ""
    return f"{before}{re.escape(value)}{after}"


def _international(value: str) -> set[str]:
    """A phone number Meta quotes as it was written nationally ("(650) 555-1212", "020 7946 0958"): its digits
    after each country calling code, the trunk zero dropped, as Meta's `ph` holds them (E.164 without +)."""
    if any(char.isalpha() for char in value):
        return set()
    digits = "".join(char for char in value if char.isdigit())
    if not _MIN_NATIONAL_DIGITS <= len(digits) <= _MAX_NATIONAL_DIGITS:
        return set()
    import phonenumbers  # only for a number-shaped quote in an error message (about 17 ms, once)

    national = {digits, digits.lstrip("0")}
    return {f"{code}{number}" for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for number in national}


class Redactor:
    """Callable `(text) -> text` with every known value in every form, and every email, device-id and digest
    shape, replaced by [redacted], trimmed to MESSAGE_LIMIT characters.

    `personal`: raw values (up to _MAX_VALUES, each of 3 to 256 characters), redacted in each of their
    forms; `secrets` (the token, app secret, appsecret_proof): always kept, whatever their number or
    length; `hashes`: SHA-256 hex digests sent, matched against the text's words in their forms; `events`:
    one request's rendered events, whose digests and unhashed values join those, read only when a text
    must be cleaned (a request's events: at most 1000, so what is known stays bounded).
    """

    def __init__(
        self,
        personal: Iterable[str] = (),
        secrets: Iterable[str] = (),
        hashes: Iterable[str] = (),
        events: Sequence[dict[str, Any]] = (),
    ) -> None:
        self._raw, self._digests, self._events = tuple(personal), tuple(hashes), events
        self.secrets = frozenset(secret for secret in secrets if len(secret) >= _MIN_LENGTH)

    @classmethod
    def for_events(cls, events: Sequence[dict[str, Any]], personal: Iterable[str] = ()) -> Redactor:
        """A redactor for a request of these rendered events: their keys' digests and unhashed values (read
        only if an error message must be cleaned), and the raw `personal` values the caller knows (the
        webhook: the batch's user)."""
        return cls(personal, events=events)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor(self._raw, [*self.secrets, *secrets], self._digests, self._events)

    @cached_property
    def _from_events(self) -> tuple[list[str], set[str]]:
        """The events' unhashed key values and SHA-256 digests."""
        raw: list[str] = []
        digests: set[str] = set()
        for event in self._events:
            for value in _key_values(event):
                if _HEX64.fullmatch(value):
                    digests.add(value)
                else:
                    raw.append(value)
        return raw, digests

    @cached_property
    def personal(self) -> frozenset[str]:
        """The raw values known, up to _MAX_VALUES, each of 3 to 256 characters."""
        kept: set[str] = set()
        for value in (*self._raw, *self._from_events[0]):
            if len(kept) >= _MAX_VALUES:
                break
            value = value.strip()
            if _MIN_LENGTH <= len(value) <= _MAX_VALUE_LENGTH:
                kept.add(value)
        return frozenset(kept)

    @cached_property
    def hashes(self) -> frozenset[str]:
        return frozenset(self._digests).union(self._from_events[1])

    @cached_property
    def _known(self) -> tuple[re.Pattern[str] | None, int]:
        """Every form of the values as one pattern, and the longest one's length; compiled on first use (only
        an error message needs it). A secret is found anywhere; a personal value only whole (`_pattern`)."""
        forms = {form for value in self.personal for form in _forms(value)}
        values = sorted(forms | self.secrets, key=len, reverse=True)  # the longest of overlapping values first
        if not values:
            return None, 0
        patterns = [re.escape(value) if value in self.secrets else _pattern(value) for value in values]
        return re.compile("|".join(patterns), re.IGNORECASE), len(values[0]) + 8

    def _hashed_spans(self, window: str) -> list[tuple[int, int]]:
        """Runs of words one of whose forms hashes to a digest that was sent: up to _SPAN_WORDS words, or
        _NUMBER_WORDS for a number ("+33 6 12 34 56 78"). A number's national forms are tried for the first
        _NUMBER_CHECKS numbers; past them, a run of 7 or more digits is redacted unchecked (linear work, and
        it errs on the side of privacy)."""
        if not self.hashes:
            return []
        words = [(match.start(), match.end()) for match in _WORD.finditer(window)]
        spans = []
        numbers: set[str] = set()
        for first in range(len(words)):
            for last in range(first, min(first + _NUMBER_WORDS, len(words))):
                start, end = words[first][0], words[last][1]
                quoted = window[start:end]
                inner = quoted.strip(_QUOTES)
                number = bool(inner) and not any(char.isalpha() for char in inner)
                if not inner or (last - first >= _SPAN_WORDS and not number):
                    continue
                forms = _forms(inner)
                if number and (digits := "".join(char for char in inner if char.isdigit())) not in numbers:
                    if len(numbers) >= _NUMBER_CHECKS:
                        forms = {REDACTED} if len(digits) >= _MIN_PHONE_DIGITS else forms
                    else:
                        numbers.add(digits)
                        forms |= _international(inner)
                if REDACTED in forms or any(_sha256(form) in self.hashes for form in forms):
                    offset = quoted.index(inner)
                    spans.append((start + offset, start + offset + len(inner)))
        return spans

    def __call__(self, message: str, limit: int = MESSAGE_LIMIT) -> str:
        """The message cleaned, trimmed to `limit` characters (of a prefix of 4 x `limit` scanned)."""
        known, longest = self._known
        window = message[: 4 * limit + longest]
        # A value that starts before `cut` lies wholly inside the window, so it is matched whole.
        cut = len(window) if len(message) <= len(window) else len(window) - longest
        spans = [match.span() for match in known.finditer(window)] if known is not None else []
        spans += [match.span() for match in _WORD.finditer(window) if "@" in match.group()]
        spans += [match.span() for match in _DEVICE_ID.finditer(window)]
        spans += [match.span() for match in _DIGEST.finditer(window)]
        spans += self._hashed_spans(window[:cut])
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
        return "".join(parts)[:limit]


def _key_values(event: dict[str, Any]) -> list[str]:
    """The string values of a rendered event's `user_data` (Conversions API) or `match_keys` (Offline
    Conversions API), whatever the event holds (a message read back may hold anything)."""
    keys = event.get("user_data", event.get("match_keys"))
    if not isinstance(keys, dict):
        return []
    values = []
    for value in keys.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
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
