"""Places as Meta matches them: countries, states and ZIP codes (match_keys.py's country, st and zip keys).

Meta (conversions-api/parameters/customer-information-parameters): a country is "the lowercase, 2-letter
country code in ISO 3166-1 alpha-2"; a state is "the 2-character ANSI abbreviation code in lowercase" in
the US, and "lowercase with no punctuation, no special characters, and no spaces" elsewhere; a ZIP code is
"lowercase with no spaces and no dash", "only the first 5 digits for U.S. zip codes", and "the area,
district, and sector format for the UK" (its example, m11ae, is the whole postcode M1 1AE).

Every rule is a string method or a lookup: linear in a value whose length match_keys.py bounds first. Nothing
here imports another forwarder module, so match_keys.py and ldu.py can both build on it.
"""

from __future__ import annotations

import unicodedata
from functools import cache

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
# Names people write for a country that ISO's current list (pycountry) does not hold. Each names one ISO
# 3166-1 country and nothing else: every place it can mean lies inside that country. "UK" is a code ISO
# 3166/MA reserves for the United Kingdom at its request (an "exceptionally reserved" code, like the UK's own
# .uk). Refused, as naming more than one: America (the continents, or the US), Korea (two states), Congo
# beyond ISO's own name for the Republic of the Congo, the Virgin Islands (US or British), Saint Martin
# (French and Dutch parts), and the states that split (Czechoslovakia, the USSR, Yugoslavia).
COUNTRY_ALIASES: dict[str, str] = {
    "UK": "gb",
    # The United Kingdom's island, and its four countries (ISO 3166-2:GB subdivisions).
    "Great Britain": "gb", "Britain": "gb", "England": "gb", "Scotland": "gb", "Wales": "gb",
    "Northern Ireland": "gb",
    # Holland's two provinces are in the Netherlands; Bosnia is the larger part of Bosnia and Herzegovina.
    "Holland": "nl", "Bosnia": "ba",
    # "Russia" and "Russian Federation" are equal names in the Russian constitution (article 1).
    "Russia": "ru",
    # ISO's English names until the country asked for another: Turkey (2022), Swaziland (2018), the former
    # Yugoslav Republic of Macedonia (2019; the country called itself the Republic of Macedonia), Cape Verde
    # (2013), the Occupied Palestinian Territory (2013); Ivory Coast, Côte d'Ivoire in English.
    "Turkey": "tr", "Swaziland": "sz", "Macedonia": "mk", "Republic of Macedonia": "mk",
    "Former Yugoslav Republic of Macedonia": "mk", "FYROM": "mk", "Cape Verde": "cv",
    "Palestinian Territory": "ps", "Palestinian Territories": "ps", "Occupied Palestinian Territory": "ps",
    "Ivory Coast": "ci",
    # ISO's names without their parenthesis or long form: Holy See (Vatican City State), Brunei Darussalam,
    # Falkland Islands (Malvinas), Sint Maarten (Dutch part), and Macao as its own Portuguese spells it.
    "Vatican": "va", "Vatican City": "va", "Holy See": "va", "Brunei": "bn", "Falkland Islands": "fk",
    "Sint Maarten": "sx", "Macau": "mo",
    # The initials the country uses itself (its federal government's English name), dotted or not.
    "UAE": "ae",
}  # fmt: skip

# The US states, the District of Columbia and the inhabited territories with their ANSI (FIPS 5-2) / USPS
# two-letter codes; other spellings a $state may use follow the official name.
US_STATES: tuple[tuple[str, ...], ...] = (
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
    ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("FL", "Florida"), ("GA", "Georgia"),
    ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"), ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"),
    ("KY", "Kentucky"), ("LA", "Louisiana"), ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"),
    ("MI", "Michigan"), ("MN", "Minnesota"), ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"),
    ("NE", "Nebraska"), ("NV", "Nevada"), ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"),
    ("NY", "New York"), ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"),
    ("OR", "Oregon"), ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"),
    ("SD", "South Dakota"), ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"),
    ("VA", "Virginia"), ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
    ("DC", "District of Columbia", "Washington DC", "Washington D.C."),
    ("AS", "American Samoa"), ("GU", "Guam"), ("MP", "Northern Mariana Islands"), ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands", "United States Virgin Islands", "Virgin Islands"),
    ("UM", "United States Minor Outlying Islands", "U.S. Minor Outlying Islands"),
)  # fmt: skip


