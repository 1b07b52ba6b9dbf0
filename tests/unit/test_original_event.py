"""AppendValue: a custom event mapped to `AppendValue` carries Meta's `original_event_data`, read from its custom
attributes `original_event_name`, `original_order_id`, `original_event_id`, `original_event_time`.

Meta's original-event-data parameters (conversions-api/parameters/original-event): event_name (string, a
standard or custom event name), event_time (integer, Unix seconds), order_id (string), event_id (string).
Meta's SDK (serverside `OriginalEventData`, which refuses an event_time that is not an int) is the oracle for
the object sent. Without the name and one of the order id or event id the event is skipped
`append_without_original` (the outside contract).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import NOW_MS
from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import HOUR_MS, custom, rendered, sdk_batch, settings

OriginalEventData = pytest.importorskip("facebook_business.adobjects.serverside.original_event_data").OriginalEventData

MAPPING = "Margin Added=AppendValue,Store Visit=FindLocation"
EVENT_MS = NOW_MS - HOUR_MS  # when the AppendValue event happened (custom()'s default age)
PURCHASE_MS = NOW_MS - 3 * 24 * HOUR_MS
SHAPES = {"inbound": lambda body: body, "outbound": outbound}


def append_value(attributes: dict[str, Any], name: str = "Margin Added") -> Any:
    return custom(name, {"value": "12.50", "currency": "EUR", "store": "SF-01", **attributes})


def metas_sdk(**fields: Any) -> dict[str, Any]:
    return OriginalEventData(**fields).normalize()


# (the custom attributes naming the original, original_event_data sent, adjusted)
SENT = [
    (
        {"original_event_name": "Purchase", "original_order_id": "T-1"},
        metas_sdk(event_name="Purchase", order_id="T-1"),
        {},
    ),
    (
        {"original_event_name": "Purchase", "original_event_id": "m-purchase"},
        metas_sdk(event_name="Purchase", event_id="m-purchase"),
        {},
    ),
    (
        {
            "original_event_name": "Purchase",
            "original_order_id": "T-1",
            "original_event_id": "m-purchase",
            "original_event_time": PURCHASE_MS,  # milliseconds, as mParticle writes times
        },
        metas_sdk(event_name="Purchase", event_time=PURCHASE_MS // 1000, order_id="T-1", event_id="m-purchase"),
        {},
    ),
    (
        {"original_event_name": "Purchase", "original_order_id": 1001, "original_event_time": str(PURCHASE_MS // 1000)},
        metas_sdk(event_name="Purchase", event_time=PURCHASE_MS // 1000, order_id="1001"),  # seconds, a string
        {},
    ),
    (
        {"Original_Event_Name": "Store Sale", "ORIGINAL_ORDER_ID": " T-2 "},  # names in any case; a custom name
        metas_sdk(event_name="Store Sale", order_id="T-2"),
        {},
    ),
    (
        {"original_event_name": "Purchase", "original_order_id": "T-1", "original_event_time": NOW_MS + HOUR_MS},
        metas_sdk(event_name="Purchase", order_id="T-1"),  # after the AppendValue itself: left out
        {"invalid_original_event_time": 1},
    ),
    (
        {"original_event_name": "Purchase", "original_order_id": "T-1", "original_event_time": "yesterday"},
        metas_sdk(event_name="Purchase", order_id="T-1"),
        {"invalid_original_event_time": 1},
    ),
    (
        {"original_event_name": "Purchase", "original_order_id": "T-1", "original_event_time": 999_999_999},
        metas_sdk(event_name="Purchase", order_id="T-1"),  # 2001: no time of a recent sale
        {"invalid_original_event_time": 1},
    ),
]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("attributes", "original", "adjusted"), SENT)
def test_append_value_carries_the_original_event(
    shape: str, attributes: dict[str, Any], original: dict[str, Any], adjusted: dict[str, int]
) -> None:
    events, skipped, counted = rendered(
        SHAPES[shape](sdk_batch(append_value(attributes))), settings(CUSTOM_EVENT_MAPPING=MAPPING)
    )
    [event] = events
    assert event["event_name"] == "AppendValue"
    assert event["original_event_data"] == original
    # Its attributes name the original: no custom data. The rest stays, value and currency as any event's.
    assert event["custom_data"] == {"store": "SF-01", "value": 12.5, "currency": "EUR"}
    assert (skipped, counted) == ({}, adjusted)


SKIPPED = [
    ({}, "append_without_original"),
    ({"original_event_name": "Purchase"}, "append_without_original"),  # nothing finds the original
    ({"original_order_id": "T-1", "original_event_id": "m-1"}, "append_without_original"),  # no name
    ({"original_event_name": " ", "original_order_id": "T-1"}, "append_without_original"),
    ({"original_event_name": "Purchase!", "original_order_id": "T-1"}, "append_without_original"),  # no Meta name
    ({"original_event_name": "P" * 51, "original_order_id": "T-1"}, "append_without_original"),  # over 50
    ({"original_event_name": "Purchase", "original_order_id": "T" * 1001}, "value_too_long"),
    ({"original_event_name": "Purchase", "original_event_id": "E" * 1001}, "value_too_long"),
]


@pytest.mark.parametrize(("attributes", "reason"), SKIPPED)
def test_append_value_without_its_original_is_skipped(attributes: dict[str, Any], reason: str) -> None:
    events, skipped, _ = rendered(sdk_batch(append_value(attributes)), settings(CUSTOM_EVENT_MAPPING=MAPPING))
    assert (events, skipped) == ([], {reason: 1})


def test_an_event_forwarded_under_its_own_name_appendvalue_is_one_too() -> None:
    event = custom("AppendValue", {"original_event_name": "Purchase"})
    config = settings(FORWARD_UNMAPPED_CUSTOM_EVENTS="true")
    assert rendered(sdk_batch(event), config)[1] == {"append_without_original": 1}


def test_other_events_keep_those_attributes_as_custom_data() -> None:
    attributes = {"original_event_name": "Purchase", "original_order_id": "T-1"}
    [event] = rendered(sdk_batch(custom("Store Visit", attributes)), settings(CUSTOM_EVENT_MAPPING=MAPPING))[0]
    assert "original_event_data" not in event
    assert event["custom_data"] == attributes


def test_the_offline_conversions_api_takes_no_appendvalue() -> None:
    attributes = {"original_event_name": "Purchase", "original_order_id": "T-1"}
    config = settings("offline_conversions", CUSTOM_EVENT_MAPPING=MAPPING)
    assert rendered(sdk_batch(append_value(attributes)), config)[:2] == ([], {"custom_name_unsupported": 1})
