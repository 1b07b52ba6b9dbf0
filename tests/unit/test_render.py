"""One conversion, two renderings: the Offline Conversions API and the Conversions API.

Field names come from Meta's docs (marketing-api/offline-conversions, conversions-api/parameters); hashes
are computed here from the normalised strings, so the expected events are written out in full rather than
taken from the code.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from forwarder.batch import read_batch
from forwarder.mapping import map_batch
from forwarder.render import render_events
from forwarder.settings import Settings, load_settings
from tests.support import NOW_MS, commerce_event

NOW = NOW_MS / 1000
EVENT_MS = NOW_MS - 3_600_000
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
GAID = "38400000-8CF0-11BD-B23E-10B96E40000D"
BASE_ENV = {
    "OFFLINE_EVENT_SET_ID": "1234567890",
    "SECRET_ID": "facebook-offline-forwarder",
    "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
}


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def settings(api: str, **env: str) -> Settings:
    return load_settings({**BASE_ENV, "FACEBOOK_API": api, **env})


def render(body: dict[str, Any], config: Settings) -> tuple[list[dict[str, Any]], dict[str, int]]:
    mapped = map_batch(read_batch(body), config, NOW)
    assert not mapped.skipped, mapped.skipped
    events, skipped = render_events(mapped, config)
    return events, dict(skipped)


def jane(events: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """An inbound-shape batch for Jane with every identity and reserved attribute mParticle's integration names."""
    return {
        "events": [purchase()] if events is None else events,
        "user_identities": {"email": "Jane.Doe@Example.com ", "customerid": "123"},
        "device_info": {"ios_advertising_id": IDFA},
        "user_attributes": {
            "$Gender": "Female",
            "$FirstName": "Jane",
            "$LastName": "O'Doe",
            "$City": "San Francisco",
            "$Country": "US",
            "$State": "CA",
        },
        **fields,
    }


def purchase(**data: Any) -> dict[str, Any]:
    return commerce_event(
        "purchase",
        timestamp_unixtime_ms=EVENT_MS,
        source_message_id="msg-1",
        products=[{"id": "sku-1", "name": "Shirt", "price": 10.0, "quantity": 3, "brand": "Acme", "category": "Tops"}],
        product_action={"transaction_id": "T-1", "total_amount": 30.0},
        **data,
    )


HASHED_KEYS = {
    "email": sha("jane.doe@example.com"),
    "fn": sha("jane"),
    "ln": sha("odoe"),
    "gen": sha("f"),
    "ct": sha("sanfrancisco"),
    "country": sha("us"),
    "st": sha("ca"),
}


def test_offline_conversions_rendering() -> None:
    events, skipped = render(jane(), settings("offline_conversions"))
    assert skipped == {}
    assert events == [
        {
            "event_name": "Purchase",
            "event_time": EVENT_MS // 1000,
            "match_keys": {**HASHED_KEYS, "extern_id": "123", "madid": sha(IDFA.lower())},  # Meta: extern_id unhashed
            "value": 30.0,
            "currency": "USD",
            "contents": [{"id": "sku-1", "quantity": 3, "price": 10.0, "brand": "Acme", "category": "Tops"}],
            "content_type": "product",
            "order_id": "T-1",
            "custom_data": {"store": "SF-01"},
        }
    ]


