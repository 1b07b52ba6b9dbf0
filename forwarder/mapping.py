"""Mapping: each supported mParticle commerce event, and each custom event CUSTOM_EVENT_MAPPING names (or,
with FORWARD_UNMAPPED_CUSTOM_EVENTS, any custom event), becomes one neutral `Conversion`.

The conversion holds everything both Facebook APIs need (name, time, action source, keys, value,
contents, custom data, order id, LDU, opt-out, the event's own ids); `render.py` only renames and reshapes
it. Every event that does not become a conversion is counted under a reason (`Skip`; docs/mapping.md,
"Skipped events").

`map_event` takes one event through the same steps whatever its kind: what it says (event_kinds.py,
one reader per `event_type`), where (action_source.py) and when (event_time.py) it happened, its
contents (contents.py) and custom data (custom_data.py), its value and currency (value.py), and on the
Conversions API its own ids (event_user_data.py) and an AppendValue's original event (original_event.py). A step
answers its result or a `Skip`, the only `str` it answers: `isinstance(result, str)` tells them apart,
on every event several times cheaper than asking the enum class (which goes through its metaclass). What
belongs to the batch's one user (consent, where they are, their match keys, LDU) is worked out once, in
`map_batch`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from forwarder.action_source import INVALID_ACTION_SOURCE, NEEDS_APP_DATA, action_source
from forwarder.batch import MAX_PRODUCTS_PER_BATCH, Batch, BatchTooLarge, mapping, text
from forwarder.contents import Content, TooManyProducts, products
from forwarder.custom_data import Screen, TooManyAttributes, custom_data
from forwarder.event_kinds import EVENT_KINDS
from forwarder.event_time import EVENT_TIME_FROM_BATCH, event_time
from forwarder.event_user_data import event_user_data
from forwarder.facebook_api import Profile
from forwarder.ldu import Ldu, limited_data_use
from forwarder.limits import ATTRIBUTE_OVERHEAD_BYTES, JSON_BYTES_PER_CHAR, MAX_TEXT_LENGTH, TooLong
from forwarder.match_keys import MatchKeys, match_keys, place_of
from forwarder.original_event import APPEND_VALUE, ATTRIBUTES, original_event_data
from forwarder.settings import Settings
from forwarder.skip_reasons import Skip as Skip  # the reasons, also importable from here as before
from forwarder.value import price, value_fields


@dataclass(slots=True)
class Conversion:
    """The neutral event: everything both Facebook APIs need, nothing specific to either."""

    event_name: str
    event_time: int
    action_source: str | None  # None on the Offline Conversions API, which has none
    event_id: str | None
    value: float | None
    currency: str | None
    contents: list[Content]
    custom_data: dict[str, Any]
    order_id: str | None
    size: int  # bytes: an upper bound of the JSON of contents, custom data and the fields below (render.py: the rest)
    adjusted: list[str] = field(default_factory=list)  # what was changed (docs/mapping.md, "Adjusted events")
    # Conversions API only: the event's own ids for user_data (lead_id, ctwa_clid, page_id: event_user_data.py),
    # and an AppendValue's original_event_data (original_event.py).
    user_data: dict[str, str] | None = None
    original_event_data: dict[str, Any] | None = None


@dataclass(slots=True)
class Mapped:
    """A batch's conversions, and what they share: the one user's match keys, LDU flags and CCPA opt-out (Meta's
    `opt_out`). `skipped` and `adjusted` count by the reason's plain string (what responses, logs and metrics
    carry)."""

    received: int
    keys: MatchKeys
    ldu: Ldu | None
    opt_out: bool = False
    conversions: list[Conversion] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)


# An event's contents and custom data, as the conversion carries them: (contents, the products' price x
# quantity (None when none has a price), custom data, what custom data left out (custom_data.py), order id,
# size in bytes as Conversion.size). A plain tuple, built for every event.
_Body = tuple[list[Content], float | None, dict[str, Any], list[str], str | None, int]
# What the Conversions API takes besides: (custom data, the event's own user_data ids, an AppendValue's
# original_event_data, their size in bytes as Conversion.size, what was adjusted).
_Fields = tuple[dict[str, Any], dict[str, str] | None, dict[str, Any] | None, int, list[str]]


def _event_id(event: Mapping[str, Any], data: Mapping[str, Any], batch: Batch, index: int) -> str:
    """Stable across redeliveries of the same batch, so Meta de-duplicates retried events."""
    for key in ("source_message_id", "message_id", "event_id"):
        if identifier := text(data.get(key)):
            return identifier
    # The position keeps two identical events of one batch apart; it is the same on redelivery.
    parts = [batch.source_request_id, batch.batch_id, index, event]
    try:
        canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError:
        # orjson.loads accepts nesting (1024) that orjson.dumps refuses (254); repr is as stable per body.
        canonical = repr(parts).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def _body(action: Mapping[str, Any], data: Mapping[str, Any], settings: Settings, screen: Screen) -> _Body | Skip:
    """The event's contents and custom data, or the reason they cannot be sent (a limit of limits.py)."""
    profile = settings.profile
    try:
        contents, total, contents_bytes = products(action, profile.price_key, profile.content_details)
        attributes, custom_bytes, adjusted = custom_data(data, screen)
    except TooManyProducts:
        return Skip.TOO_MANY_PRODUCTS
    except TooManyAttributes:
        return Skip.TOO_MANY_ATTRIBUTES
    except TooLong:
        return Skip.VALUE_TOO_LONG
    order_id = text(action.get("transaction_id"))
    if order_id is not None and len(order_id) > MAX_TEXT_LENGTH:
        return Skip.VALUE_TOO_LONG
    return contents, total, attributes, adjusted, order_id, contents_bytes + custom_bytes


