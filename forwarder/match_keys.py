"""Match keys: where each comes from, which rule normalises it, then SHA-256, once per batch.

`KEYS` is the one table of match keys (README, "Match keys", shows the same rows): per key its sources in
priority order, its normaliser, its longest value, and per Facebook API its field name, whether it is
hashed and whether several values go as an array. The rules themselves are Meta's, one per field type:
normalize.py (email, names, city, gender, external id, advertising id), places.py (country, state, ZIP),
phones.py and dates_of_birth.py. Raw values never leave this module except those an API takes unhashed: the lower-cased
mobile advertiser id on the Conversions API and the external id on the Offline Conversions API
(`MatchKeys.unhashed`).

Every value is bounded in length before any normalising (normalize.py), so a key costs time linear in a
bounded length whatever a batch holds; a user's entries are read to the first 1000 (batch.py) and each key
to MAX_VALUES_PER_KEY values. Where the user is (`Place`: their country, the region of national phone
numbers) is worked out once per batch by `place_of`, and LDU and custom data's phone screen read the same.
Countries are ISO 3166-1 alpha-2 codes; a name or alpha-3 code is looked up in pycountry, imported only for
a value that is not already a code; libphonenumber is imported only for a value that may be a phone number.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from forwarder.batch import User
from forwarder.dates_of_birth import MAX_DATE_OF_BIRTH_LENGTH, normalize_date_of_birth
from forwarder.facebook_api import FacebookApi
from forwarder.normalize import (
    MAX_EMAIL_LENGTH,
    MAX_KEY_LENGTH,
    normalize_city,
    normalize_email,
    normalize_external_id,
    normalize_gender,
    normalize_madid,
    normalize_name,
    prepare,
)
from forwarder.phones import MAX_PHONE_LENGTH, normalize_phone
from forwarder.places import normalize_country, normalize_state, normalize_zip

# One fixed-length character class: at most 64 characters are looked at, nothing can backtrack.
_HASHED = re.compile(r"[0-9a-f]{64}")


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


# ---- where the user is ---------------------------------------------------------------------------------


class Place(NamedTuple):  # NamedTuple rather than dataclass: a third of the import time (cold start)
    """Where and when the user is, for the keys whose rules depend on it: the ISO 3166-1 alpha-2 code (lower
    case) their `$country` names, the region national phone numbers are read in (that code, else
    DEFAULT_COUNTRY), and today's date in UTC (no date of birth is later; None: the clock's)."""

    country: str | None = None
    phone_region: str | None = None
    today: date | None = None


def country_code(value: str | None) -> str | None:
    """The alpha-2 code (lower case) a raw `$country` names, by the country match key's rules."""
    prepared = prepare(value, MAX_KEY_LENGTH)
    return normalize_country(unicodedata.normalize("NFC", prepared)) if prepared else None


def place_of(user: User, default_country: str | None = None, today: date | None = None) -> Place:
    """Where the batch's user is, worked out once per batch: the match keys, LDU (who is in the US) and the
    custom data's phone screen all read this one answer, so they always agree. `today`: the day of the
    batch's `now` in UTC."""
    country = country_code(user.attribute("$country"))
    return Place(country=country, phone_region=country or default_country, today=today)


def _date_of_birth(part: slice) -> KeyNormalizer:
    """Meta's YYYYMMDD for a date of birth (dates_of_birth.py), or the part of it `part` cuts (the Offline
    Conversions API's doby, dobm, dobd), never after the place's today."""

    def normalize(value: str, place: Place) -> str | None:
        written = normalize_date_of_birth(value, place.today or datetime.now(UTC).date())
        return written[part] if written else None

    return normalize


# ---- the table -----------------------------------------------------------------------------------------
# Meta documents arrays for every hashed key of the Conversions API ("string or list<string>") and for email and
# phone on the Offline Conversions API, and no maximum length for them. Ten distinct values per key keeps every
# event small (about 0.7 KB per key at most, measured into each event's size: render.py) and is more than any key
# has sources by default (email 1, phone 4); past ten, the first ten in priority order are sent.
MAX_VALUES_PER_KEY = 10

Normalizer = Callable[[str], str | None]
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
    # A value already hashed (64 hex) is passed through; False for a part of a value (a hash cannot be cut).
    takes_hashed: bool = True

    @property
    def clear(self) -> bool:
        """Kept normalised but unhashed, as an API takes it so; the renderer hashes it for the others."""
        return not all(sent.hashed for sent in self.sent.values())


OFFLINE, CONVERSIONS = FacebookApi.OFFLINE_CONVERSIONS, FacebookApi.CONVERSIONS_API
PHONE_SOURCES = ("mobile_number", "phone_number_2", "phone_number_3", "$mobile")
MADID_SOURCES = ("device_info.ios_advertising_id", "device_info.android_advertising_id")
# EXTERNAL_ID_IDENTITY_TYPE's choices besides `none`: `mpid` is the batch's user id, the others identity types.
EXTERNAL_ID_SOURCES = ("customer_id", "mpid", "other", *(f"other_id_{n}" for n in range(2, 11)))
# A user attribute named by the operator (DATE_OF_BIRTH_ATTRIBUTE): `user_attributes.<name>`, the name lower-cased.
USER_ATTRIBUTE = "user_attributes."
# The keys a date of birth feeds, each with no source until DATE_OF_BIRTH_ATTRIBUTE names one: `db` on the
# Conversions API, the year, month and day apart on the Offline Conversions API.
DATE_OF_BIRTH_KEYS = ("db", "doby", "dobm", "dobd")

