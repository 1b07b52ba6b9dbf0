"""Match keys: where each comes from, Meta's normalisation per field, then SHA-256, once per batch.

`KEYS` is the one table of match keys (README, "Match keys", shows the same rows): per key its sources in
priority order, its normaliser, its longest value, and per Facebook API its field name, whether it is
hashed and whether several values go as an array. One small rule per field type, as Meta documents them
(offline-conversions "match keys", conversions-api "customer information parameters", and the SDK's
`serverside/normalize.py`); places (country, state, ZIP) are in places.py and phone numbers in phones.py.
Raw values never leave this module except those an API takes unhashed: the lower-cased mobile advertiser
id on the Conversions API and the external id on the Offline Conversions API (`MatchKeys.unhashed`).

Every value is bounded in length before any normalising, and every check is a string method or a
pattern that cannot backtrack, so a key costs time linear in a bounded length whatever a batch holds; a
user's entries are read to the first 1000 (batch.py) and each key to MAX_VALUES_PER_KEY values.
Invisible characters (format and control characters, Unicode's default-ignorable code points) are then
removed from every value, so the hash is the one of what the person typed. Countries are ISO 3166-1
alpha-2 codes; a name or alpha-3 code is looked up in pycountry, imported only for a value that is not
already a code; libphonenumber is imported only for a value that may be a phone number.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from forwarder.batch import User
from forwarder.facebook_api import FacebookApi
from forwarder.phones import MAX_PHONE_LENGTH, normalize_phone
from forwarder.places import normalize_country, normalize_state, normalize_zip, strip_symbols

# One fixed-length character class: at most 64 characters are looked at, nothing can backtrack.
_HASHED = re.compile(r"[0-9a-f]{64}")
_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}

# RFC 5321 section 4.5.3.1.3: a path is at most 256 octets including its angle brackets, so an address is
# at most 254 characters; a longer one cannot receive mail, so it cannot match anyone.
MAX_EMAIL_LENGTH = 254
# Every other key (names, city, country, gender, advertising id, customer id): Meta documents no maximum,
# and no real value comes near 256 characters (an IDFA or GAID is 36, a country code 2, a gender 1; among
# the longest place names, Bangkok's ceremonial one has 168 letters). Normalising costs a Unicode lookup
# per character and the hash cache keeps what it hashes, so a longer value is omitted, never hashed or cut.
MAX_KEY_LENGTH = 256

Normalizer = Callable[[str], str | None]

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 15.0): code points
# a renderer shows as nothing. Most are Cf (caught below by category too); the rest are the variation
# selectors and Mongolian free variation selectors (Mn), the combining grapheme joiner (Mn), Khmer's two
# inherent vowels (Mn, discouraged by Unicode), the Hangul fillers (Lo) and reserved code points. One
# character class: linear, nothing to backtrack.
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_INVISIBLE_CATEGORIES = ("Cc", "Cf")


def is_sha256_hex(value: str) -> bool:
    """A lower-case SHA-256 hex digest: Meta takes such a value as already hashed."""
    return _HASHED.fullmatch(value) is not None


def _sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Cached: a batch repeats its user on every event, and warm containers see the same users again.
_cached_sha256_hex = lru_cache(maxsize=8192)(_sha256_hex)


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 value, 64 lower-case hex digits.

    Values of at most MAX_KEY_LENGTH characters go through the cache; longer ones are hashed each time,
    so a warm container's cache holds at most 8192 short strings, not every large value it was ever sent.
    """
    if len(value) > MAX_KEY_LENGTH:
        return _sha256_hex(value)
    return _cached_sha256_hex(value)


# The cache's own controls under the public name: the benchmark clears it, tests read its size.
sha256_hex.cache_info = _cached_sha256_hex.cache_info  # type: ignore[attr-defined]
sha256_hex.cache_clear = _cached_sha256_hex.cache_clear  # type: ignore[attr-defined]


