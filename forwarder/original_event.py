"""AppendValue: a value added to an earlier conversion, and Meta's `original_event_data` naming that conversion.

A retailer adds the margin of a store purchase, or takes a returned item's value off it, after the purchase
was sent: a custom event mapped to `AppendValue` (CUSTOM_EVENT_MAPPING) whose custom attributes name the
original conversion. Meta (conversions-api/parameters/original-event; Meta's SDK, serverside
`original_event_data.py`): `original_event_data` holds `event_name` (string: a standard or custom event
name), `event_time` (integer, Unix seconds), `order_id` (string) and `event_id` (string). Read here from the
custom attributes `original_event_name`, `original_event_time`, `original_order_id` and `original_event_id`
(names matched case-insensitively), which then are no custom data of the event. Without the name and one of
the order id or the event id, which find the original, the event is skipped (`append_without_original`).
Conversions API only: the Offline Conversions API takes no custom event name, so an AppendValue event is
skipped there before it gets here (`custom_name_unsupported`).
"""

from __future__ import annotations

from typing import Any

from forwarder.batch import number, text
from forwarder.event_names import CUSTOM_EVENT_NAME, STANDARD_EVENTS
from forwarder.event_time import MIN_EVENT_TIME_MS
from forwarder.limits import MAX_TEXT_LENGTH, TooLong
from forwarder.skip_reasons import Skip

APPEND_VALUE = "AppendValue"
NAME, ORDER_ID, EVENT_ID, TIME = "original_event_name", "original_order_id", "original_event_id", "original_event_time"
ATTRIBUTES = frozenset({NAME, ORDER_ID, EVENT_ID, TIME})
INVALID_ORIGINAL_EVENT_TIME = "invalid_original_event_time"  # adjusted: the time given was left out
# A time below this (2001-09-09 in seconds) is no Unix time anyone writes for a recent sale.
MIN_SECONDS = 1_000_000_000


def original_event_data(attributes: Any, event_time: int) -> tuple[dict[str, Any], list[str]] | Skip:
    """Meta's `original_event_data` from the event's custom attributes as the custom-data screen left them
    (custom_data.py: an id holding an email or phone number is never sent, here neither), and what was
    adjusted; or the reason the event is skipped. `event_time` is the AppendValue event's own (Unix
    seconds): the original is no later.

    An id over MAX_TEXT_LENGTH is `value_too_long`, as any id; a name that is not a Meta event name (a standard
    event or a custom name within Meta's rules, event_names.py) counts as none. A time that is not Unix
    seconds or milliseconds from 2001 to `event_time` is left out (`invalid_original_event_time`).
    """
    if type(attributes) is not dict:
        return Skip.APPEND_WITHOUT_ORIGINAL
    given = {key.casefold(): value for key, value in attributes.items() if type(key) is str}
    try:
        name, order_id, event_id = (_bounded(given.get(attribute)) for attribute in (NAME, ORDER_ID, EVENT_ID))
    except TooLong:
        return Skip.VALUE_TOO_LONG
    if name is None or not (name in STANDARD_EVENTS or CUSTOM_EVENT_NAME.fullmatch(name)):
        return Skip.APPEND_WITHOUT_ORIGINAL
    if order_id is None and event_id is None:
        return Skip.APPEND_WITHOUT_ORIGINAL
    original: dict[str, Any] = {"event_name": name}
    adjusted: list[str] = []
    if TIME in given and given[TIME] is not None:
        if (time := _seconds(given[TIME], event_time)) is None:
            adjusted.append(INVALID_ORIGINAL_EVENT_TIME)
        else:
            original["event_time"] = time
    if order_id is not None:
        original["order_id"] = order_id
    if event_id is not None:
        original["event_id"] = event_id
    return original, adjusted


def _bounded(value: Any) -> str | None:
    found = text(value)
    if found is not None and len(found) > MAX_TEXT_LENGTH:
        raise TooLong
    return found


def _seconds(value: Any, latest: int) -> int | None:
    """Unix seconds from seconds or milliseconds (a number or numeric string; milliseconds from 1973, as
    mParticle writes times), from MIN_SECONDS to `latest`; else None."""
    given = number(value)
    if given is None:
        return None
    seconds = int(given) // 1000 if given >= MIN_EVENT_TIME_MS else int(given)
    return seconds if MIN_SECONDS <= seconds <= latest else None