def place_key(value: str) -> str:
    """A place name or code as compared: compatibility forms folded (fullwidth US is us), accents dropped
    (Côte is cote), case folded, words of letters and digits run together; & is the word "and", a leading
    "the" goes."""
    folded = unicodedata.normalize("NFKD", value.replace("&", " and ")).casefold()
    words = "".join([char if char.isalnum() else " " for char in folded if not unicodedata.combining(char)]).split()
    if len(words) > 1 and words[0] == "the":
        del words[0]
    return "".join(words)


_US_STATE_CODES = {
    place_key(spelling): code.lower() for code, *spellings in US_STATES for spelling in (code, *spellings)
}


def strip_symbols(value: str, drop_digits: bool) -> str:
    """Drop whitespace, punctuation, symbols and controls (and digits for places); letters such as é stay."""
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category[0] in "PSZC" or (drop_digits and category[0] == "N"):
            continue
        kept.append(char)
    return "".join(kept)


# ---- countries -----------------------------------------------------------------------------------------


def normalize_country(value: str) -> str | None:
    """Meta: "the lowercase, 2-letter country codes in ISO 3166-1 alpha-2". A code (any case, spacing or dots)
    is kept if ISO assigns it; an alpha-3 code, an English name from pycountry (short, official or common, a
    short name ISO writes inverted read either way: "Korea, Republic of" and "Republic of Korea"; its head
    alone when no other country shares it: "Palestine", "Moldova"), a former name from ISO 3166-3 whose
    country has one successor ("Burma", "Zaire", "East Timor"), or a COUNTRY_ALIASES name becomes its
    alpha-2 code; anything else names no country and is omitted (XX, ZZ, numbers, Deutschland, Korea, N/A:
    no country code or name has a slash, and "N/A" would otherwise read as Namibia)."""
    if "/" in value:
        return None
    code = value.strip().lower()
    if code in ISO_ALPHA_2:
        return code
    key = place_key(value)
    if key in ISO_ALPHA_2:
        return key
    # Every name known here is ASCII letters once accents are dropped: anything else (digits, other scripts,
    # nothing) cannot match, and is omitted without loading pycountry.
    if not (key.isascii() and key.isalpha()):
        return None
    return _countries_by_name().get(key)


@cache
def _countries_by_name() -> dict[str, str]:
    """place_key of every name normalize_country reads -> alpha-2, from pycountry (ISO 3166-1 and 3166-3).

    Imported here and only once: pycountry costs about 40 ms to import into a bare interpreter (2-3 ms after
    the handler's own imports) and about 5 ms to read its table, which the common case never pays.
    """
    import pycountry

    # Weakest first, each tier overwriting the one before: readings derived from ISO's current and former names
    # (a reading two countries share is dropped), then COUNTRY_ALIASES, then ISO's current codes and names,
    # which nothing overrides.
    derived: dict[str, set[str]] = {}
    for country in pycountry.countries:
        for name in (*_inverted_readings(country.name), *_abbreviated(country)):
            derived.setdefault(place_key(name), set()).add(country.alpha_2.lower())
    for former in pycountry.historic_countries:
        successor = _successor(former.alpha_4)
        if successor:
            for name in (former.name, *_inverted_readings(former.name)):
                derived.setdefault(place_key(name), set()).add(successor)
    index = {key: codes.pop() for key, codes in derived.items() if len(codes) == 1}
    index.update({place_key(name): code for name, code in COUNTRY_ALIASES.items()})
    for country in pycountry.countries:
        for name in (country.alpha_2, country.alpha_3, country.name, *_other_names(country)):
            index[place_key(name)] = country.alpha_2.lower()
    return index


