"""Meta's normalisation rules for the match keys that need no place and no phone library, and what every
key's value goes through first.

One small rule per field type, as Meta documents them (offline-conversions "match keys", conversions-api
"customer information parameters", and the SDK's `serverside/normalize.py`): email, first and last name,
city, gender, external id, mobile advertiser id. Countries, states and ZIP codes are in places.py, phone
numbers in phones.py; the table of keys that uses them is match_keys.py.

Every value is bounded in length before any normalising (`prepare`), and every check is a string method or
a pattern that cannot backtrack, so a value costs time linear in a bounded length. Invisible characters
(format and control characters, Unicode's default-ignorable code points) are then removed, so the hash is
the one of what the person typed.
"""

from __future__ import annotations

import re
import unicodedata

from forwarder.places import strip_symbols

_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}

# RFC 5321 section 4.5.3.1.3: a path is at most 256 octets including its angle brackets, so an address is
# at most 254 characters; a longer one cannot receive mail, so it cannot match anyone.
MAX_EMAIL_LENGTH = 254
# Every other key (names, city, country, gender, advertising id, customer id): Meta documents no maximum,
# and no real value comes near 256 characters (an IDFA or GAID is 36, a country code 2, a gender 1; among
# the longest place names, Bangkok's ceremonial one has 168 letters). Normalising costs a Unicode lookup
# per character and the hash cache keeps what it hashes, so a longer value is omitted, never hashed or cut.
MAX_KEY_LENGTH = 256

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


def normalize_external_id(value: str) -> str | None:
    return value.strip() or None


def normalize_madid(value: str) -> str | None:
    """IDFA/GAID lower-cased; all zeros means the user limited ad tracking (no identifier)."""
    madid = value.strip().lower()
    if not madid or set(madid) <= {"0", "-"}:
        return None
    return madid
