"""Limited Data Use: Meta's state codes and the "is this the US" rule (README, "Limited Data Use (CCPA)").

The codes are Meta's, from its data-processing-options page (marketing-apis/data-processing-options:
1000-1010, and 1011 Minnesota, 1012 Maryland, 1013 Rhode Island on the page as updated in 2026); the
two-letter codes are USPS's. Nothing here is computed from ldu.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.ldu import Ldu, limited_data_use
from forwarder.match_keys import place_of
from forwarder.settings import LduMode

USA, GEOLOCATE = 1, 0

# Meta's code, the state's two-letter code and its name.
META_STATES = [
    (1000, "CA", "California"),
    (1001, "CO", "Colorado"),
    (1002, "CT", "Connecticut"),
    (1003, "FL", "Florida"),
    (1004, "OR", "Oregon"),
    (1005, "TX", "Texas"),
    (1006, "MT", "Montana"),
    (1007, "DE", "Delaware"),
    (1008, "NE", "Nebraska"),
    (1009, "NH", "New Hampshire"),
    (1010, "NJ", "New Jersey"),
    (1011, "MN", "Minnesota"),
    (1012, "MD", "Maryland"),
    (1013, "RI", "Rhode Island"),
]


def spellings(code: str, name: str) -> list[str]:
    """How a `$state` may carry the state: code or name, any case, with spaces around and inside."""
    return [
        code,
        code.lower(),
        code.title(),
        f" {code} ",
        f"{code[0]}.{code[1]}.",
        name,
        name.lower(),
        name.upper(),
        f"  {name}\t",
        name.replace(" ", "  "),
        name.replace(" ", ""),
        "\u200b" + name + "\ufeff",  # invisible characters, as in every match key
    ]


STATE_CASES = [
    pytest.param(spelling, meta_code, id=f"{meta_code}-{spelling!r}")
    for meta_code, code, name in META_STATES
    for spelling in dict.fromkeys(spellings(code, name))
]


def ldu_for(country: Any, state: Any, mode: LduMode = LduMode.ALWAYS) -> Ldu | None:
    attributes = {key: value for key, value in (("$country", country), ("$State", state)) if value is not None}
    user = read_batch({"events": [], "user_attributes": attributes}).user
    return limited_data_use(mode, user, place_of(user))


@pytest.mark.parametrize(("state", "meta_code"), STATE_CASES)
def test_every_ldu_state_by_code_or_name_in_any_case(state: str, meta_code: int) -> None:
    assert ldu_for("US", state) == Ldu(country=USA, state=meta_code)


def test_the_list_is_the_one_meta_publishes() -> None:
    """Fourteen states, each code once, in the order Meta added them."""
    assert [code for code, _, _ in META_STATES] == list(range(1000, 1014))
    for meta_code, code, name in META_STATES:
        assert ldu_for("US", name) == ldu_for("US", code) == Ldu(country=USA, state=meta_code)


@pytest.mark.parametrize(
    "state",
    [
        "NY",
        "New York",
        "WA",
        "Washington",
        "VA",
        "Virginia",
        "UT",
        "Utah",
        "PR",  # Puerto Rico: its own ISO country, not an LDU state
        "ZZ",
        "Cal",
        "Calif.",
        "New",
        "Jersey",
        "US-MN",  # an ISO 3166-2 code is not one of the spellings taken
        "1011",
        "",
        "   ",
        "\u200b",
        "M" * 257,
    ],
)
def test_any_other_state_lets_meta_geolocate(state: str) -> None:
    assert ldu_for("US", state) == Ldu(country=USA, state=GEOLOCATE)


# The country match key's rule decides who is in the US (README, "Match keys"): a code, an alpha-3 code or
# a name ISO lists, any case, invisible characters removed; anything else is geolocated by Meta.
@pytest.mark.parametrize(
    ("country", "usa"),
    [
        ("US", True),
        (" us ", True),
        ("U.S.", True),
        ("USA", True),
        ("U.S.A.", True),
        ("United States", True),
        ("united states of america", True),
        ("\ufeffUS\u200b", True),
        ("\uff35\uff33", True),  # fullwidth US
        ("America", False),  # no name in ISO's list
        ("UM", False),  # United States Minor Outlying Islands: another ISO code
        ("Puerto Rico", False),
        ("Germany", False),
        ("DE", False),
        ("XX", False),
        ("840", False),
        ("", False),
        (None, False),
        ("U" + " " * 255 + "S", False),  # over the bound: unknown, like the key
    ],
)
def test_the_country_is_the_us_by_the_match_keys_rule(country: str | None, usa: bool) -> None:
    expected = Ldu(country=USA, state=1011) if usa else Ldu(country=GEOLOCATE, state=GEOLOCATE)
    assert ldu_for(country, "Minnesota") == expected


def test_no_ldu_fields_unless_the_setting_says_so() -> None:
    assert ldu_for("US", "MN", LduMode.NEVER) is None
    assert ldu_for("US", "MN", LduMode.OPTED_OUT) is None  # this batch's user did not opt out
