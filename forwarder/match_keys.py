"""Match keys: Meta's normalisation per field, then SHA-256, once per batch.

One small rule per field type, as Meta documents them (offline-conversions "match keys",
conversions-api "customer information parameters", and the SDK's `serverside/normalize.py`); the
table is in README ("Match keys"). Raw values never leave this module except the lower-cased mobile
advertiser id, which the Conversions API wants unhashed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from forwarder.batch import User

_HASHED = re.compile(r"[0-9a-f]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY_ALIASES = {"usa": "us", "unitedstates": "us", "unitedstatesofamerica": "us"}
_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}


def is_sha256_hex(value: str) -> bool:
    """A lower-case SHA-256 hex digest: Meta takes such a value as already hashed."""
    return _HASHED.fullmatch(value) is not None


@lru_cache(maxsize=8192)
def sha256_hex(value: str) -> str:
    """Cached: a batch repeats its user on every event, and warm containers see the same users again."""
    return hashlib.sha256(value.encode()).hexdigest()


def _strip(value: str, drop_digits: bool) -> str:
    """Drop whitespace, punctuation and symbols (and digits for places); letters such as é stay."""
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category[0] in "PSZC" or (drop_digits and category[0] == "N"):
            continue
        kept.append(char)
    return "".join(kept)


def normalize_email(value: str) -> str | None:
    email = value.strip().lower()
    return email if _EMAIL.fullmatch(email) else None


def normalize_name(value: str) -> str | None:
    return _strip(value.lower(), drop_digits=False) or None


def normalize_city(value: str) -> str | None:
    return _strip(value.lower(), drop_digits=True) or None


def normalize_gender(value: str) -> str | None:
    return _GENDERS.get(value.strip().lower())


def normalize_country(value: str) -> str | None:
    letters = _strip(value.lower(), drop_digits=True)
    letters = _COUNTRY_ALIASES.get(letters, letters)
    return letters if len(letters) == 2 and letters.isascii() and letters.isalpha() else None


def normalize_external_id(value: str) -> str | None:
    return value.strip() or None


def normalize_madid(value: str) -> str | None:
    """IDFA/GAID lower-cased; all zeros means the user limited ad tracking (no identifier)."""
    madid = value.strip().lower()
    if not madid or set(madid) <= {"0", "-"}:
        return None
    return madid


# Neutral key -> (mParticle source, normaliser). Adding a key is a row here.
_IDENTITY_KEYS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "email": ("email", normalize_email),
    "external_id": ("customer_id", normalize_external_id),
}
_ATTRIBUTE_KEYS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "gen": ("$gender", normalize_gender),
    "fn": ("$firstname", normalize_name),
    "ln": ("$lastname", normalize_name),
    "ct": ("$city", normalize_city),
    "country": ("$country", normalize_country),
}


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """SHA-256 hex per neutral key (email, fn, ln, gen, ct, country, external_id), plus the madid."""

    hashed: dict[str, str] = field(default_factory=dict)
    madid: str | None = None


def hash_key(value: str, normalize: Callable[[str], str | None]) -> str | None:
    """A value already hashed (64 hex) passes through; one that normalises to nothing is omitted."""
    lowered = value.strip().lower()
    if is_sha256_hex(lowered):
        return lowered
    # NFC first: "é" typed as e + combining accent must hash like the single character.
    normalized = normalize(unicodedata.normalize("NFC", value))
    return sha256_hex(normalized) if normalized else None


def match_keys(user: User) -> MatchKeys:
    hashed: dict[str, str] = {}
    for key, (identity_type, normalize) in _IDENTITY_KEYS.items():
        value = user.identities.get(identity_type)
        if value and (digest := hash_key(value, normalize)):
            hashed[key] = digest
    for key, (attribute, normalize) in _ATTRIBUTE_KEYS.items():
        value = user.attribute(attribute)
        if value and (digest := hash_key(value, normalize)):
            hashed[key] = digest
    madid = None
    for device_id in (user.ios_advertising_id, user.android_advertising_id):
        if device_id and (madid := normalize_madid(device_id)):
            break
    return MatchKeys(hashed=hashed, madid=madid)
