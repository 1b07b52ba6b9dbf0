"""Event kinds: what each mParticle `event_type` that can become a Facebook event says, one reader per kind.

A reader takes the event's `data` and the settings and answers what mapping.py needs to build the
conversion (a `Reading`), or the reason the event is skipped (a `Skip`, the only `str` it answers).
`EVENT_KINDS` is the table mapping.py dispatches on: adding a kind is a reader and a row; every other
`event_type` is `not_commerce_event`. Sources: mParticle's JSON reference (`commerce_event` with its
`product_action`, `custom_event` with its `event_name`), Meta's event names (forwarder/event_names.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from forwarder.batch import mapping, number, text
from forwarder.event_names import CUSTOM_EVENT_NAME, STANDARD_EVENTS
from forwarder.settings import Settings
from forwarder.skip_reasons import Skip
from forwarder.value import attribute_value

_NO_ACTION: Mapping[str, Any] = MappingProxyType({})


# What one event says, whatever its kind: (the Facebook event name, whether it is a purchase (which must have
# a value and a currency), mParticle's product_action (products, transaction_id; empty for a custom event),
# the value the event states (None: the sum of its products), the currency as given (value.price reads it)).
# A plain tuple: one is built for every event, and a NamedTuple costs several times more to build.
Reading = tuple[str, bool, Mapping[str, Any], float | None, Any]


def commerce_event(data: Mapping[str, Any], settings: Settings) -> Reading | Skip:
    """A product action EVENT_NAME_OVERRIDES (or the defaults) names; its total_amount and currency_code."""
    action = mapping(data.get("product_action"))
    action_name = text(action.get("action")) or ""
    event_name = settings.event_names.get(action_name)
    if event_name is None:
        return Skip.UNSUPPORTED_ACTION
    stated = number(action.get("total_amount"))
    return event_name, action_name == "purchase", action, stated, data.get("currency_code")


def custom_event(data: Mapping[str, Any], settings: Settings) -> Reading | Skip:
    """A custom event CUSTOM_EVENT_MAPPING names (or, with FORWARD_UNMAPPED_CUSTOM_EVENTS, any); its value and
    currency from the custom attributes CUSTOM_EVENT_VALUE_ATTRIBUTES and CUSTOM_EVENT_CURRENCY_ATTRIBUTE name."""
    event_name = _custom_event_name(data, settings)
    if type(event_name) is Skip:  # a mapped name is a plain str
        return event_name
    if not settings.profile.custom_event_names and event_name not in STANDARD_EVENTS:
        return Skip.CUSTOM_NAME_UNSUPPORTED
    value, currency = attribute_value(
        data, settings.custom_event_value_attributes, settings.custom_event_currency_attribute
    )
    return event_name, event_name == "Purchase", _NO_ACTION, value, currency


def _custom_event_name(data: Mapping[str, Any], settings: Settings) -> str | Skip:
    """A custom event's Facebook event name, or the reason it is skipped."""
    name = text(data.get("event_name"))
    if name is None:
        return Skip.UNMAPPED_CUSTOM_EVENT
    if (mapped := settings.custom_event_names.get(name.casefold())) is not None:
        return mapped
    if not settings.forward_unmapped_custom_events:
        return Skip.UNMAPPED_CUSTOM_EVENT
    if not CUSTOM_EVENT_NAME.fullmatch(name):  # Meta's rules for custom event names (event_names.py)
        return Skip.INVALID_CUSTOM_EVENT_NAME
    return name


Reader = Callable[[Mapping[str, Any], Settings], Reading | Skip]

# mParticle's `event_type` -> its reader.
EVENT_KINDS: Mapping[str, Reader] = {
    "commerce_event": commerce_event,
    "custom_event": custom_event,
}
