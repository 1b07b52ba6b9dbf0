"""Batches built and serialised by mParticle's official Python SDK, in both identity shapes.

The SDK writes the inbound (Events API) shape: `user_identities` as an object map with `customerid`.
The webhook sends the outbound shape: the same batch with `user_identities` as an array. Both must map
to the same conversions.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import mparticle as mp
import pytest

from forwarder.batch import read_batch
from forwarder.contents import Content
from forwarder.ldu import Ldu
from forwarder.mapping import Mapped, map_batch
from forwarder.render import render_events
from forwarder.settings import Settings, load_settings
from tests.support import NOW_MS

NOW = NOW_MS / 1000
EVENT_MS = NOW_MS - 2 * 3_600_000
ZERO_IDFA = "00000000-0000-0000-0000-000000000000"
GAID = "38400000-8CF0-11BD-B23E-10B96E40000D"


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def settings(api: str = "offline_conversions", ldu: str = "opted_out") -> Settings:
    return load_settings(
        {
            "OFFLINE_EVENT_SET_ID": "1234567890",
            "SECRET_ID": "facebook-offline-forwarder",
            "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
            "FACEBOOK_API": api,
            "SEND_CCPA_LIMITED_DATA_USE": ldu,
        }
    )


def product(**fields: Any) -> mp.Product:
    item = mp.Product()
    for name, value in fields.items():
        setattr(item, name, value)
    return item


def commerce(action: str, message_id: str, currency: str | None, **action_fields: Any) -> mp.CommerceEvent:
    product_action = mp.ProductAction(action)
    for name, value in action_fields.items():
        setattr(product_action, name, value)
    event = mp.CommerceEvent(product_action)
    event.timestamp_unixtime_ms = EVENT_MS
    event.source_message_id = message_id
    if currency:
        event.currency_code = currency
    event.custom_attributes = {"store": "SF-01", "channel": "pos"}
    return event


def sdk_batch() -> dict[str, Any]:
    """A store's day as the SDK would upload it, serialised exactly as the SDK sends it."""
    batch = mp.Batch()
    batch.environment = "production"

    identities = mp.UserIdentities()
    identities.email = " Jane.Doe@Example.com"
    identities.customerid = "cust-123"
    batch.user_identities = identities

    device = mp.DeviceInformation()
    device.ios_advertising_id = ZERO_IDFA  # limited ad tracking: the GAID is used instead
    device.android_advertising_id = GAID
    batch.device_info = device

    batch.user_attributes = {
        "$FirstName": "Jane",
        "$LastName": "O'Doe",
        "$Gender": "Female",
        "$City": "San Francisco",
        "$Country": "US",
        "$State": "CA",
    }
    consent = mp.ConsentState()
    consent.ccpa = {
        "data_sale_opt_out": mp.CCPAConsentState(document="ccpa-v1", consented=True, timestamp_unixtime_ms=1)
    }
    batch.consent_state = consent

    shirt = product(id="sku-1", name="Shirt", brand="Acme", category="Tops", price=10.0, quantity=3.0)
    socks = product(id="sku-2", name="Socks", price=4.5, quantity=2.0)
    hat = product(id="sku-3", name="Hat", price=1.0)
    promotion = mp.CommerceEvent(promotion_action=mp.PromotionAction("view", [mp.Promotion(id="P-1", name="Sale")]))
    impressions = mp.CommerceEvent(product_impressions=[mp.ProductImpression("home", [product(id="sku-9")])])
    batch.events = [
        commerce("purchase", "m-purchase", "USD", transaction_id="T-1", total_amount=30.0, products=[shirt]),
        commerce("add_to_cart", "m-cart", "eur", products=[socks, hat]),
        commerce("view_detail", "m-view", None, products=[product(id="sku-4", name="Belt")]),
        commerce("refund", "m-refund", "USD", transaction_id="T-0", total_amount=12.0, products=[shirt]),
        promotion,
        impressions,
        mp.AppEvent("Store visit", "location"),
        mp.ScreenViewEvent(screen_name="Checkout"),
    ]
    # Through JSON, as it travels.
    return json.loads(json.dumps(mp.ApiClient.sanitize_for_serialization(batch)))


def outbound(body: dict[str, Any]) -> dict[str, Any]:
    """The same batch as mParticle's webhook output delivers it: identities as an array."""
    converted = copy.deepcopy(body)
    types = {"customerid": "customer_id"}  # the outbound identity type for the SDK's `customerid`
    converted["user_identities"] = [
        {"identity_type": types.get(kind, kind), "identity": value, "timestamp_unixtime_ms": NOW_MS}
        for kind, value in body["user_identities"].items()
    ]
    converted |= {"batch_id": 9001, "source_request_id": "req-sdk", "timestamp_unixtime_ms": NOW_MS, "mpid": 7}
    return converted


