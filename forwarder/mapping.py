"""Mapping: each supported mParticle commerce event, and each custom event CUSTOM_EVENT_MAPPING names (or,
with FORWARD_UNMAPPED_CUSTOM_EVENTS, any custom event), becomes one neutral `Conversion`.

The conversion holds everything both Facebook APIs need (name, time, action source, keys, value,
contents, custom data, order id, LDU); `render.py` only renames and reshapes it. Every event that does
not become a conversion is counted under a reason (README, "Skipped events").
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Literal, Required, TypedDict

import orjson

from forwarder.batch import MAX_PRODUCTS_PER_BATCH, Batch, BatchTooLarge, mapping, number, text
from forwarder.currencies import currency_code
from forwarder.custom_data import ACTION_SOURCE_KEY, Screen, TooLong, TooManyAttributes, custom_data
from forwarder.ldu import Ldu, limited_data_use
from forwarder.limits import (
    CONTENT_OVERHEAD_BYTES,
    JSON_BYTES_PER_CHAR,
    MAX_PRODUCTS_PER_EVENT,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
)
from forwarder.match_keys import MatchKeys, country_code, match_keys
from forwarder.settings import CUSTOM_EVENT_NAME, ActionSource, Settings

DAY = 24 * 3600
# Meta's time windows: on the Conversions API "the event_time can be up to 7 days before you send an event"
# (conversions-api/parameters/server-event), except physical_store events, uploaded "within 62 days of
# the conversion" (conversions-api/offline-events); the Offline Conversions API took offline events up to
# 62 days old. An older event is refused (on the Conversions API with its whole request).
OFFLINE_MAX_AGE_SECONDS = 62 * DAY
MAX_AGE_SECONDS: Mapping[str, int] = {
    source.value: (62 if source is ActionSource.PHYSICAL_STORE else 7) * DAY for source in ActionSource
}
MAX_FUTURE_SECONDS = 3600
# A time present in an event is milliseconds: below this (1973-03-03 in milliseconds, the year 5138 in
# seconds) it is seconds, or not a time at all.
MIN_EVENT_TIME_MS = 100_000_000_000
_MAX_PLAIN_TIME_MS = 2**53  # an integer time up to here is exact as a float too: the lenient reader agrees
EVENT_TIME_FROM_BATCH = "event_time_from_batch"
INVALID_ACTION_SOURCE = "invalid_action_source"  # adjusted: Facebook.ActionSource not one of Meta's values
# Meta's standard events (conversions-api/parameters/server-event, meta-pixel reference); any other name is
# a custom event, which the Offline Conversions API does not take.
STANDARD_EVENTS = frozenset(
    {
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact", "CustomizeProduct",
        "Donate", "FindLocation", "InitiateCheckout", "Lead", "Other", "Purchase", "Schedule", "Search",
        "StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
    }
)  # fmt: skip


class Skip:
    """Reasons an event is not forwarded; the values appear in responses, logs and metrics."""

    MALFORMED_EVENT = "malformed_event"
    NOT_COMMERCE_EVENT = "not_commerce_event"
    UNSUPPORTED_ACTION = "unsupported_action"
    UNMAPPED_CUSTOM_EVENT = "unmapped_custom_event"
    INVALID_CUSTOM_EVENT_NAME = "invalid_custom_event_name"
    CUSTOM_NAME_UNSUPPORTED = "custom_name_unsupported"
    DEVELOPMENT_BATCH = "development_batch"
    NO_EVENT_TIME = "no_event_time"
    INVALID_EVENT_TIME = "invalid_event_time"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    PURCHASE_WITHOUT_VALUE = "purchase_without_value"
    INVALID_CURRENCY = "invalid_currency"
    NO_MATCH_KEY = "no_match_key"
    TOO_MANY_PRODUCTS = "too_many_products"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"
    VALUE_TOO_LONG = "value_too_long"
    EVENT_TOO_LARGE = "event_too_large"  # decided by render.py, on the rendered event


class _TooMany(ValueError):
    """More than MAX_PRODUCTS_PER_EVENT products."""


class _TooLong(ValueError):
    """A forwarded text is over MAX_TEXT_LENGTH (raised from deep in the product loop)."""


def _bounded(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_TEXT_LENGTH:
        raise _TooLong
    return value


# The product texts a content carries besides its id, as (mParticle product field, Meta content field):
# contents[].brand and .category on both APIs, and the product's name as .title on the Conversions API.
_CONTENT_TEXTS = (("brand", "brand"), ("category", "category"))
_DETAILED_CONTENT_TEXTS = (*_CONTENT_TEXTS, ("name", "title"))


class Content(TypedDict, total=False):
    """One product as the chosen API describes it: the unit price is `price` on the Offline
    Conversions API and `item_price` on the Conversions API, never both."""

    id: Required[str]
    quantity: Required[int]
    price: float
    item_price: float
    brand: str
    category: str
    title: str


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
    size: int  # bytes: an upper bound of the JSON of contents and custom data (render.py adds the rest)
    adjusted: list[str] = field(default_factory=list)  # what was changed on the way (README, "Adjusted events")


@dataclass(slots=True)
class Mapped:
    """A batch's conversions, and what they share: the one user's match keys and LDU flags."""

    received: int
    keys: MatchKeys
    ldu: Ldu | None
    conversions: list[Conversion] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)


def _event_time(data: Mapping[str, Any], batch: Batch) -> int | str:
    """Unix seconds, or the reason the event has no usable time.

    Only an absent time falls back to the batch's (when mParticle received it: the caller counts it);
    a time that is there but unusable (zero, negative, not a number, seconds) is never replaced, or a
    delayed upload would show as a conversion happening now.
    """
    given = data.get("timestamp_unixtime_ms")
    if type(given) is int and MIN_EVENT_TIME_MS <= given <= _MAX_PLAIN_TIME_MS:  # the usual case, read directly
        return given // 1000
    if given is None:
        return batch.timestamp_ms // 1000 if batch.timestamp_ms else Skip.NO_EVENT_TIME
    millis = number(given)
    if millis is None or millis < MIN_EVENT_TIME_MS:
        return Skip.INVALID_EVENT_TIME
    return int(millis) // 1000


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


def _products(
    action: Mapping[str, Any], price_key: Literal["price", "item_price"], detailed: bool
) -> tuple[list[Content], float | None, int]:
    """The contents, the sum of price x quantity (None when no product has a price), and an upper bound
    in bytes of the contents' JSON (and, `detailed`, of the content_ids repeating their ids), in one pass.

    The hottest loop of the function (every product of every event): exact-type fast paths come
    first and fall back to the lenient `number`/`text` readers for anything unusual, and the length
    checks are inlined rather than calls. Raises _TooMany or _TooLong.
    """
    products = action.get("products")
    if type(products) is not list:
        return [], None, 0
    if len(products) > MAX_PRODUCTS_PER_EVENT:
        raise _TooMany
    contents: list[Content] = []
    total: float | None = None
    chars = id_chars = 0
    texts = _DETAILED_CONTENT_TEXTS if detailed else _CONTENT_TEXTS
    for product in products:
        if type(product) is not dict:
            continue
        price = product.get("price")
        if type(price) is not float or not isfinite(price):
            price = number(price)
        quantity = product.get("quantity", 1.0)
        if type(quantity) is not int or not -1_000_000 < quantity < 1_000_000:  # huge ints overflow floats
            quantity = number(quantity)
            if quantity is None:
                quantity = 1.0
        if not 0 < quantity <= MAX_QUANTITY:
            continue  # neither in the value nor in the contents: the two must agree
        if price is not None:
            total = price * quantity if total is None else total + price * quantity
        product_id = product.get("id")
        product_id = product_id.strip() if type(product_id) is str else text(product_id)
        if not product_id:
            continue
        length = len(product_id)
        if length > MAX_TEXT_LENGTH:
            raise _TooLong
        id_chars += length
        # Meta wants whole quantities; mParticle allows decimals (0.5 kg), so round, at least 1.
        whole = quantity if type(quantity) is int else max(1, round(quantity))
        content: Content = {"id": product_id, "quantity": whole}
        if price is not None:
            content[price_key] = price  # "price" or "item_price"
        for name, field_name in texts:
            if (value := product.get(name)) is None:
                continue
            if value := value.strip() if type(value) is str else text(value):
                length = len(value)
                if length > MAX_TEXT_LENGTH:
                    raise _TooLong
                chars += length
                content[field_name] = value  # type: ignore[literal-required]
        contents.append(content)
    chars += 2 * id_chars if detailed else id_chars
    return contents, total, JSON_BYTES_PER_CHAR * chars + CONTENT_OVERHEAD_BYTES * len(contents)


def _value(total: float | None) -> float | None:
    """Only a finite positive value is sent: Meta refuses <= 0, and a sum of huge prices can overflow."""
    if total is None or not isfinite(total):
        return None
    total = round(total, 6)  # rounded before the check: a tiny amount must not become a value of 0
    return total if total > 0 else None


_ACTION_SOURCES = frozenset(source.value for source in ActionSource)


def _action_source(data: Mapping[str, Any], default: str) -> tuple[str, bool]:
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


def _custom_event_name(data: Mapping[str, Any], settings: Settings) -> tuple[str | None, str | None]:
    """A custom event's Facebook event name, or None and the reason it is skipped."""
    name = text(data.get("event_name"))
    if name is None:
        return None, Skip.UNMAPPED_CUSTOM_EVENT
    if (mapped := settings.custom_event_names.get(name.casefold())) is not None:
        return mapped, None
    if not settings.forward_unmapped_custom_events:
        return None, Skip.UNMAPPED_CUSTOM_EVENT
    if not CUSTOM_EVENT_NAME.fullmatch(name):  # Meta's rules for custom event names (settings.py)
        return None, Skip.INVALID_CUSTOM_EVENT_NAME
    return name, None


