"""Rendering a neutral `Conversion` for one Facebook API: renames and reshapes, no mapping logic.

Field names are Meta's: Offline Conversions `match_keys` (marketing-api/offline-conversions) and
Conversions API `user_data`/`custom_data` (conversions-api/parameters); only the Conversions API has an
`action_source`, `content_ids`, `content_name`, `content_category`, `num_items` and `delivery_category`.
Each API has a shape here and a `Profile` (forwarder/facebook_api.py) naming the field its keys go in
(`keys_field`: `match_keys` or `user_data`); the keys' own names and hashing are rows of match_keys.KEYS.
`_commerce_fields` builds what both carry, and the user's keys, LDU fields and `opt_out` are rendered once per
batch; on the Conversions API an event's own ids (lead_id, ctwa_clid, page_id) join the user's keys in a
`user_data` of its own, and an AppendValue carries its `original_event_data`.
The contents already carry the API's price key (`item_price` on the Conversions API, built so by
contents.py) and the rendered events share the conversions' lists and dicts: rendering copies nothing per
product or attribute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from forwarder.action_source import ActionSource
from forwarder.event_user_data import MATCHING_IDS
from forwarder.facebook_api import FacebookApi, Profile
from forwarder.ldu import Ldu
from forwarder.limits import JSON_BYTES_PER_CHAR, MAX_TEXT_LENGTH
from forwarder.mapping import Conversion, Mapped
from forwarder.match_keys import KEYS, MatchKeys, is_sha256_hex, sha256_hex
from forwarder.settings import Settings
from forwarder.skip_reasons import Skip

CONTENT_TYPE = "product"
# The custom_data fields this forwarder fills; Meta reads them even when we leave them out.
COMMERCE_FIELDS = frozenset(
    {
        "value", "currency", "contents", "content_type", "order_id",
        "content_ids", "content_name", "content_category", "num_items", "delivery_category",
    }
)  # fmt: skip
# Meta's standard events that take num_items (meta-pixel reference, standard events).
NUM_ITEMS_EVENTS = frozenset({"InitiateCheckout", "Purchase"})
IN_STORE = "in_store"  # delivery_category of a purchase made in the store (physical_store)
_PHYSICAL_STORE = ActionSource.PHYSICAL_STORE.value

# Every event sent may have to be parked (forwarder/parking.py): alone in an SQS message if need be,
# whose body parking keeps under MAX_MESSAGE_BYTES (240,000) for the events plus an envelope of a few
# KB (a reason of at most about 2 KB escaped, the settings, ids of at most 128 characters, a time), and
# SQS itself refuses more than 256 KiB. An event that renders to more could be sent but never parked,
# so it is skipped (`event_too_large`) instead. Bytes of the event's JSON as orjson writes it.
MAX_EVENT_BYTES = 200_000
# What a rendered event holds besides its keys (measured once per batch) and what mapping.Conversion.size
# bounds: an order id, an event id, a content name and category (at most MAX_TEXT_LENGTH characters
# each), field names, punctuation, an event name (at most 100 ASCII characters, settings), time, value,
# currency, content type, number of items, delivery category, action source, the LDU fields and opt_out
# (1,000 bytes at most). An event's own ids and original_event_data are in mapping.Conversion.size.
_OTHER_BYTES = 4 * JSON_BYTES_PER_CHAR * MAX_TEXT_LENGTH + 1_000


def _commerce_fields(conversion: Conversion) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if conversion.value is not None:
        fields["value"] = conversion.value
        fields["currency"] = conversion.currency
    if conversion.contents:
        fields["contents"] = conversion.contents
        fields["content_type"] = CONTENT_TYPE
    if conversion.order_id:
        fields["order_id"] = conversion.order_id
    return fields


def _ldu_fields(ldu: Ldu | None) -> dict[str, Any]:
    if ldu is None:
        return {}
    return {
        "data_processing_options": ["LDU"],
        "data_processing_options_country": ldu.country,
        "data_processing_options_state": ldu.state,
    }


def _offline_event(
    conversion: Conversion, keys_field: str, keys: dict[str, Any], commerce: dict[str, Any]
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": conversion.event_name,
        "event_time": conversion.event_time,
        keys_field: keys,
        **commerce,
    }
    if conversion.custom_data:
        event["custom_data"] = conversion.custom_data
    return event


def _content_details(conversion: Conversion, commerce: dict[str, Any]) -> None:
    """What the Conversions API adds for optimisation and reports: the content ids, the number of items of a
    checkout or purchase, the one product's name and category, and the delivery of a purchase in the store."""
    name = conversion.event_name
    if contents := conversion.contents:
        if len(contents) == 1:
            only = contents[0]
            commerce["content_ids"] = [only["id"]]
            if "title" in only:
                commerce["content_name"] = only["title"]
            if "category" in only:
                commerce["content_category"] = only["category"]
            if name in NUM_ITEMS_EVENTS:
                commerce["num_items"] = only["quantity"]
        else:
            commerce["content_ids"] = [content["id"] for content in contents]
            if name in NUM_ITEMS_EVENTS:
                commerce["num_items"] = sum(content["quantity"] for content in contents)
    if name == "Purchase" and conversion.action_source == _PHYSICAL_STORE:
        commerce["delivery_category"] = IN_STORE