def test_the_sdk_writes_the_inbound_shape() -> None:
    body = sdk_batch()
    assert body["user_identities"] == {"email": " Jane.Doe@Example.com", "customerid": "cust-123"}
    assert [event["event_type"] for event in body["events"]].count("commerce_event") == 6


SHAPES = {"inbound_map": sdk_batch, "outbound_array": lambda: outbound(sdk_batch())}


@pytest.fixture(params=list(SHAPES))
def mapped(request: pytest.FixtureRequest) -> Mapped:
    # The Conversions API's settings: the only API whose events carry an event_id (and whose contents
    # carry the unit price as `item_price`, mapping.PRICE_KEYS).
    return map_batch(read_batch(SHAPES[request.param]()), settings("conversions_api"), NOW)


def test_counts(mapped: Mapped) -> None:
    assert mapped.received == 8
    assert len(mapped.conversions) == 3
    # The "Store visit" custom event is named by no CUSTOM_EVENT_MAPPING (test_store_events.py maps it).
    assert dict(mapped.skipped) == {"unsupported_action": 3, "not_commerce_event": 1, "unmapped_custom_event": 1}


def test_conversions(mapped: Mapped) -> None:
    summary = [
        (c.event_name, c.event_time, c.event_id, c.value, c.currency, c.order_id, c.contents)
        for c in mapped.conversions
    ]
    assert summary == [
        (
            "Purchase",
            EVENT_MS // 1000,
            "m-purchase",
            30.0,
            "USD",
            "T-1",
            [Content(id="sku-1", quantity=3, item_price=10.0, brand="Acme", category="Tops", title="Shirt")],
        ),
        (
            "AddToCart",
            EVENT_MS // 1000,
            "m-cart",
            4.5 * 2 + 1.0,
            "EUR",
            None,
            [
                Content(id="sku-2", quantity=2, item_price=4.5, title="Socks"),
                Content(id="sku-3", quantity=1, item_price=1.0, title="Hat"),
            ],
        ),
        ("ViewContent", EVENT_MS // 1000, "m-view", None, None, None, [Content(id="sku-4", quantity=1, title="Belt")]),
    ]
    assert all(dict(c.custom_data) == {"store": "SF-01", "channel": "pos"} for c in mapped.conversions)


def test_user_keys_and_ldu(mapped: Mapped) -> None:
    assert mapped.keys.values == {
        "email": (sha("jane.doe@example.com"),),
        "fn": (sha("jane"),),
        "ln": (sha("odoe"),),
        "gen": (sha("f"),),
        "ct": (sha("sanfrancisco"),),
        "st": (sha("ca"),),
        "country": (sha("us"),),
        "external_id": ("cust-123",),  # the Offline Conversions API takes it unhashed, the renderer hashes it else
        "madid": (GAID.lower(),),  # hashed by the renderer on the Offline Conversions API only
    }
    assert mapped.ldu == Ldu(country=1, state=1000)  # opted out of sale, in California


def test_both_shapes_map_to_the_same_conversions() -> None:
    inbound = map_batch(read_batch(sdk_batch()), settings(), NOW)
    converted = map_batch(read_batch(outbound(sdk_batch())), settings(), NOW)
    assert inbound.conversions == converted.conversions
    assert inbound.skipped == converted.skipped


@pytest.mark.parametrize("shape", list(SHAPES))
def test_rendered_for_both_apis(shape: str) -> None:
    body = SHAPES[shape]()
    offline = settings("offline_conversions", ldu="never")
    capi = settings("conversions_api", ldu="never")
    offline_events, offline_skipped = render_events(map_batch(read_batch(body), offline, NOW), offline)
    capi_events, capi_skipped = render_events(map_batch(read_batch(body), capi, NOW), capi)
    assert not offline_skipped and not capi_skipped
    assert [event["event_name"] for event in offline_events] == ["Purchase", "AddToCart", "ViewContent"]
    assert [event["event_id"] for event in capi_events] == ["m-purchase", "m-cart", "m-view"]
    assert {event["match_keys"]["madid"] for event in offline_events} == {sha(GAID.lower())}
    assert {event["user_data"]["madid"] for event in capi_events} == {GAID.lower()}
    assert {event["user_data"]["external_id"] for event in capi_events} == {sha("cust-123")}
    assert {event["match_keys"]["extern_id"] for event in offline_events} == {"cust-123"}  # Meta: unhashed
    assert all("data_processing_options" not in event for event in offline_events + capi_events)