# Every match key, in the order the APIs receive them. Adding a key is a row here (and a normaliser).
# Offline Conversions API: marketing-api/offline-conversions ("match_keys": email and phone are arrays,
# extern_id is not hashed). Conversions API: conversions-api/parameters/customer-information-parameters
# (every hashed key "string or list<string>"; madid unhashed; external_id "hashing recommended").
KEYS: tuple[Key, ...] = (
    Key("email", ("email",), _anywhere(normalize_email), MAX_EMAIL_LENGTH,
        {OFFLINE: Sent("email", many=True), CONVERSIONS: Sent("em", many=True)}),
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
        {OFFLINE: Sent("extern_id", hashed=False), CONVERSIONS: Sent("external_id", many=True)}),
    # Meta: the advertising id is hashed on the Offline Conversions API (as mParticle's integration and Meta's
    # uploader do) and sent as it is, lower-cased, on the Conversions API. The IDFA first, else the GAID.
    Key("madid", MADID_SOURCES, _anywhere(normalize_madid), MAX_KEY_LENGTH,
        {OFFLINE: Sent("madid"), CONVERSIONS: Sent("madid", hashed=False)}),
    # Meta: `db` "YYYYMMDD", "string or list<string>" (customer-information-parameters); the Offline Conversions
    # API's `doby`, `dobm`, `dobd` as Meta's uploader makes them from one date (offline-conversion-file-uploader:
    # SHA-256 of the YYYY, the MM and the DD).
    Key("db", (), _date_of_birth(slice(0, 8)), MAX_DATE_OF_BIRTH_LENGTH, {CONVERSIONS: Sent("db", many=True)}),
    Key("doby", (), _date_of_birth(slice(0, 4)), MAX_DATE_OF_BIRTH_LENGTH, {OFFLINE: Sent("doby")}, False),
    Key("dobm", (), _date_of_birth(slice(4, 6)), MAX_DATE_OF_BIRTH_LENGTH, {OFFLINE: Sent("dobm")}, False),
    Key("dobd", (), _date_of_birth(slice(6, 8)), MAX_DATE_OF_BIRTH_LENGTH, {OFFLINE: Sent("dobd")}, False),
)  # fmt: skip


_NO_SOURCES: Mapping[str, tuple[str, ...]] = MappingProxyType({})


class KeySettings(NamedTuple):
    """The operator's choices (docs/configuration.md): sources replacing a key's (EMAIL_IDENTITY_TYPES for email,
    EXTERNAL_ID_IDENTITY_TYPE for external_id, DATE_OF_BIRTH_ATTRIBUTE for the DATE_OF_BIRTH_KEYS), and
    DEFAULT_COUNTRY (lower case)."""

    sources: Mapping[str, tuple[str, ...]] = _NO_SOURCES
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
    invisible characters are removed; one already hashed (64 hex) passes through lower-cased (omitted for a
    key that takes a part of the value); one that normalises to nothing is omitted.
    """
    prepared = prepare(value, key.max_length)
    if not prepared:
        return None
    lowered = prepared.strip().lower()
    if is_sha256_hex(lowered):
        return lowered if key.takes_hashed else None
    # NFC first: "é" typed as e + combining accent must hash like the single character.
    normalized = key.normalize(unicodedata.normalize("NFC", prepared), place)
    if not normalized:
        return None
    return normalized if key.clear else sha256_hex(normalized)


def _read(user: User, source: str) -> str | None:
    if source[0] == "$":
        return user.attribute(source)
    if source.startswith(USER_ATTRIBUTE):
        return user.attribute(source[len(USER_ATTRIBUTE) :])
    if source == "mpid":
        return user.mpid
    if source == "device_info.ios_advertising_id":
        return user.ios_advertising_id
    if source == "device_info.android_advertising_id":
        return user.android_advertising_id
    return user.identities.get(source)


def match_keys(user: User, place: Place, sources: Mapping[str, tuple[str, ...]] = _NO_SOURCES) -> MatchKeys:
    """The user's keys: every source of every key in priority order (`sources`: KeySettings.sources, the
    operator's replacements per key), each value normalised for `place_of(user)` and hashed once."""
    values: dict[str, tuple[str, ...]] = {}
    for key in KEYS:
        found: dict[str, None] = {}  # distinct, in priority order
        for source in sources.get(key.name, key.sources):
            raw = _read(user, source)
            if raw and (stored := key_value(raw, key, place)):
                found[stored] = None
                if len(found) == MAX_VALUES_PER_KEY:
                    break
        if found:
            values[key.name] = tuple(found)
    return MatchKeys(values)
