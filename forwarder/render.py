"""Rendering a neutral `Conversion` for one Facebook API: renames and reshapes, no mapping logic.

Field names are Meta's: Offline Conversions `match_keys` (marketing-api/offline-conversions) and
Conversions API `user_data`/`custom_data` (conversions-api/parameters). Each API is a `Rendering`
row; the shared `_commerce_fields` builds what both carry. The contents already carry the API's price
key (`item_price` on the Conversions API, built so by mapping.py) and the rendered events share the
conversions' lists and dicts: rendering copies nothing per product or attribute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from forwarder.limits import JSON_BYTES_PER_CHAR, MAX_TEXT_LENGTH
from forwarder.mapping import Conversion, Skip
from forwarder.match_keys import is_sha256_hex, sha256_hex
from forwarder.settings import FacebookApi, Settings

ACTION_SOURCE = "physical_store"  # Meta: offline conversions on the Conversions API
CONTENT_TYPE = "product"
# The custom_data fields this forwarder fills; Meta reads them even when we leave them out.
COMMERCE_FIELDS = frozenset({"value", "currency", "contents", "content_type", "order_id"})

# Every event sent may have to be parked (forwarder/parking.py): alone in an SQS message if need be,
# whose body parking keeps under MAX_MESSAGE_BYTES (240,000) for the events plus an envelope of a few
# KB (a reason of at most about 2 KB escaped, the settings, ids of at most 128 characters, a time), and
# SQS itself refuses more than 256 KiB. An event that renders to more could be sent but never parked,
# so it is skipped (`event_too_large`) instead. Bytes of the event's JSON as orjson writes it.
MAX_EVENT_BYTES = 200_000
# What a rendered event holds besides its keys (measured once per batch) and what mapping.Conversion.size
# bounds: an order id and an event id (at most MAX_TEXT_LENGTH characters each), field names,
# punctuation, an event name (at most 100 ASCII characters, settings), time, value, currency, content
# type, action source and the LDU fields (1,000 bytes at most).
_OTHER_BYTES = 2 * JSON_BYTES_PER_CHAR * MAX_TEXT_LENGTH + 1_000


@dataclass(frozen=True, slots=True)
class Rendering:
    key_names: Mapping[str, str]  # neutral match key -> this API's name (absent: not sent)
    hash_madid: bool
    render: Callable[[Conversion, dict[str, Any], dict[str, Any]], dict[str, Any]]


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


def _ldu_fields(conversion: Conversion) -> dict[str, Any]:
    if conversion.ldu is None:
        return {}
    return {
        "data_processing_options": ["LDU"],
        "data_processing_options_country": conversion.ldu.country,
        "data_processing_options_state": conversion.ldu.state,
    }


def _with_ldu(event: dict[str, Any], conversion: Conversion) -> dict[str, Any]:
    """The event with the LDU fields added in place: no copy of every event for the usual no-LDU case."""
    if conversion.ldu is not None:
        event.update(_ldu_fields(conversion))
    return event


def _offline_event(conversion: Conversion, keys: dict[str, Any], commerce: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": conversion.event_name,
        "event_time": conversion.event_time,
        "match_keys": keys,
        **commerce,
    }
    if conversion.custom_data:
        event["custom_data"] = conversion.custom_data
    return _with_ldu(event, conversion)


def _conversions_api_event(conversion: Conversion, keys: dict[str, Any], commerce: dict[str, Any]) -> dict[str, Any]:
    # Custom attributes never overwrite Meta's own custom_data fields, nor stand in for absent ones:
    # a custom "value" on an event without one would be read by Meta (and may reject the request).
    custom_data = conversion.custom_data
    if not COMMERCE_FIELDS.isdisjoint(custom_data):
        custom_data = {key: value for key, value in custom_data.items() if key not in COMMERCE_FIELDS}
    custom_data = {**custom_data, **commerce} if custom_data else commerce
    event: dict[str, Any] = {
        "event_name": conversion.event_name,
        "event_time": conversion.event_time,
        "action_source": ACTION_SOURCE,
        "event_id": conversion.event_id,
        "user_data": keys,
    }
    if custom_data:
        event["custom_data"] = custom_data
    return _with_ldu(event, conversion)


RENDERINGS = {
    FacebookApi.OFFLINE_CONVERSIONS: Rendering(
        key_names={"email": "email", "fn": "fn", "ln": "ln", "gen": "gen", "ct": "ct", "country": "country"},
        hash_madid=True,  # mParticle's integration and Meta's offline uploader hash it
        render=_offline_event,
    ),
    FacebookApi.CONVERSIONS_API: Rendering(
        key_names={
            "email": "em",
            "fn": "fn",
            "ln": "ln",
            "gen": "ge",
            "ct": "ct",
            "country": "country",
            "external_id": "external_id",
        },
        hash_madid=False,  # Meta: madid is sent as is, lower-cased
        render=_conversions_api_event,
    ),
}


def _keys(conversion: Conversion, rendering: Rendering) -> dict[str, Any]:
    keys: dict[str, Any] = {
        rendering.key_names[name]: digest
        for name, digest in conversion.keys.hashed.items()
        if name in rendering.key_names
    }
    if madid := conversion.keys.madid:
        keys["madid"] = sha256_hex(madid) if rendering.hash_madid and not is_sha256_hex(madid) else madid
    return keys


def render_events(conversions: list[Conversion], settings: Settings) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The events to send, and the skipped ones by reason: those this API cannot match (no key it
    accepts) and those too large ever to be parked (`event_too_large`, over MAX_EVENT_BYTES)."""
    rendering = RENDERINGS[settings.api]
    events: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    # A batch's events share one user's keys: rendered, and their JSON size measured, once.
    rendered_keys: dict[int, tuple[dict[str, Any], int]] = {}
    render = rendering.render
    for conversion in conversions:
        cached = rendered_keys.get(id(conversion.keys))
        if cached is None:
            keys = _keys(conversion, rendering)
            cached = rendered_keys[id(conversion.keys)] = keys, len(orjson.dumps(keys))
        keys, keys_bytes = cached
        if not keys:
            skipped[Skip.NO_MATCH_KEY] += 1
            continue
        event = render(conversion, keys, _commerce_fields(conversion))
        # Exact, but serialised to be measured only when the cheap upper bound says it might be too large.
        bound = conversion.size + keys_bytes + _OTHER_BYTES
        if bound > MAX_EVENT_BYTES and len(orjson.dumps(event)) > MAX_EVENT_BYTES:
            skipped[Skip.EVENT_TOO_LARGE] += 1
            continue
        events.append(event)
    return events, skipped


def request_fields(settings: Settings) -> dict[str, Any]:
    """The request-level fields besides `data` and the token."""
    if settings.api is FacebookApi.OFFLINE_CONVERSIONS:
        return {"upload_tag": settings.upload_tag}
    return {"test_event_code": settings.test_event_code} if settings.test_event_code else {}