def remove_invisible(value: str) -> str:
    """The value without format (Cf) and control (Cc) characters and default-ignorable code points.

    Zero-width spaces, zero-width joiners and non-joiners, byte-order marks, bidi marks, embeddings and
    isolates, soft hyphens, tag characters, variation selectors, NUL and other C0/C1 controls go; the
    controls that are whitespace (tab, newline, carriage return...) stay whitespace, which every key already
    trims, removes or refuses. Letters and their marks stay: é as e + U+0301, Devanagari vowel signs and
    virama. Two linear passes; the first only for a value with a character str.isprintable refuses.
    """
    if not value.isprintable():
        value = "".join(
            [
                char
                for char in value
                if char.isprintable() or char.isspace() or unicodedata.category(char) not in _INVISIBLE_CATEGORIES
            ]
        )
    return _DEFAULT_IGNORABLE.sub("", value)


def prepare(value: str | None, max_length: int) -> str | None:
    """A raw value ready for a normaliser: None when absent or over `max_length` (counted before anything is
    removed, so no value costs more than a bounded amount of work), else without invisible characters."""
    if not value or len(value) > max_length:
        return None
    return remove_invisible(value)


def _is_email(email: str) -> bool:
    """`local@domain.tld`: one @, a non-empty local part, a domain of two or more non-empty dot-separated
    labels (RFC 5321's `Domain`), no whitespace anywhere.

    String methods only, linear in the length: a backtracking pattern under fullmatch took quadratic time
    on an @ followed by many dots (30 s for 121 KB, on every retry).
    """
    local, _, domain = email.partition("@")
    labels = domain.split(".")
    return bool(local) and "@" not in domain and len(labels) > 1 and all(labels) and not any(map(str.isspace, email))


def normalize_email(value: str) -> str | None:
    """Meta: trimmed and lower-cased; anything that is not an address is omitted."""
    email = value.strip().lower()
    return email if _is_email(email) else None


def normalize_name(value: str) -> str | None:
    return strip_symbols(value.lower(), drop_digits=False) or None


def normalize_city(value: str) -> str | None:
    return strip_symbols(value.lower(), drop_digits=True) or None


def normalize_gender(value: str) -> str | None:
    return _GENDERS.get(value.strip().lower())


def country_code(value: str | None) -> str | None:
    """The alpha-2 code a raw `$country` names, by the country match key's rules; LDU asks this too."""
    prepared = prepare(value, MAX_KEY_LENGTH)
    return normalize_country(unicodedata.normalize("NFC", prepared)) if prepared else None


def normalize_external_id(value: str) -> str | None:
    return value.strip() or None


def normalize_madid(value: str) -> str | None:
    """IDFA/GAID lower-cased; all zeros means the user limited ad tracking (no identifier)."""
    madid = value.strip().lower()
    if not madid or set(madid) <= {"0", "-"}:
        return None
    return madid


# ---- the table -----------------------------------------------------------------------------------------
# Meta documents arrays for every hashed key of the Conversions API ("string or list<string>") and for email and
# phone on the Offline Conversions API, and no maximum length for them. Ten distinct values per key keeps every
# event small (about 0.7 KB per key at most, measured into each event's size: render.py) and is more than any key
# has sources by default (email 1, phone 4); past ten, the first ten in priority order are sent.
MAX_VALUES_PER_KEY = 10


class Place(NamedTuple):  # NamedTuple rather than dataclass: a third of the import time (cold start)
    """Where the user is, for the keys whose rules depend on it: the ISO 3166-1 alpha-2 code (lower case) their
    `$country` names, and the region national phone numbers are read in (that code, else DEFAULT_COUNTRY)."""

    country: str | None = None
    phone_region: str | None = None


KeyNormalizer = Callable[[str, Place], str | None]


def _anywhere(normalize: Normalizer) -> KeyNormalizer:
    """A rule that does not depend on where the user is."""
    return lambda value, _place: normalize(value)


