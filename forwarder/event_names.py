"""Event names: Meta's standard events, the ones mParticle's product actions go as, and Meta's rule for the
name of a custom event (README, "Event names" and "Custom events").

EVENT_NAME_OVERRIDES and CUSTOM_EVENT_MAPPING change them (forwarder/variables.py reads both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Meta's standard events (conversions-api/parameters/server-event, meta-pixel reference); any other name is
# a custom event, which the Offline Conversions API does not take.
STANDARD_EVENTS = frozenset(
    {
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact", "CustomizeProduct",
        "Donate", "FindLocation", "InitiateCheckout", "Lead", "Other", "Purchase", "Schedule", "Search",
        "StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
    }
)  # fmt: skip

# The product actions of mParticle's Facebook Offline Conversions integration and Meta's standard event
# names for them (README, "Event names").
DEFAULT_EVENT_NAMES: Mapping[str, str] = {
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "checkout": "InitiateCheckout",
    "purchase": "Purchase",
    "view_detail": "ViewContent",
}

# What EVENT_NAME_OVERRIDES may name a product action's event.
EVENT_NAME = re.compile(r"[A-Za-z0-9_ -]{1,100}")
# A Facebook event name a custom event is sent under: Meta's custom event names are at most 50 characters
# (meta-pixel reference, "Custom events"); the characters are those of Meta's app event names (letters,
# digits, spaces, '_' and '-'), which every standard name is made of too.
CUSTOM_EVENT_NAME = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9_ -]{0,48}[A-Za-z0-9_-])?")