def _custom_value(data: Mapping[str, Any], settings: Settings) -> tuple[float | None, Any]:
    """A custom event's value (the first of the value attributes that is a positive amount) and the
    currency attribute as given, names matched case-insensitively."""
    attributes = data.get("custom_attributes")
    if type(attributes) is not dict or not attributes:
        return None, None
    by_name = {key.casefold(): item for key, item in attributes.items() if type(key) is str}
    currency = by_name.get(settings.custom_event_currency_attribute)
    for name in settings.custom_event_value_attributes:
        if (value := _value(number(by_name.get(name)))) is not None:
            return value, currency
    return None, currency


def map_event(
    event: Any, batch: Batch, settings: Settings, now: float, index: int = 0, screen: Screen | None = None
) -> Conversion | str:
    """The conversion for one event, or the reason it is skipped; `screen` is the batch's, for custom data."""
    if not isinstance(event, dict):
        return Skip.MALFORMED_EVENT
    event_type = event.get("event_type")
    profile = settings.profile
    action: Mapping[str, Any]
    if event_type == "commerce_event":
        data = mapping(event.get("data"))
        action = mapping(data.get("product_action"))
        action_name = text(action.get("action")) or ""
        event_name = settings.event_names.get(action_name)
        if event_name is None:
            return Skip.UNSUPPORTED_ACTION
        purchase = action_name == "purchase"
    elif event_type == "custom_event":
        data = mapping(event.get("data"))
        action = {}
        custom_name, reason = _custom_event_name(data, settings)
        if custom_name is None:
            return reason or Skip.UNMAPPED_CUSTOM_EVENT
        if not profile.custom_event_names and custom_name not in STANDARD_EVENTS:
            return Skip.CUSTOM_NAME_UNSUPPORTED
        event_name = custom_name
        purchase = event_name == "Purchase"
    else:
        return Skip.NOT_COMMERCE_EVENT
    event_time = _event_time(data, batch)
    if isinstance(event_time, str):
        return event_time
    action_source: str | None = None
    invalid_source = False
    max_age = OFFLINE_MAX_AGE_SECONDS
    if profile.action_source:
        action_source = settings.default_action_source
        # Most events say nothing of their source: the default then, without reading further.
        if "custom_flags" in data or (type(raw := data.get("custom_attributes")) is dict and ACTION_SOURCE_KEY in raw):
            action_source, invalid_source = _action_source(data, action_source)
        max_age = MAX_AGE_SECONDS[action_source]
    if event_time < now - max_age:
        return Skip.TOO_OLD
    if event_time > now + MAX_FUTURE_SECONDS:
        return Skip.IN_FUTURE
    try:
        contents, total, contents_bytes = _products(action, profile.price_key, profile.content_details)
        attributes, custom_bytes, adjusted = custom_data(data, screen or Screen())
        if data.get("timestamp_unixtime_ms") is None:
            adjusted.append(EVENT_TIME_FROM_BATCH)
        if invalid_source:
            adjusted.append(INVALID_ACTION_SOURCE)
        order_id = _bounded(text(action.get("transaction_id")))
    except _TooMany:
        return Skip.TOO_MANY_PRODUCTS
    except TooManyAttributes:
        return Skip.TOO_MANY_ATTRIBUTES
    except (_TooLong, TooLong):
        return Skip.VALUE_TOO_LONG
    if event_type == "commerce_event":
        amount = number(action.get("total_amount"))
        value = _value(total if amount is None else amount)
        given = data.get("currency_code")
    else:
        value, given = _custom_value(data, settings)
    absent = given is None or (type(given) is str and not given.strip())
    currency = settings.default_currency if absent else currency_code(given)
    if value is not None and currency is None:
        if purchase:
            return Skip.INVALID_CURRENCY
        value = None
    if value is None and purchase:
        return Skip.PURCHASE_WITHOUT_VALUE
    # Only the Conversions API takes an event_id; hashing an id-less event costs a quarter of mapping.
    event_id = _event_id(event, data, batch, index) if profile.sends_event_id else None
    if event_id is not None and len(event_id) > MAX_TEXT_LENGTH:
        return Skip.VALUE_TOO_LONG
    return Conversion(
        event_name=event_name,
        event_time=event_time,
        action_source=action_source,
        event_id=event_id,
        value=value,
        currency=currency if value is not None else None,
        contents=contents,
        custom_data=attributes,
        order_id=order_id,
        size=contents_bytes + custom_bytes,
        adjusted=adjusted,
    )