class Sent(NamedTuple):
    """How one Facebook API takes a key."""

    name: str  # the field in `match_keys` / `user_data`
    hashed: bool = True  # SHA-256 of the normalised value; False: the normalised value itself
    many: bool = False  # an array of up to MAX_VALUES_PER_KEY distinct values when the user has several


class Key(NamedTuple):
    """One match key: where it comes from, how it is normalised, how each API takes it (README, "Match keys")."""

    name: str  # neutral: the summary's and the EventsWithMatchKey metric's name for it
    sources: tuple[str, ...]  # priority order: identity types, `$attribute`s, `device_info.<id>`, `mpid`
    normalize: KeyNormalizer
    max_length: int  # a longer value is omitted before any normalising
    sent: Mapping[FacebookApi, Sent]  # an API absent here does not take the key
    setting: str | None = None  # the variable whose identity types replace `sources`

    @property
    def clear(self) -> bool:
        """Kept normalised but unhashed, as an API takes it so; the renderer hashes it for the others."""
        return not all(sent.hashed for sent in self.sent.values())


OFFLINE, CONVERSIONS = FacebookApi.OFFLINE_CONVERSIONS, FacebookApi.CONVERSIONS_API
PHONE_SOURCES = ("mobile_number", "phone_number_2", "phone_number_3", "$mobile")
MADID_SOURCES = ("device_info.ios_advertising_id", "device_info.android_advertising_id")
# EXTERNAL_ID_IDENTITY_TYPE's choices besides `none`: `mpid` is the batch's user id, the others identity types.
EXTERNAL_ID_SOURCES = ("customer_id", "mpid", "other", *(f"other_id_{n}" for n in range(2, 11)))

# Every match key, in the order the APIs receive them. Adding a key is a row here (and a normaliser).
# Offline Conversions API: marketing-api/offline-conversions ("match_keys": email and phone are arrays,
# extern_id is not hashed). Conversions API: conversions-api/parameters/customer-information-parameters
# (every hashed key "string or list<string>"; madid unhashed; external_id "hashing recommended").
KEYS: tuple[Key, ...] = (
    Key("email", ("email",), _anywhere(normalize_email), MAX_EMAIL_LENGTH,
        {OFFLINE: Sent("email", many=True), CONVERSIONS: Sent("em", many=True)}, setting="EMAIL_IDENTITY_TYPES"),
    Key("phone", PHONE_SOURCES, lambda value, place: normalize_phone(value, place.phone_region), MAX_PHONE_LENGTH,
        {OFFLINE: Sent("phone", many=True), CONVERSIONS: Sent("ph", many=True)}),
    Key("fn", ("$firstname",), _anywhere(normalize_name), MAX_KEY_LENGTH,
        {OFFLINE: Sent("fn"), CONVERSIONS: Sent("fn", many=True)}),
    Key("ln", ("$lastname",), _anywhere(normalize_name), MAX_KEY_LENGTH,
        {OFFLINE: Sent("ln"), CONVERSIONS: Sent("ln", many=True)}),
    Key("gen", ("$gender",), _anywhere(normalize_gender), MAX_KEY_LENGTH,
        {OFFLINE: Sent("gen"), CONVERSIONS: Sent("ge", many=True)}),
    Key("ct", ("$city",), _anywhere(normalize_city), MAX_KEY_LENGTH,
        {OFFLINE: Sent("ct"), CONVERSIONS: Sent("ct", many=True)}),
    Key("st", ("$state",), lambda value, place: normalize_state(value, place.country), MAX_KEY_LENGTH,
        {OFFLINE: Sent("st"), CONVERSIONS: Sent("st", many=True)}),
    Key("zip", ("$zip",), lambda value, place: normalize_zip(value, place.country), MAX_KEY_LENGTH,
        {OFFLINE: Sent("zip"), CONVERSIONS: Sent("zp", many=True)}),
    Key("country", ("$country",), _anywhere(normalize_country), MAX_KEY_LENGTH,
        {OFFLINE: Sent("country"), CONVERSIONS: Sent("country", many=True)}),
    Key("external_id", ("customer_id",), _anywhere(normalize_external_id), MAX_KEY_LENGTH,
        {OFFLINE: Sent("extern_id", hashed=False), CONVERSIONS: Sent("external_id", many=True)},
        setting="EXTERNAL_ID_IDENTITY_TYPE"),
    # Meta: the advertising id is hashed on the Offline Conversions API (as mParticle's integration and Meta's
    # uploader do) and sent as it is, lower-cased, on the Conversions API. The IDFA first, else the GAID.
    Key("madid", MADID_SOURCES, _anywhere(normalize_madid), MAX_KEY_LENGTH,
        {OFFLINE: Sent("madid"), CONVERSIONS: Sent("madid", hashed=False)}),
)  # fmt: skip
KEYS_BY_NAME: Mapping[str, Key] = {key.name: key for key in KEYS}


