"""Action source: where a conversion happened (Meta's `action_source`), and how an event says so.

Meta's values are conversions-api/parameters/server-event's; DEFAULT_ACTION_SOURCE picks one for events
that say nothing (README, "Action source"). Only the Conversions API carries it, and Meta's time window
depends on it (forwarder/event_time.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class ActionSource(StrEnum):
    """Where a conversion happened: Meta's `action_source` values (conversions-api/parameters/server-event)."""

    PHYSICAL_STORE = "physical_store"
    PHONE_CALL = "phone_call"
    CHAT = "chat"
    EMAIL = "email"
    SYSTEM_GENERATED = "system_generated"
    WEBSITE = "website"
    APP = "app"
    BUSINESS_MESSAGING = "business_messaging"
    OTHER = "other"


# mParticle's Facebook integration reads an event's action source from this custom flag (README, "Action
# source"); as a custom attribute it is read the same way and is an instruction, never custom data.
ACTION_SOURCE_KEY = "Facebook.ActionSource"
INVALID_ACTION_SOURCE = "invalid_action_source"  # adjusted: Facebook.ActionSource not one of Meta's values
_ACTION_SOURCES = frozenset(source.value for source in ActionSource)


def action_source(data: Mapping[str, Any], default: str) -> tuple[str, bool]:
    """The event's action source and whether a value given was unusable (then `default` is used).

    As mParticle's Facebook integration: the `Facebook.ActionSource` custom flag (a string, or a list of
    strings of which the first counts), else a custom attribute of that name; an absent or empty one
    means the default.
    """
    given = None
    flags = data.get("custom_flags")
    if type(flags) is dict:
        given = flags.get(ACTION_SOURCE_KEY)
    if given is None and type(attributes := data.get("custom_attributes")) is dict:
        given = attributes.get(ACTION_SOURCE_KEY)
    if type(given) is list:
        given = given[0] if given else None
    if given is None:
        return default, False
    if type(given) is not str:
        return default, True
    if not (source := given.strip().lower()):
        return default, False
    return (source, False) if source in _ACTION_SOURCES else (default, True)
