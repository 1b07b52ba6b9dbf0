"""Match keys: Meta's normalisation per field, then SHA-256, once per batch.

One small rule per field type, as Meta documents them (offline-conversions "match keys",
conversions-api "customer information parameters", and the SDK's `serverside/normalize.py`); the
table is in README ("Match keys"). Raw values never leave this module except the lower-cased mobile
advertiser id, which the Conversions API wants unhashed.

Every value is bounded in length before any normalising, and every check is a string method or a
pattern that cannot backtrack, so a key costs time linear in a bounded length whatever a batch holds.
Invisible characters (format and control characters, Unicode's default-ignorable code points) are then
removed from every value, so the hash is the one of what the person typed. Countries are ISO 3166-1
alpha-2 codes; a name or alpha-3 code is looked up in pycountry, imported only for a value that is not
already a code.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

from forwarder.batch import User

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

# ISO 3166-1 alpha-2, lower-case: pycountry's list (249 codes), frozen here so the common case, a value
# that already is a code, never imports pycountry. tests/unit/test_match_keys.py checks it against pycountry.
_ISO_ALPHA_2_CODES = """
    ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs bt bv bw by bz
    ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg eh er es et fi fj fk fm fo
    fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je
    jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo
    mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw
    py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg th tj tk tl tm
    tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw
"""
ISO_ALPHA_2 = frozenset(_ISO_ALPHA_2_CODES.split())
# ISO 3166/MA reserves "UK" for the United Kingdom at its request (an "exceptionally reserved" code, like the
# UK's own .uk); it names that country and no other, so it is sent as gb. No other alias: colloquial names
# that are not pycountry's (Great Britain, England, Holland, America, Russia, Turkey) are omitted.
_RESERVED_FOR_COUNTRIES = {"uk": "gb"}


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


def place_key(value: str) -> str:
    """A place name or code as compared: compatibility forms folded (fullwidth US is us), accents dropped
    (Côte is cote), case folded, words of letters and digits run together; & is the word "and", a leading
    "the" goes."""
    folded = unicodedata.normalize("NFKD", value.replace("&", " and ")).casefold()
    words = "".join([char if char.isalnum() else " " for char in folded if not unicodedata.combining(char)]).split()
    if len(words) > 1 and words[0] == "the":
        del words[0]
    return "".join(words)


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
    """Meta: "the lowercase, 2-letter country codes in ISO 3166-1 alpha-2". A code (any case, spacing or dots)
    is kept if ISO assigns it; an alpha-3 code or an English name from pycountry (short, official or common)
    becomes its alpha-2 code; anything else names no country and is omitted (XX, ZZ, numbers, Deutschland,
    N/A: no country code or name has a slash, and "N/A" would otherwise read as Namibia)."""
    if "/" in value:
        return None
    code = value.strip().lower()
    if code in ISO_ALPHA_2:
        return code
    key = place_key(value)
    if key in ISO_ALPHA_2:
        return key
    # Every name pycountry knows is ASCII letters once accents are dropped: anything else (digits, other
    # scripts, nothing) cannot match, and is omitted without loading it.
    if not (key.isascii() and key.isalpha()):
        return None
    return _countries_by_name().get(key)


@cache
def _countries_by_name() -> dict[str, str]:
    """place_key of every alpha-2 and alpha-3 code and English name -> alpha-2, from pycountry (ISO 3166-1).

    Imported here and only once: pycountry costs about 40 ms to import into a bare interpreter (2-3 ms after
    the handler's own imports) and about 5 ms to read its table, which the common case never pays.
    """
    import pycountry

    index = dict(_RESERVED_FOR_COUNTRIES)
    for country in pycountry.countries:
        code = country.alpha_2.lower()
        for name in (
            country.alpha_2,
            country.alpha_3,
            country.name,
            getattr(country, "official_name", None),
            getattr(country, "common_name", None),
        ):
            if name:
                index[place_key(name)] = code
    return index


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
    normalising; invisible characters are removed; one already hashed (64 hex) passes through; one that
    normalises to nothing is omitted.
    """
    prepared = prepare(value, max_length)
    if not prepared:
        return None
    lowered = prepared.strip().lower()
    if is_sha256_hex(lowered):
        return lowered
    # NFC first: "é" typed as e + combining accent must hash like the single character.
    normalized = normalize(unicodedata.normalize("NFC", prepared))
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
        if (prepared := prepare(device_id, MAX_KEY_LENGTH)) and (madid := normalize_madid(prepared)):
            break
    return MatchKeys(hashed=hashed, madid=madid)