class KeySettings(NamedTuple):
    """The operator's choices (README, "Configuration"): identity types replacing a key's sources (EMAIL_IDENTITY_TYPES
    for email, EXTERNAL_ID_IDENTITY_TYPE for external_id), and DEFAULT_COUNTRY (lower case)."""

    sources: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    default_country: str | None = None


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """Per neutral key, the user's distinct values in priority order (at most MAX_VALUES_PER_KEY): SHA-256 hex,
    or for a `clear` key (madid, external_id) the normalised value, which the renderer hashes where the API
    wants it hashed. Computed once per batch; raw values never leave this module."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def unhashed(self) -> list[str]:
        """The values some API receives as they are: what the redactor must know besides the raw ones."""
        return [
            value for key in KEYS if key.clear for value in self.values.get(key.name, ()) if not is_sha256_hex(value)
        ]


def key_value(value: str, key: Key, place: Place) -> str | None:
    """The value as stored for `key`, or None when it is omitted: SHA-256 hex of the normalised value (the
    normalised value itself for a `clear` key).

    A value (as read from the batch: trimmed) over the key's length is omitted before any normalising;
    invisible characters are removed; one already hashed (64 hex) passes through lower-cased; one that
    normalises to nothing is omitted.
    """
    prepared = prepare(value, key.max_length)
    if not prepared:
        return None
    lowered = prepared.strip().lower()
    if is_sha256_hex(lowered):
        return lowered
    # NFC first: "é" typed as e + combining accent must hash like the single character.
    normalized = key.normalize(unicodedata.normalize("NFC", prepared), place)
    if not normalized:
        return None
    return normalized if key.clear else sha256_hex(normalized)


def _read(user: User, source: str) -> str | None:
    if source[0] == "$":
        return user.attribute(source)
    if source == "mpid":
        return user.mpid
    if source == "device_info.ios_advertising_id":
        return user.ios_advertising_id
    if source == "device_info.android_advertising_id":
        return user.android_advertising_id
    return user.identities.get(source)


def match_keys(user: User, options: KeySettings | None = None) -> MatchKeys:
    """The user's keys: every source of every key in priority order, each value normalised and hashed once."""
    options = options or KeySettings()
    country = country_code(user.attribute("$country"))
    place = Place(country=country, phone_region=country or options.default_country)
    values: dict[str, tuple[str, ...]] = {}
    for key in KEYS:
        found: dict[str, None] = {}  # distinct, in priority order
        for source in options.sources.get(key.name, key.sources):
            raw = _read(user, source)
            if raw and (stored := key_value(raw, key, place)):
                found[stored] = None
                if len(found) == MAX_VALUES_PER_KEY:
                    break
        if found:
            values[key.name] = tuple(found)
    return MatchKeys(values)