def _abbreviated(country: object) -> tuple[str, ...]:
    """Names beginning "Saint" as they are usually written, "St" ("St Lucia", "St. Kitts and Nevis"): a
    derived reading, so dropped where two countries would share it."""
    names = (getattr(country, "name", ""), *_other_names(country))
    return tuple("St " + name.removeprefix("Saint ") for name in names if name.startswith("Saint "))


def _other_names(country: object) -> tuple[str, ...]:
    return tuple(name for attribute in ("official_name", "common_name") if (name := getattr(country, attribute, None)))


def _inverted_readings(name: str) -> tuple[str, ...]:
    """ISO writes some short names "Head, qualifier" ("Korea, Republic of", "Virgin Islands, U.S."): read as
    "qualifier Head" (the full name) and as the head alone (kept only while no other country shares it)."""
    head, comma, qualifier = name.partition(", ")
    return (f"{qualifier} {head}", head) if comma else ()


def _successor(alpha_4: str) -> str | None:
    """The alpha-2 code of a former country's one successor, from its ISO 3166-3 code: the last two letters are
    the new alpha-2 code ("BUMM": Burma is now MM), "AA" when the alpha-2 code did not change ("BYAA"), "HH"
    or "XX" when the country split or left no successor (Czechoslovakia, the USSR); a code ISO no longer
    assigns (Yugoslavia's "YUCS") has none either."""
    successor = alpha_4[:2] if alpha_4[2:] == "AA" else alpha_4[2:]
    return successor.lower() if successor.lower() in ISO_ALPHA_2 else None


# ---- states --------------------------------------------------------------------------------------------


def us_state_code(value: str) -> str | None:
    """The lower-case two-letter code a US state's code or name stands for (any case, spacing, dots or
    accents: "CA", "c.a.", "California", "NEW  YORK"), else None."""
    return _US_STATE_CODES.get(place_key(value))


def normalize_state(value: str, country: str | None) -> str | None:
    """Meta's `st`. In the US (or, without a country, for the code or name of a US state) the state's two-letter
    code in lower case, from a code or a name ("California" -> ca); a US value that is neither is omitted, never
    guessed. Elsewhere lower case without whitespace, punctuation, symbols or digits ("Île-de-France" ->
    îledefrance, "ON" -> on)."""
    if country in (None, "us"):
        code = us_state_code(value)
        if code is not None or country == "us":
            return code
    return strip_symbols(value.lower(), drop_digits=True) or None


# ---- ZIP codes -----------------------------------------------------------------------------------------


def _is_zip_plus_4(value: str) -> bool:
    """Five ASCII digits, a dash or a space, four ASCII digits: the US ZIP+4 form, written by no other country."""
    return len(value) == 10 and value[5] in "- " and (digits := value[:5] + value[6:]).isascii() and digits.isdigit()


def normalize_zip(value: str, country: str | None) -> str | None:
    """Meta's `zp` (`zip` on the Offline Conversions API): lower case, only letters and digits (no spaces, dashes
    or other punctuation; fullwidth forms folded), so "SW1A 1AA" -> sw1a1aa, "K1A 0B1" -> k1a0b1, "00-950" ->
    00950. In the US (or, without a country, a value written as ZIP+4) the first five digits of a ZIP or ZIP+4
    ("94103-1234" -> 94103); a US value that is neither is omitted (a 4-digit number that lost its leading
    zero would otherwise be sent as another ZIP)."""
    folded = unicodedata.normalize("NFKC", value).strip()
    compact = "".join([char for char in folded.lower() if char.isalnum()])
    if country == "us" or (country is None and _is_zip_plus_4(folded)):
        return compact[:5] if len(compact) in (5, 9) and compact.isascii() and compact.isdigit() else None
    return compact or None