def map_batch(batch: Batch, settings: Settings, now: float) -> Mapped:
    """Map every event; keys and LDU are the user's, so they are computed once per batch.

    Raises BatchTooLarge as soon as the conversions hold more than MAX_PRODUCTS_PER_BATCH contents, so
    the memory they take stays bounded (nothing has been sent yet).
    """
    if batch.development and settings.skips_development_batches:  # test traffic that must not count as real
        skipped = Counter({Skip.DEVELOPMENT_BATCH: len(batch.events)})
        return Mapped(len(batch.events), MatchKeys(), None, skipped=+skipped)
    # The user's country, else DEFAULT_COUNTRY: the region the phone match key reads national numbers in,
    # so custom data screens out the same numbers the match key would take.
    code = country_code(batch.user.attribute("$country")) or settings.key_settings.default_country
    screen = Screen(region=code.upper() if code else None)
    keys = match_keys(batch.user, settings.key_settings)
    mapped = Mapped(len(batch.events), keys, limited_data_use(settings.ldu_mode, batch.user))
    products = 0
    for index, event in enumerate(batch.events):
        result = map_event(event, batch, settings, now, index, screen)
        if isinstance(result, str):
            mapped.skipped[result] += 1
            continue
        mapped.conversions.append(result)
        if result.adjusted:
            mapped.adjusted.update(result.adjusted)
        products += len(result.contents)
        if products > MAX_PRODUCTS_PER_BATCH:
            raise BatchTooLarge(
                f"the batch's events hold more than {MAX_PRODUCTS_PER_BATCH} products; at most "
                f"{MAX_PRODUCTS_PER_BATCH} are accepted"
            )
    return mapped
