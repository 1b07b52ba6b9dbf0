"""CCPA Limited Data Use: when to flag an event, and the country/state codes Meta expects.

Meta (marketing-apis/data-processing-options): `data_processing_options: ["LDU"]` with country 1 for
the USA or 0 to let Meta geolocate, and a state code (0 = geolocate). A state code only means
something with country 1, so any other country sends 0/0.
"""

from __future__ import annotations

from dataclasses import dataclass

from forwarder.batch import User
from forwarder.match_keys import Place
from forwarder.normalize import MAX_KEY_LENGTH, prepare
from forwarder.places import place_key
from forwarder.settings import LduMode

USA = 1
GEOLOCATE = 0

# Meta's state codes for LDU (data-processing-options page; README, "Limited Data Use", lists them with
# their source): code, then the two-letter USPS code and the name, the spellings a `$state` may use.
LDU_STATES: tuple[tuple[int, str, str], ...] = (
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
)
# Compared like country names (place_key): any case, spacing, dots or accents ("new  jersey", "N.J.").
_STATE_CODES = {place_key(spelling): code for code, *spellings in LDU_STATES for spelling in spellings}


@dataclass(frozen=True, slots=True)
class Ldu:
    country: int
    state: int


def _state_code(state: str | None) -> int:
    # The match keys' bound and invisible characters: no state's name is near 256 characters.
    prepared = prepare(state, MAX_KEY_LENGTH)
    return _STATE_CODES.get(place_key(prepared), GEOLOCATE) if prepared else GEOLOCATE


def limited_data_use(mode: LduMode, user: User, place: Place) -> Ldu | None:
    """The LDU fields for this batch's events, or None when the setting says not to send them; `place` is the
    batch's (match_keys.place_of)."""
    if mode is LduMode.NEVER or (mode is LduMode.OPTED_OUT and not user.ccpa_opted_out):
        return None
    # The country match key's own answer (a code, alpha-3 code or name; bound; invisible characters), so LDU
    # and the key always agree on who is in the US.
    if place.country == "us":
        return Ldu(country=USA, state=_state_code(user.attribute("$state")))
    return Ldu(country=GEOLOCATE, state=GEOLOCATE)