def _server_event_fields(
    data: Mapping[str, Any], event_name: str, time: int, attributes: dict[str, Any], profile: Profile
) -> _Fields | Skip:
    """The Conversions API's fields of the event: its own ids (event_user_data.py) and, for AppendValue, the
    original event (original_event.py), whose attributes then leave the custom data; their size and the
    adjustments. The Offline Conversions API takes neither."""
    if not profile.server_event_fields:
        return attributes, None, None, 0, []
    user_data, adjusted = event_user_data(data)
    size = sum(len(value) + ATTRIBUTE_OVERHEAD_BYTES for value in user_data.values()) if user_data else 0
    original = None
    if event_name == APPEND_VALUE:
        if isinstance(found := original_event_data(attributes, time), str):
            return found
        original, original_adjusted = found
        adjusted += original_adjusted
        attributes = {key: value for key, value in attributes.items() if str(key).casefold() not in ATTRIBUTES}
        size += sum(JSON_BYTES_PER_CHAR * len(str(value)) + ATTRIBUTE_OVERHEAD_BYTES for value in original.values())
    return attributes, user_data, original, size, adjusted


def map_event(
    event: Any, batch: Batch, settings: Settings, now: float, index: int = 0, screen: Screen | None = None
) -> Conversion | Skip:
    """The conversion for one event, or the reason it is skipped; `screen` is the batch's, for custom data."""
    if not isinstance(event, dict):
        return Skip.MALFORMED_EVENT
    kind = event.get("event_type")
    read = EVENT_KINDS.get(kind) if type(kind) is str else None
    if read is None:
        return Skip.NOT_COMMERCE_EVENT
    data = mapping(event.get("data"))
    if isinstance(reading := read(data, settings), str):
        return reading
    event_name, purchase, action, stated_value, given_currency = reading
    source, invalid_source = None, False  # the Offline Conversions API has no action source
    if settings.profile.action_source:
        source, invalid_source = action_source(data, settings.default_action_source)
        if source == NEEDS_APP_DATA:  # Meta refuses an app event without app_data, which no offline feed has
            return Skip.APP_WITHOUT_APP_DATA
    if isinstance(time := event_time(data, batch, now, source), str):
        return time
    if isinstance(body := _body(action, data, settings, screen or Screen()), str):
        return body
    contents, total, attributes, adjusted, order_id, size = body
    if isinstance(priced := price(stated_value, total, given_currency, settings.default_currency, purchase), str):
        return priced
    if isinstance(fields := _server_event_fields(data, event_name, time, attributes, settings.profile), str):
        return fields
    attributes, user_data, original, fields_size, fields_adjusted = fields
    attributes, values_adjusted = value_fields(attributes, priced[1])
    # Only the Conversions API takes an event_id; hashing an id-less event costs a quarter of mapping.
    event_id = _event_id(event, data, batch, index) if settings.profile.sends_event_id else None
    if event_id is not None and len(event_id) > MAX_TEXT_LENGTH:
        return Skip.VALUE_TOO_LONG
    if data.get("timestamp_unixtime_ms") is None:
        adjusted.append(EVENT_TIME_FROM_BATCH)
    if invalid_source:
        adjusted.append(INVALID_ACTION_SOURCE)
    if fields_adjusted or values_adjusted:
        adjusted += fields_adjusted + values_adjusted
    value, currency = priced
    return Conversion(
        event_name=event_name,
        event_time=time,
        action_source=source,
        event_id=event_id,
        value=value,
        currency=currency,
        contents=contents,
        custom_data=attributes,
        order_id=order_id,
        size=size + fields_size,
        adjusted=adjusted,
        user_data=user_data,
        original_event_data=original,
    )


