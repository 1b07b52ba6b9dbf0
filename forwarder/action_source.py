"""Action source: where a conversion happened (Meta's `action_source`), and how an event says so.

Meta's values are conversions-api/parameters/server-event's; DEFAULT_ACTION_SOURCE picks one for events
that say nothing (docs/mapping.md, "Action source"). Only the Conversions API carries it, and Meta's time window
depends on it (forwarder/event_time.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from forwarder.instructions import ACTION_SOURCE, instruction


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


INVALID_ACTION_SOURCE = "invalid_action_source"  # adjusted: Facebook.ActionSource not one of Meta's values
_ACTION_SOURCES = frozenset(source.value for source in ActionSource)
# Meta requires `app_data` (advertiser_tracking_enabled, application_tracking_enabled, extinfo: the device's
# details) with every `app` event and refuses the event without it ("The parameter 'advertiser_tracking_enabled'
# is required for the event with the action source 'app'", facebook-nodejs-business-sdk#233, #251). An offline
# feed has no such details, so `app` is never sent: an event that says `app` is skipped (mapping.py), and
# DEFAULT_ACTION_SOURCE refuses it.
NEEDS_APP_DATA = ActionSource.APP.value
SENDABLE_ACTION_SOURCES = tuple(source.value for source in ActionSource if source.value != NEEDS_APP_DATA)


def action_source(data: Mapping[str, Any], default: str) -> tuple[str, bool]:
    """The event's action source and whether a value given was unusable (then `default` is used).

    As mParticle's Facebook integration: the `Facebook.ActionSource` custom flag (a string, or a list of
    strings of which the first counts), else a custom attribute of that name (instructions.py); an absent or
    empty one means the default. `app` is answered as given: the caller skips the event (NEEDS_APP_DATA).
    """
    given = instruction(data, ACTION_SOURCE)
    if given is None:
        return default, False
    if type(given) is not str:
        return default, True
    if not (source := given.strip().lower()):
        return default, False
    return (source, False) if source in _ACTION_SOURCES else (default, True)