def test_conversions_api_rendering() -> None:
    events, skipped = render(jane(), settings("conversions_api"))
    assert skipped == {}
    assert events == [
        {
            "event_name": "Purchase",
            "event_time": EVENT_MS // 1000,
            "action_source": "physical_store",
            "event_id": "msg-1",
            "user_data": {
                "em": HASHED_KEYS["email"],
                "fn": HASHED_KEYS["fn"],
                "ln": HASHED_KEYS["ln"],
                "ge": HASHED_KEYS["gen"],
                "ct": HASHED_KEYS["ct"],
                "st": HASHED_KEYS["st"],
                "country": HASHED_KEYS["country"],
                "external_id": sha("123"),
                "madid": IDFA.lower(),  # Meta: the advertiser id is sent unhashed
            },
            "custom_data": {
                "store": "SF-01",
                "value": 30.0,
                "currency": "USD",
                "contents": [
                    {
                        "id": "sku-1",
                        "quantity": 3,
                        "item_price": 10.0,
                        "brand": "Acme",
                        "category": "Tops",
                        "title": "Shirt",  # the product's name
                    }
                ],
                "content_type": "product",
                "order_id": "T-1",
                # Meta's fields for optimisation and reports (conversions-api/parameters/custom-data):
                "content_ids": ["sku-1"],
                "num_items": 3,
                "content_name": "Shirt",  # the one product's name and category
                "content_category": "Tops",
                "delivery_category": "in_store",  # a purchase at the store
            },
        }
    ]


META_OWNED = {"value": "999", "currency": "XXX", "contents": "[]", "content_type": "x", "order_id": "forged"}


def test_custom_attributes_cannot_overwrite_metas_fields() -> None:
    event = purchase(custom_attributes={"store": "SF-01", **META_OWNED})
    [rendered], _ = render(jane([event]), settings("conversions_api"))
    custom_data = rendered["custom_data"]
    assert custom_data["store"] == "SF-01"
    assert (custom_data["value"], custom_data["currency"], custom_data["order_id"]) == (30.0, "USD", "T-1")
    assert custom_data["content_type"] == "product"
    assert custom_data["contents"][0]["id"] == "sku-1"


def test_custom_attributes_cannot_stand_in_for_metas_fields_the_event_lacks() -> None:
    # No price, no products, no transaction: value, currency, contents and order id are all absent,
    # and a custom attribute with one of those names must not take their place (Meta would read it).
    event = commerce_event("view_detail", timestamp_unixtime_ms=EVENT_MS, products=[], custom_attributes=META_OWNED)
    event["data"]["product_action"].pop("transaction_id")
    [rendered], _ = render(jane([event]), settings("conversions_api"))
    assert set(rendered.get("custom_data", {})).isdisjoint(META_OWNED)


def test_offline_custom_data_is_free_form() -> None:
    event = purchase(custom_attributes={"store": "SF-01", "value": "999"})
    [rendered], _ = render(jane([event]), settings("offline_conversions"))
    assert rendered["custom_data"] == {"store": "SF-01", "value": "999"}
    assert rendered["value"] == 30.0


@pytest.mark.parametrize("api", ["offline_conversions", "conversions_api"])
def test_optional_fields_are_absent_when_there_is_nothing_to_send(api: str) -> None:
    event = commerce_event("view_detail", timestamp_unixtime_ms=EVENT_MS, products=[], custom_attributes={})
    event["data"]["product_action"].pop("transaction_id")
    [rendered], _ = render(jane([event]), settings(api))
    absent = {"value", "currency", "contents", "content_type", "order_id", "custom_data", "data_processing_options"}
    assert absent.isdisjoint(rendered)
    assert rendered["event_name"] == "ViewContent"


# ---- match keys per API ------------------------------------------------------------------------

ONLY_CUSTOMER_ID = {"user_identities": [{"identity_type": "customer_id", "identity": "123"}]}


@pytest.mark.parametrize(
    ("user", "offline_keys", "capi_keys"),
    [
        (ONLY_CUSTOMER_ID, {"extern_id": "123"}, {"external_id": sha("123")}),
        ({"device_info": {"android_advertising_id": GAID}}, {"madid": sha(GAID.lower())}, {"madid": GAID.lower()}),
        (
            {"device_info": {"ios_advertising_id": "00000000-0000-0000-0000-000000000000"}},
            None,
            None,
        ),
        ({"user_attributes": {"$gender": "other", "$country": "Atlantis"}}, None, None),
        (
            {"user_identities": {"email": "JOHN@example.org"}},
            {"email": sha("john@example.org")},
            {"em": sha("john@example.org")},
        ),
        ({}, None, None),
    ],
    ids=["customer_id_only", "gaid_only", "zero_idfa_only", "unusable_attributes", "email_only", "nobody"],
)
def test_events_without_a_key_the_api_accepts_are_skipped(
    user: dict[str, Any], offline_keys: dict[str, str] | None, capi_keys: dict[str, str] | None
) -> None:
    body = {"events": [purchase()], **user}
    for api, expected, field in [
        ("offline_conversions", offline_keys, "match_keys"),
        ("conversions_api", capi_keys, "user_data"),
    ]:
        events, skipped = render(body, settings(api))
        if expected is None:
            assert (events, skipped) == ([], {"no_match_key": 1}), api
        else:
            assert ([event[field] for event in events], skipped) == ([expected], {}), api