def map_batch(batch: Batch, settings: Settings, now: float) -> Mapped:
    """Map every event; where the user is, their keys, LDU and opt-out are the user's, so they are worked out
    once per batch and handed to each step that needs them. A batch whose user has not consented to every
    purpose REQUIRED_GDPR_PURPOSES names has every event skipped `no_consent`, before anything is read of them.

    Raises BatchTooLarge as soon as the conversions hold more than MAX_PRODUCTS_PER_BATCH contents, so
    the memory they take stays bounded (nothing has been sent yet).
    """
    if batch.development and settings.skips_development_batches:  # test traffic that must not count as real
        skipped = Counter({Skip.DEVELOPMENT_BATCH.value: len(batch.events)})
        return Mapped(len(batch.events), MatchKeys(), None, skipped=+skipped)
    if not settings.required_gdpr_purposes <= batch.user.gdpr_consented_purposes:
        skipped = Counter({Skip.NO_CONSENT.value: len(batch.events)})
        return Mapped(len(batch.events), MatchKeys(), None, skipped=+skipped)
    today = datetime.fromtimestamp(now, UTC).date()
    place = place_of(batch.user, settings.key_settings.default_country, today)
    # Custom data screens out the national phone numbers the phone key would take: read in the same region.
    screen = Screen(region=place.phone_region.upper() if place.phone_region else None)
    keys = match_keys(batch.user, place, settings.key_settings.sources)
    ldu = limited_data_use(settings.ldu_mode, batch.user, place)
    mapped = Mapped(len(batch.events), keys, ldu, opt_out=batch.user.ccpa_opted_out)
    products_in_batch = 0
    for index, event in enumerate(batch.events):
        result = map_event(event, batch, settings, now, index, screen)
        if isinstance(result, str):
            mapped.skipped[result.value] += 1
            continue
        mapped.conversions.append(result)
        if result.adjusted:
            mapped.adjusted.update(result.adjusted)
        products_in_batch += len(result.contents)
        if products_in_batch > MAX_PRODUCTS_PER_BATCH:
            raise BatchTooLarge(
                f"the batch's events hold more than {MAX_PRODUCTS_PER_BATCH} products; at most "
                f"{MAX_PRODUCTS_PER_BATCH} are accepted"
            )
    return mapped
