"""Value beyond the sale: the custom attributes `net_revenue` and `predicted_ltv` as Meta's custom_data numbers.

Meta's SDK (serverside `CustomData`: both "float", its setters refuse anything but a float or int) is the
oracle for what is sent; Meta's value-optimization-for-profit guide says net_revenue is in the event's
currency ("There is no separate currency field for net_revenue"), its pLTV guide that predicted values are
positive. mParticle's SDKs send attribute values as strings or numbers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import MAPPING, commerce, custom, product, rendered, sdk_batch, settings

CustomData = pytest.importorskip("facebook_business.adobjects.serverside.custom_data").CustomData

SHIRT = product(id="sku-1", name="Shirt", price=40.0, quantity=1.0)
SHAPES = {"inbound": lambda body: body, "outbound": outbound}


def metas_sdk(**fields: Any) -> dict[str, Any]:
    """What Meta's SDK sends for these fields (TypeError for what it refuses)."""
    return CustomData(**fields).normalize()


def purchase(attributes: dict[str, Any]) -> Any:
    event = commerce("purchase", [SHIRT], transaction_id="T-1", total_amount=40.0)
    event.custom_attributes = {"store": "SF-01", **attributes}
    return event


# (custom attributes, the fields sent in custom_data besides the store, adjusted)
CASES = [
    ({"net_revenue": "12.50"}, metas_sdk(net_revenue=12.5), {}),
    ({"net_revenue": 7}, metas_sdk(net_revenue=7.0), {}),
    ({"net_revenue": "-3.2"}, metas_sdk(net_revenue=-3.2), {}),  # a sale at a loss
    ({"predicted_ltv": "250"}, metas_sdk(predicted_ltv=250.0), {}),
    ({"predicted_ltv": 99.9, "net_revenue": 4}, metas_sdk(predicted_ltv=99.9, net_revenue=4.0), {}),
    ({"net_revenue": "twelve"}, {}, {"invalid_net_revenue": 1}),
    ({"net_revenue": True}, {}, {"invalid_net_revenue": 1}),
    ({"net_revenue": "NaN"}, {}, {"invalid_net_revenue": 1}),
    ({"net_revenue": "inf"}, {}, {"invalid_net_revenue": 1}),
    ({"predicted_ltv": 0}, {}, {"invalid_predicted_ltv": 1}),
    ({"predicted_ltv": "-5"}, {}, {"invalid_predicted_ltv": 1}),
    ({"predicted_ltv": ""}, {}, {"invalid_predicted_ltv": 1}),
]


@pytest.mark.parametrize("api", ["conversions_api", "offline_conversions"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(("attributes", "fields", "adjusted"), CASES)
def test_net_revenue_and_predicted_ltv_are_sent_as_metas_numbers(
    api: str, shape: str, attributes: dict[str, Any], fields: dict[str, Any], adjusted: dict[str, int]
) -> None:
    events, skipped, counted = rendered(SHAPES[shape](sdk_batch(purchase(attributes))), settings(api))
    [event] = events
    custom_data = event["custom_data"]
    sent = {key: value for key, value in custom_data.items() if key in ("net_revenue", "predicted_ltv")}
    assert sent == fields
    assert all(type(value) is float and math.isfinite(value) for value in sent.values())
    assert custom_data["store"] == "SF-01"
    assert not set(attributes) - set(fields) & set(custom_data)  # no other spelling, nothing invalid
    assert (skipped, counted) == ({}, adjusted)


def test_another_spelling_is_ordinary_custom_data() -> None:
    """Only Meta's own field names are read (as the outside contract names them): `Net_Revenue` is an attribute
    like any other, which Meta does not read as the field."""
    [event] = rendered(sdk_batch(purchase({"Net_Revenue": "1.25"})), settings())[0]
    assert "net_revenue" not in event["custom_data"] and event["custom_data"]["Net_Revenue"] == "1.25"


def test_net_revenue_needs_the_events_value_and_currency() -> None:
    viewed = commerce("view_detail", [product(id="sku-1", name="Shirt")])  # no price: no value, no currency
    viewed.custom_attributes = {"net_revenue": "3", "predicted_ltv": "30"}
    events, _, adjusted = rendered(sdk_batch(viewed), settings())
    assert {key: events[0]["custom_data"].get(key) for key in ("net_revenue", "predicted_ltv", "currency")} == {
        "net_revenue": None,
        "predicted_ltv": 30.0,
        "currency": None,
    }
    assert adjusted == {"net_revenue_without_value": 1}


def test_a_custom_event_sent_as_purchase_carries_them_too() -> None:
    event = custom("Loyalty Purchase", {"value": "80", "currency": "GBP", "net_revenue": "20", "predicted_ltv": 400})
    [sent] = rendered(sdk_batch(event), settings(CUSTOM_EVENT_MAPPING=f"{MAPPING},Loyalty Purchase=Purchase"))[0]
    assert sent["custom_data"] == {
        "value": 80.0,
        "currency": "GBP",
        "delivery_category": "in_store",  # a Purchase in the store (physical_store, the default)
        **metas_sdk(net_revenue=20.0, predicted_ltv=400.0),
    }