@pytest.mark.parametrize("madid", [sha("idfa"), sha("idfa").upper()])
def test_an_already_hashed_madid_is_not_hashed_again(madid: str) -> None:
    body = {"events": [purchase()], "device_info": {"ios_advertising_id": madid}}
    [rendered], _ = render(body, settings("offline_conversions"))
    assert rendered["match_keys"] == {"madid": sha("idfa")}


def test_a_64_character_madid_that_is_not_hex_is_still_hashed() -> None:
    madid = "z" * 64
    body = {"events": [purchase()], "device_info": {"android_advertising_id": madid}}
    [rendered], _ = render(body, settings("offline_conversions"))
    assert rendered["match_keys"] == {"madid": sha(madid)}


# ---- limited data use and request fields ------------------------------------------------------


@pytest.mark.parametrize("api", ["offline_conversions", "conversions_api"])
@pytest.mark.parametrize(
    ("mode", "fields"),
    [
        ("never", {}),
        (
            "always",
            {
                "data_processing_options": ["LDU"],
                "data_processing_options_country": 1,
                "data_processing_options_state": 1000,
            },
        ),
        ("opted_out", {}),  # Jane has not opted out
    ],
)
def test_ldu_fields_are_present_only_when_they_apply(api: str, mode: str, fields: dict[str, Any]) -> None:
    [rendered], _ = render(jane(), settings(api, SEND_CCPA_LIMITED_DATA_USE=mode))
    ldu_keys = {"data_processing_options", "data_processing_options_country", "data_processing_options_state"}
    assert {key: rendered[key] for key in ldu_keys & rendered.keys()} == fields


@pytest.mark.parametrize("api", ["offline_conversions", "conversions_api"])
def test_ldu_fields_for_an_opted_out_user(api: str) -> None:
    opted_out = {"ccpa": {"data_sale_opt_out": {"consented": True}}}
    body = jane(consent_state=opted_out, user_attributes={"$country": "DE", "$firstname": "Jana"})
    [rendered], _ = render(body, settings(api, SEND_CCPA_LIMITED_DATA_USE="opted_out"))
    assert rendered["data_processing_options"] == ["LDU"]
    assert (rendered["data_processing_options_country"], rendered["data_processing_options_state"]) == (0, 0)


@pytest.mark.parametrize(
    ("env", "fields"),
    [
        ({"FACEBOOK_API": "offline_conversions"}, {"upload_tag": "mparticle-offline-forwarder"}),
        ({"FACEBOOK_API": "offline_conversions", "UPLOAD_TAG": "store-sales"}, {"upload_tag": "store-sales"}),
        (
            {"FACEBOOK_API": "offline_conversions", "TEST_EVENT_CODE": "TEST123"},
            {"upload_tag": "mparticle-offline-forwarder"},
        ),
        ({"FACEBOOK_API": "conversions_api"}, {}),
        ({"FACEBOOK_API": "conversions_api", "UPLOAD_TAG": "store-sales"}, {}),
        ({"FACEBOOK_API": "conversions_api", "TEST_EVENT_CODE": "TEST123"}, {"test_event_code": "TEST123"}),
    ],
)
def test_request_fields(env: dict[str, str], fields: dict[str, str]) -> None:
    # A development batch's request: the only one that may carry the test event code.
    [destination] = load_settings({**BASE_ENV, **env}).destinations("Purchase", development=True)
    assert destination.request_fields() == fields
