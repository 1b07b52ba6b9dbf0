"""Mapping: each supported mParticle commerce event becomes one neutral `Conversion`.

The conversion holds everything both Facebook APIs need (name, time, keys, value, contents, custom
data, order id, LDU); `render.py` only renames and reshapes it. Every event that does not become a
conversion is counted under a reason (README, "Skipped events").
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.batch import Batch, mapping, number, text, timestamp_ms
from forwarder.ldu import Ldu, limited_data_use
from forwarder.match_keys import MatchKeys, match_keys
from forwarder.settings import Settings

# Meta: offline/physical_store events older than 62 days are refused or not attributed.
MAX_AGE_SECONDS = 62 * 24 * 3600
MAX_FUTURE_SECONDS = 3600
_CURRENCY = re.compile(r"[A-Z]{3}")
# A tuple, not `str | int | ...`: isinstance with a tuple is about twice as fast, and this runs per value.
_SCALARS = (str, int, float, bool)
# Each product with its price and quantity (see `_figures`).
_Figures = list[tuple[Mapping[str, Any], float | None, float]]


class Skip:
    """Reasons an event is not forwarded; the values appear in responses, logs and metrics."""

    MALFORMED_EVENT = "malformed_event"
    NOT_COMMERCE_EVENT = "not_commerce_event"
    UNSUPPORTED_ACTION = "unsupported_action"
    NO_EVENT_TIME = "no_event_time"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    PURCHASE_WITHOUT_VALUE = "purchase_without_value"
    INVALID_CURRENCY = "invalid_currency"
    NO_MATCH_KEY = "no_match_key"


@dataclass(frozen=True, slots=True)
class Content:
    id: str
    quantity: int
    price: float | None = None
    brand: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class Conversion:
    event_name: str
    event_time: int
    event_id: str
    keys: MatchKeys
    value: float | None = None
    currency: str | None = None
    contents: tuple[Content, ...] = ()
    custom_data: Mapping[str, Any] = field(default_factory=dict)
    order_id: str | None = None
    ldu: Ldu | None = None


@dataclass(slots=True)
class Mapped:
    received: int
    conversions: list[Conversion] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def _event_time(data: Mapping[str, Any], batch: Batch) -> int | None:
    millis = timestamp_ms(data.get("timestamp_unixtime_ms")) or batch.timestamp_ms
    return millis // 1000 if millis else None


def _event_id(event: Mapping[str, Any], data: Mapping[str, Any], batch: Batch) -> str:
    """Stable across redeliveries of the same batch, so Meta de-duplicates retried events."""
    for key in ("source_message_id", "message_id", "event_id"):
        if identifier := text(data.get(key)):
            return identifier
    parts = [batch.source_request_id, batch.batch_id, event]
    try:
        canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError:
        # orjson.loads accepts nesting (1024) that orjson.dumps refuses (254); repr is as stable per body.
        canonical = repr(parts).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def _quantity(product: Mapping[str, Any]) -> float:
    quantity = number(product.get("quantity"))
    return 1.0 if quantity is None else quantity


def _figures(products: list[Any]) -> _Figures:
    """Each product with its price and quantity, read once for both the value and the contents."""
    return [(product, number(product.get("price")), _quantity(product)) for product in products]


def _contents(products: list[Any], figures: _Figures | None = None) -> tuple[Content, ...]:
    contents = []
    for product, price, quantity in _figures(products) if figures is None else figures:
        product_id = text(product.get("id"))
        if product_id is None or quantity <= 0:
            continue
        contents.append(
            Content(
                id=product_id,
                # Meta wants whole quantities; mParticle allows decimals (0.5 kg), so round, at least 1.
                quantity=max(1, round(quantity)),
                price=price,
                brand=text(product.get("brand")),
                category=text(product.get("category")),
            )
        )
    return tuple(contents)


def _value(action: Mapping[str, Any], products: list[Any], figures: _Figures | None = None) -> float | None:
    """`total_amount` if set, else the sum of price x quantity; None unless positive (Meta refuses <= 0)."""
    total = number(action.get("total_amount"))
    if total is None:
        prices = _figures(products) if figures is None else figures
        known = [price * quantity for _, price, quantity in prices if price is not None]
        total = sum(known) if known else None
    if total is None or not math.isfinite(total):  # a sum of huge prices can overflow to inf
        return None
    total = round(total, 6)  # rounded before the check: a tiny amount must not become a value of 0
    return total if total > 0 else None


def _custom_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in mapping(data.get("custom_attributes")).items()
        if isinstance(key, str) and isinstance(value, _SCALARS)
    }


def map_event(
    event: Any, batch: Batch, keys: MatchKeys, ldu: Ldu | None, settings: Settings, now: float
) -> Conversion | str:
    """The conversion for one event, or the reason it is skipped."""
    if not isinstance(event, dict):
        return Skip.MALFORMED_EVENT
    if event.get("event_type") != "commerce_event":
        return Skip.NOT_COMMERCE_EVENT
    data = mapping(event.get("data"))
    action = mapping(data.get("product_action"))
    action_name = text(action.get("action")) or ""
    event_name = settings.event_names.get(action_name)
    if event_name is None:
        return Skip.UNSUPPORTED_ACTION
    event_time = _event_time(data, batch)
    if event_time is None:
        return Skip.NO_EVENT_TIME
    if event_time < now - MAX_AGE_SECONDS:
        return Skip.TOO_OLD
    if event_time > now + MAX_FUTURE_SECONDS:
        return Skip.IN_FUTURE
    raw_products = action.get("products")
    products = [p for p in raw_products if isinstance(p, dict)] if isinstance(raw_products, list) else []
    figures = _figures(products)
    value = _value(action, products, figures)
    currency = (text(data.get("currency_code")) or settings.default_currency).upper()
    if value is not None and not _CURRENCY.fullmatch(currency):
        if action_name == "purchase":
            return Skip.INVALID_CURRENCY
        value = None
    if value is None and action_name == "purchase":
        return Skip.PURCHASE_WITHOUT_VALUE
    return Conversion(
        event_name=event_name,
        event_time=event_time,
        event_id=_event_id(event, data, batch),
        keys=keys,
        value=value,
        currency=currency if value is not None else None,
        contents=_contents(products, figures),
        custom_data=_custom_data(data),
        order_id=text(action.get("transaction_id")),
        ldu=ldu,
    )


def map_batch(batch: Batch, settings: Settings, now: float) -> Mapped:
    """Map every event; keys and LDU are the user's, so they are computed once per batch."""
    keys = match_keys(batch.user)
    ldu = limited_data_use(settings.ldu_mode, batch.user)
    mapped = Mapped(received=len(batch.events))
    for event in batch.events:
        result = map_event(event, batch, keys, ldu, settings, now)
        if isinstance(result, str):
            mapped.skipped[result] += 1
        else:
            mapped.conversions.append(result)
    return mapped
