"""Country names people write, as Meta takes a country: "the lowercase, 2-letter country codes in ISO 3166-1
alpha-2" (customer-information-parameters, `country`; Meta's SDK checks the code against pycountry).

Expected codes are ISO 3166-1's; former names come from ISO 3166-3, whose four-letter codes name the
successor (BUMM: Burma is now MM; HH: split). A name that may mean more than one country is omitted.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.match_keys import match_keys, place_of
from forwarder.places import COUNTRY_ALIASES, ISO_ALPHA_2, normalize_country, place_key


def country_key(written: str) -> tuple[str, ...] | None:
    user = read_batch({"events": [], "user_attributes": {"$country": written}}).user
    return dict(match_keys(user, place_of(user)).values).get("country")


# (as written, ISO 3166-1 alpha-2)
NAMES = [
    # Russia, Palestine, Macedonia, and their other names.
    ("Russia", "ru"),
    ("RUSSIA", "ru"),
    ("Russian Federation", "ru"),
    ("Palestine", "ps"),
    ("State of Palestine", "ps"),
    ("Palestine, State of", "ps"),
    ("Palestinian Territories", "ps"),
    ("Occupied Palestinian Territory", "ps"),
    ("Macedonia", "mk"),
    ("North Macedonia", "mk"),
    ("Republic of North Macedonia", "mk"),
    ("Republic of Macedonia", "mk"),
    ("Former Yugoslav Republic of Macedonia", "mk"),
    ("FYROM", "mk"),
    # ISO's inverted short names, read in the order people write them, and their heads.
    ("Republic of Korea", "kr"),
    ("South Korea", "kr"),
    ("Democratic People's Republic of Korea", "kp"),
    ("North Korea", "kp"),
    ("Iran", "ir"),
    ("Islamic Republic of Iran", "ir"),
    ("Syria", "sy"),
    ("Vietnam", "vn"),
    ("Laos", "la"),
    ("Bolivia", "bo"),
    ("Venezuela", "ve"),
    ("Tanzania", "tz"),
    ("United Republic of Tanzania", "tz"),
    ("Moldova", "md"),
    ("Republic of Moldova", "md"),
    ("Micronesia", "fm"),
    ("The Democratic Republic of the Congo", "cd"),
    ("Democratic Republic of the Congo", "cd"),
    ("U.S. Virgin Islands", "vi"),
    ("British Virgin Islands", "vg"),
    ("Bonaire", "bq"),
    ("Saint Helena", "sh"),
    # Names ISO used before the country asked for another.
    ("Czech Republic", "cz"),
    ("Czechia", "cz"),
    ("Turkey", "tr"),
    ("Türkiye", "tr"),
    ("Turkiye", "tr"),
    ("Ivory Coast", "ci"),
    ("Côte d'Ivoire", "ci"),
    ("Cape Verde", "cv"),
    ("Cabo Verde", "cv"),
    ("Swaziland", "sz"),
    ("Eswatini", "sz"),
    # Former countries with one successor (ISO 3166-3).
    ("Burma", "mm"),
    ("Myanmar", "mm"),
    ("Zaire", "cd"),
    ("East Timor", "tl"),
    ("Timor-Leste", "tl"),
    ("Upper Volta", "bf"),
    ("Dahomey", "bj"),
    ("Southern Rhodesia", "zw"),
    ("New Hebrides", "vu"),
    ("German Democratic Republic", "de"),  # its whole territory is Germany's
    ("Byelorussian SSR Soviet Socialist Republic", "by"),  # ISO 3166-3 "BYAA": the code did not change
    # Places inside one country.
    ("Holland", "nl"),
    ("Great Britain", "gb"),
    ("Britain", "gb"),
    ("England", "gb"),
    ("Scotland", "gb"),
    ("Wales", "gb"),
    ("Northern Ireland", "gb"),
    ("Bosnia", "ba"),
    # ISO's names without their parenthesis or long form.
    ("Vatican", "va"),
    ("Vatican City", "va"),
    ("Holy See", "va"),
    ("Brunei", "bn"),
    ("Falkland Islands", "fk"),
    ("Sint Maarten", "sx"),
    ("Macau", "mo"),
    ("Macao", "mo"),
    # ISO's own short names keep their meaning.
    ("Congo", "cg"),
    ("Georgia", "ge"),
]


@pytest.mark.parametrize(("written", "code"), NAMES)
def test_a_name_of_one_country_is_sent_as_its_code(written: str, code: str) -> None:
    assert normalize_country(written) == code
    assert country_key(written) == (hashlib.sha256(code.encode()).hexdigest(),)


@pytest.mark.parametrize("code", sorted({code for _, code in NAMES}))
def test_every_code_sent_is_one_metas_sdk_accepts(code: str) -> None:
    normalize = pytest.importorskip("facebook_business.adobjects.serverside.normalize").Normalize
    assert normalize.normalize_field_skip_hashing("country", code) == code


AMBIGUOUS = [
    "Korea",  # the Republic of Korea or the Democratic People's Republic of Korea
    "America",  # the continents, or the United States
    "Virgin Islands",  # the US's or the UK's
    "Saint Martin",  # the island is French and Dutch
    "Czechoslovakia",  # now two countries (ISO 3166-3 "CSHH")
    "USSR",
    "Union of Soviet Socialist Republics",
    "Yugoslavia",  # its ISO 3166-3 successor code, CS, is no longer assigned
    "Serbia and Montenegro",
    "Netherlands Antilles",
    "Gilbert and Ellice Islands",  # now Kiribati and Tuvalu
    "Pacific Islands",
    "Kosovo",  # XK is user-assigned, not ISO's
    "Europe",
    "Deutschland",
]


@pytest.mark.parametrize("written", AMBIGUOUS)
def test_a_name_that_may_mean_more_than_one_country_or_none_is_omitted(written: str) -> None:
    assert normalize_country(written) is None
    assert country_key(written) is None


def pycountry() -> Any:
    return pytest.importorskip("pycountry")


def test_the_aliases_name_assigned_codes_and_never_a_country_isos_names_give_another() -> None:
    iso_names: dict[str, str] = {}
    for country in pycountry().countries:
        for attribute in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            if hasattr(country, attribute):
                iso_names[place_key(getattr(country, attribute))] = country.alpha_2.lower()
    for name, code in COUNTRY_ALIASES.items():
        assert code in ISO_ALPHA_2, name
        assert iso_names.get(place_key(name), code) == code, name


def test_every_former_country_with_one_successor_gives_its_code_and_no_other_does() -> None:
    for former in pycountry().historic_countries:
        successor = former.alpha_4[2:]
        successor = former.alpha_4[:2] if successor == "AA" else successor
        expected = successor.lower() if successor.lower() in ISO_ALPHA_2 else None
        assert normalize_country(former.name) == expected, former.name
