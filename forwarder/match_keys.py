"""Match keys: Meta's normalisation per field, then SHA-256, once per batch.

One small rule per field type, as Meta documents them (offline-conversions "match keys",
conversions-api "customer information parameters", and the SDK's `serverside/normalize.py`); the
table is in README ("Match keys"). Raw values never leave this module except the lower-cased mobile
advertiser id, which the Conversions API wants unhashed.

Every value is bounded in length before any normalising, and every check is a string method or a
pattern that cannot backtrack, so a key costs time linear in a bounded length whatever a batch holds.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from forwarder.batch import User

# One fixed-length character class: at most 64 characters are looked at, nothing can backtrack.
_HASHED = re.compile(r"[0-9a-f]{64}")
_COUNTRY_ALIASES = {"usa": "us", "unitedstates": "us", "unitedstatesofamerica": "us"}
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
sha256_hex.cache_info = _cached_sha256_hex.cache_info
sha256_hex.cache_clear = _cached_sha256_hex.cache_clear


def _strip(value: str, drop_digits: bool) -> str:
    """Drop whitespace, punctuation and symbols (and digits for places); letters such as é stay."""
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category[0] in "PSZC" or (drop_digits and category[0] == "N"):
            continue
        kept.append(char)
    return "".join(kept)


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


# Neutral key -> (mParticle source, normaliser, longest value accepted). Adding a key is a row here.
_IDENTITY_KEYS: dict[str, tuple[str, Normalizer, int]] = {
    "email": ("email", normalize_email, MAX_EMAIL_LENGTH),
    "external_id": ("customer_id", normalize_external_id, MAX_KEY_LENGTH),
}
_ATTRIBUTE_KEYS: dict[str, tuple[str, Normalizer, int]] = {
    "gen": ("$gender", normalize_gender, MAX_KEY_LENGTH),
    "fn": ("$firstname", normalize_name, MAX_KEY_LENGTH),
    "ln": ("$lastname", normalize_name, MAX_KEY_LENGTH),
    "ct": ("$city", normalize_city, MAX_KEY_LENGTH),
    "country": ("$country", normalize_country, MAX_KEY_LENGTH),
}


@dataclass(frozen=True, slots=True)
class MatchKeys:
    """SHA-256 hex per neutral key (email, fn, ln, gen, ct, country, external_id), plus the madid."""

    hashed: dict[str, str] = field(default_factory=dict)
    madid: str | None = None


def hash_key(value: str, normalize: Normalizer, max_length: int) -> str | None:
    """SHA-256 hex of the normalised value, or None when it is omitted.

    A value (as read from the batch: trimmed) over `max_length` characters is omitted before any
    normalising; one already hashed (64 hex) passes through; one that normalises to nothing is omitted.
    """
    if len(value) > max_length:
        return None
    lowered = value.strip().lower()
    if is_sha256_hex(lowered):
        return lowered
    # NFC first: "é" typed as e + combining accent must hash like the single character.
    normalized = normalize(unicodedata.normalize("NFC", value))
    return sha256_hex(normalized) if normalized else None


def match_keys(user: User) -> MatchKeys:
    hashed: dict[str, str] = {}
    for key, (identity_type, normalize, max_length) in _IDENTITY_KEYS.items():
        value = user.identities.get(identity_type)
        if value and (digest := hash_key(value, normalize, max_length)):
            hashed[key] = digest
    for key, (attribute, normalize, max_length) in _ATTRIBUTE_KEYS.items():
        value = user.attribute(attribute)
        if value and (digest := hash_key(value, normalize, max_length)):
            hashed[key] = digest
    madid = None
    for device_id in (user.ios_advertising_id, user.android_advertising_id):
        if device_id and len(device_id) <= MAX_KEY_LENGTH and (madid := normalize_madid(device_id)):
            break
    return MatchKeys(hashed=hashed, madid=madid)
