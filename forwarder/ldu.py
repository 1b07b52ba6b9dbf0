"""CCPA Limited Data Use: when to flag an event, and the country/state codes Meta expects.

Meta (marketing-apis/data-processing-options): `data_processing_options: ["LDU"]` with country 1 for
the USA or 0 to let Meta geolocate, and a state code (0 = geolocate). A state code only means
something with country 1, so any other country sends 0/0.
"""

from __future__ import annotations

from dataclasses import dataclass

from forwarder.batch import User
from forwarder.match_keys import MAX_KEY_LENGTH, normalize_country
from forwarder.settings import LduMode

USA = 1
GEOLOCATE = 0

# Meta's state codes for LDU (as used by Segment's Conversions API destination; README lists them).
_STATE_CODES = {
    "ca": 1000, "california": 1000,
    "co": 1001, "colorado": 1001,
    "ct": 1002, "connecticut": 1002,
    "fl": 1003, "florida": 1003,
    "or": 1004, "oregon": 1004,
    "tx": 1005, "texas": 1005,
    "mt": 1006, "montana": 1006,
    "de": 1007, "delaware": 1007,
    "ne": 1008, "nebraska": 1008,
    "nh": 1009, "newhampshire": 1009,
    "nj": 1010, "newjersey": 1010,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Ldu:
    country: int
    state: int


def _state_code(state: str | None) -> int:
    if not state or len(state) > MAX_KEY_LENGTH:  # no state's name is that long: not worth a pass over it
        return GEOLOCATE
    key = "".join(char for char in state.lower() if char.isalpha())
    return _STATE_CODES.get(key, GEOLOCATE)


def limited_data_use(mode: LduMode, user: User) -> Ldu | None:
    """The LDU fields for this batch's events, or None when the setting says not to send them."""
    if mode is LduMode.NEVER or (mode is LduMode.OPTED_OUT and not user.ccpa_opted_out):
        return None
    country_value = user.attribute("$country")
    # The country match key's bound, so LDU and the key agree on who is in the US.
    if country_value and len(country_value) <= MAX_KEY_LENGTH and normalize_country(country_value) == "us":
        return Ldu(country=USA, state=_state_code(user.attribute("$state")))
    return Ldu(country=GEOLOCATE, state=GEOLOCATE)