def _conversions_api_event(
    conversion: Conversion, keys_field: str, keys: dict[str, Any], commerce: dict[str, Any]
) -> dict[str, Any]:
    _content_details(conversion, commerce)
    if conversion.user_data:  # the event's own ids beside the user's keys, in a dict of its own: `keys` is shared
        keys = {**keys, **conversion.user_data}
    # Custom attributes never overwrite Meta's own custom_data fields, nor stand in for absent ones:
    # a custom "value" on an event without one would be read by Meta (and may reject the request).
    custom_data = conversion.custom_data
    if not COMMERCE_FIELDS.isdisjoint(custom_data):
        custom_data = {key: value for key, value in custom_data.items() if key not in COMMERCE_FIELDS}
    custom_data = {**custom_data, **commerce} if custom_data else commerce
    event: dict[str, Any] = {
        "event_name": conversion.event_name,
        "event_time": conversion.event_time,
        "action_source": conversion.action_source,
        "event_id": conversion.event_id,
        keys_field: keys,
    }
    if custom_data:
        event["custom_data"] = custom_data
    if conversion.original_event_data:
        event["original_event_data"] = conversion.original_event_data
    return event


# How each API shapes an event: its keys (rendered once per batch) go in the field its Profile names
# (`keys_field`); the names and hashing of the keys themselves are match_keys.KEYS's.
_SHAPES: Mapping[FacebookApi, Callable[[Conversion, str, dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    FacebookApi.OFFLINE_CONVERSIONS: _offline_event,
    FacebookApi.CONVERSIONS_API: _conversions_api_event,
}


def render_keys(keys: MatchKeys, profile: Profile) -> dict[str, Any]:
    """The user's match keys under this API's names, hashed as it wants them (match_keys.KEYS): one value as
    a string, several as an array where the API takes one, else the first in priority order."""
    rendered: dict[str, Any] = {}
    for key in KEYS:
        sent = key.sent.get(profile.api)
        values = keys.values.get(key.name)
        if sent is None or not values:
            continue
        if sent.hashed and key.clear:  # kept in clear for an API that wants it so
            values = tuple(dict.fromkeys(value if is_sha256_hex(value) else sha256_hex(value) for value in values))
        rendered[sent.name] = list(values) if sent.many and len(values) > 1 else values[0]
    return rendered


def keys_sent(keys: MatchKeys, profile: Profile) -> tuple[str, ...]:
    """The neutral names of the user's keys this API receives (the summary's `match_keys`)."""
    return tuple(key.name for key in KEYS if profile.api in key.sent and keys.values.get(key.name))


def _batch_fields(mapped: Mapped, profile: Profile) -> dict[str, Any]:
    """What every event of the batch carries besides its keys: the LDU fields, and on the Conversions API
    `opt_out: true` for a user who opted out of sale (Meta's server-event `opt_out`, a boolean: "we only use
    the event for attribution"; mParticle's Facebook integration sends its CCPA opt-out so). Omitted otherwise."""
    fields = _ldu_fields(mapped.ldu)
    if mapped.opt_out and profile.server_event_fields:
        fields["opt_out"] = True
    return fields


def _matches_alone(conversion: Conversion) -> bool:
    """The event carries an id Meta matches on by itself (a lead or click id), when the user has no key."""
    return conversion.user_data is not None and not MATCHING_IDS.isdisjoint(conversion.user_data)


def render_events(mapped: Mapped, settings: Settings) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The events to send, and the skipped ones by reason: those Meta cannot match (`no_match_key`: the user
    has no key this API accepts, and the event no lead_id or ctwa_clid of its own), and those too large ever
    to be parked (`event_too_large`, over MAX_EVENT_BYTES)."""
    skipped: Counter[str] = Counter()
    keys = render_keys(mapped.keys, settings.profile)  # the batch's one user: rendered and measured once
    if not keys and not any(conversion.user_data for conversion in mapped.conversions):
        skipped[Skip.NO_MATCH_KEY.value] = len(mapped.conversions)
        return [], +skipped
    keys_field = settings.profile.keys_field
    keys_bytes = len(orjson.dumps(keys))
    shared = _batch_fields(mapped, settings.profile)
    shape = _SHAPES[settings.api]
    events: list[dict[str, Any]] = []
    for conversion in mapped.conversions:
        if not keys and not _matches_alone(conversion):
            skipped[Skip.NO_MATCH_KEY.value] += 1
            continue
        event = shape(conversion, keys_field, keys, _commerce_fields(conversion))
        if shared:
            event.update(shared)
        # Exact, but serialised to be measured only when the cheap upper bound says it might be too large.
        bound = conversion.size + keys_bytes + _OTHER_BYTES
        if bound > MAX_EVENT_BYTES and len(orjson.dumps(event)) > MAX_EVENT_BYTES:
            skipped[Skip.EVENT_TOO_LARGE.value] += 1
            continue
        events.append(event)
    return events, skipped
