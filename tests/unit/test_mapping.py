"""The mapping from mParticle commerce events to neutral conversions, rule by rule.

Expectations come from the tables of mParticle's Facebook Offline Conversions integration and Meta's
docs, never from the code's output.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import orjson
import pytest

from forwarder.batch import read_batch
from forwarder.contents import Content
from forwarder.ldu import Ldu
from forwarder.mapping import Conversion, Mapped, map_batch
from forwarder.render import render_events
from forwarder.settings import Settings, SettingsError, load_settings
from localdev.graph_stub import META_STANDARD_EVENTS
from tests.support import NOW_MS, commerce_event, make_batch

NOW = NOW_MS / 1000
DAY = 24 * 3600
BASE_ENV = {
    "OFFLINE_EVENT_SET_ID": "1234567890",
    "SECRET_ID": "facebook-offline-forwarder",
    "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
}


def settings(**env: str) -> Settings:
    return load_settings({**BASE_ENV, **env})


CAPI = load_settings({**BASE_ENV, "FACEBOOK_API": "conversions_api"})
OFFLINE = load_settings({**BASE_ENV, "FACEBOOK_API": "offline_conversions"})


def run(body: dict[str, Any], config: Settings | None = None, now: float = NOW) -> Mapped:
    return map_batch(read_batch(body), config or settings(), now)


def only(body: dict[str, Any], config: Settings | None = None, now: float = NOW) -> Conversion:
    mapped = run(body, config, now)
    assert not mapped.skipped, mapped.skipped
    [conversion] = mapped.conversions
    return conversion


def skip_reason(body: dict[str, Any], config: Settings | None = None, now: float = NOW) -> str:
    mapped = run(body, config, now)
    assert mapped.conversions == []
    [(reason, count)] = mapped.skipped.items()
    assert count == mapped.received == 1
    return reason


def event_at(seconds: float, **data: Any) -> dict[str, Any]:
    return commerce_event(timestamp_unixtime_ms=int(seconds * 1000), **data)


# ---- event names -------------------------------------------------------------------------------

# (mParticle product action, mParticle's integration's event_name, ours)
EVENT_NAMES = [
    ("add_to_cart", "AddToCart", "AddToCart"),
    ("add_to_wishlist", "AddToWishList", "AddToWishlist"),
    ("checkout", "Checkout", "InitiateCheckout"),
    ("purchase", "Purchase", "Purchase"),
    ("view_detail", "ViewContent", "ViewContent"),
]


@pytest.mark.parametrize(("action", "mparticle_name", "our_name"), EVENT_NAMES)
def test_event_names_are_metas_standard_names(action: str, mparticle_name: str, our_name: str) -> None:
    assert only(make_batch([commerce_event(action)])).event_name == our_name
    assert our_name in META_STANDARD_EVENTS
    # Where we differ from mParticle's integration, it is because its spelling is not a standard name.
    assert (mparticle_name == our_name) == (mparticle_name in META_STANDARD_EVENTS)


def test_event_name_overrides_restore_mparticles_spelling() -> None:
    config = settings(EVENT_NAME_OVERRIDES=" checkout=Checkout , add_to_wishlist=AddToWishList ")
    names = {action: only(make_batch([commerce_event(action)]), config).event_name for action, _, _ in EVENT_NAMES}
    assert names == {action: mparticle_name for action, mparticle_name, _ in EVENT_NAMES}


@pytest.mark.parametrize("overrides", ["refund=Refund", "checkout", "checkout=", "checkout=Bad{Name}"])
def test_invalid_event_name_overrides_fail_loudly(overrides: str) -> None:
    with pytest.raises(SettingsError, match="EVENT_NAME_OVERRIDES"):
        settings(EVENT_NAME_OVERRIDES=overrides)


# ---- skipped events ----------------------------------------------------------------------------


def _promotion_only() -> dict[str, Any]:
    event = commerce_event()
    del event["data"]["product_action"]
    event["data"]["promotion_action"] = {"action": "view", "promotions": [{"id": "P-1", "name": "Sale"}]}
    return event


def _impression_only() -> dict[str, Any]:
    event = commerce_event()
    del event["data"]["product_action"]
    event["data"]["product_impressions"] = [{"product_impression_list": "home", "products": [{"id": "sku-1"}]}]
    return event


UNSUPPORTED = [
    commerce_event("refund"),
    commerce_event("remove_from_cart"),
    commerce_event("click"),
    commerce_event("checkout_option"),
    commerce_event("remove_from_wish_list"),
    commerce_event("unknown"),
    commerce_event(product_action={"action": None}),
    _promotion_only(),
    _impression_only(),
]


@pytest.mark.parametrize("event", UNSUPPORTED)
def test_unsupported_actions_are_skipped(event: dict[str, Any]) -> None:
    assert skip_reason(make_batch([event])) == "unsupported_action"


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "screen_view", "data": {"screen_name": "Home"}},
        {"event_type": "session_start", "data": {}},
        {"data": commerce_event()["data"]},
        {"event_type": ["commerce_event"], "data": commerce_event()["data"]},  # not a name of a kind at all
        {"event_type": {"commerce_event": 1}, "data": commerce_event()["data"]},
    ],
)
def test_non_commerce_events_are_skipped(event: dict[str, Any]) -> None:
    assert skip_reason(make_batch([event])) == "not_commerce_event"


def test_custom_events_no_mapping_names_are_skipped_as_unmapped() -> None:
    event = {"event_type": "custom_event", "data": {"event_name": "Hello", "custom_event_type": "navigation"}}
    assert skip_reason(make_batch([event])) == "unmapped_custom_event"


@pytest.mark.parametrize("event", ["purchase", 42, None, ["commerce_event"]])
def test_events_that_are_not_objects_are_skipped(event: Any) -> None:
    assert skip_reason(make_batch([event])) == "malformed_event"


def test_every_received_event_is_forwarded_or_counted() -> None:
    events = [commerce_event("purchase"), commerce_event("refund"), {"event_type": "custom_event"}, None]
    mapped = run(make_batch(events))
    assert mapped.received == 4
    assert len(mapped.conversions) == 1
    assert dict(mapped.skipped) == {"unsupported_action": 1, "unmapped_custom_event": 1, "malformed_event": 1}


def test_reasons_are_counted_under_plain_strings_as_orjson_writes_them() -> None:
    """The response, the summary log line and parked messages are written by orjson, which refuses a dict key
    that is not exactly a str (an enum member, say)."""
    events = [commerce_event("refund"), None, commerce_event(timestamp_unixtime_ms=None)]
    mapped = run(make_batch(events, user_identities=[], user_attributes={}, device_info={}))
    _, unmatched = render_events(mapped, settings())
    counts = {**mapped.skipped, **unmatched, **mapped.adjusted}
    assert {type(reason) for reason in counts} == {str}
    expected = {"unsupported_action": 1, "malformed_event": 1, "no_match_key": 1, "event_time_from_batch": 1}
    assert orjson.loads(orjson.dumps(counts)) == expected


# ---- event time --------------------------------------------------------------------------------


def test_event_time_is_the_event_timestamp_in_whole_seconds() -> None:
    millis = NOW_MS - 123_456_789
    event = commerce_event(timestamp_unixtime_ms=millis)
    assert only(make_batch([event])).event_time == millis // 1000


def test_event_time_accepts_a_numeric_string() -> None:
    millis = NOW_MS - 5_000_999
    event = commerce_event(timestamp_unixtime_ms=str(millis))
    assert only(make_batch([event])).event_time == millis // 1000


@pytest.mark.parametrize("absent", ["no key", None])
def test_only_an_absent_event_time_falls_back_to_the_batch_timestamp_and_is_counted(absent: Any) -> None:
    batch_millis = NOW_MS - 7_200_500
    event = commerce_event(timestamp_unixtime_ms=absent)
    if absent == "no key":
        del event["data"]["timestamp_unixtime_ms"]
    mapped = run(make_batch([event], timestamp_unixtime_ms=batch_millis))
    assert [conversion.event_time for conversion in mapped.conversions] == [batch_millis // 1000]
    assert mapped.adjusted == {"event_time_from_batch": 1}


@pytest.mark.parametrize(
    "unusable",
    [
        0,
        -5,
        -NOW_MS,
        "soon",
        "",
        "  ",
        {},
        [NOW_MS],
        True,
        NOW_MS // 1000,  # seconds, not milliseconds: plainly a unit mistake
        str(NOW_MS // 1000),
        99_999_999_999,  # the last value below 1973-03-03 in milliseconds
        float("nan"),
    ],
)
def test_a_present_but_unusable_event_time_skips_the_event_and_never_takes_the_batch_time(unusable: Any) -> None:
    event = commerce_event(timestamp_unixtime_ms=unusable)
    mapped = run(make_batch([event], timestamp_unixtime_ms=NOW_MS))
    assert mapped.conversions == []
    assert mapped.skipped == {"invalid_event_time": 1}


def test_an_event_without_any_time_is_skipped() -> None:
    event = commerce_event()
    del event["data"]["timestamp_unixtime_ms"]
    body = make_batch([event])
    del body["timestamp_unixtime_ms"]
    assert skip_reason(body) == "no_event_time"


@pytest.mark.parametrize(
    ("age_seconds", "reason"),
    [
        (62 * DAY + 60, "too_old"),
        (400 * DAY, "too_old"),
        (62 * DAY - 60, None),
        (0, None),
        (-3500, None),  # a clock a little ahead is tolerated
        (-3700, "in_future"),
        (-30 * DAY, "in_future"),
    ],
)
def test_events_outside_metas_window_are_skipped(age_seconds: int, reason: str | None) -> None:
    body = make_batch([event_at(NOW - age_seconds)])
    if reason is None:
        assert only(body).event_time == int(NOW - age_seconds)
    else:
        assert skip_reason(body) == reason


# ---- value and currency ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_action", "products", "value"),
    [
        ({"total_amount": 30.0}, [{"id": "a", "price": 99.0, "quantity": 1}], 30.0),
        ({"total_amount": "12.50"}, [], 12.5),
        ({}, [{"id": "a", "price": 10.0, "quantity": 3}, {"id": "b", "price": 5.0}], 35.0),
        ({}, [{"id": "a", "price": "2.5", "quantity": "2"}], 5.0),
        ({"total_amount": None}, [{"id": "a", "price": 4.0, "quantity": 0.5}], 2.0),
        ({}, [{"id": "a", "price": 10.0}, {"id": "b"}], 10.0),
    ],
)
def test_value_is_total_amount_else_sum_of_price_times_quantity(
    product_action: dict[str, Any], products: list[dict[str, Any]], value: float
) -> None:
    event = commerce_event("add_to_cart", products=products, product_action=product_action)
    conversion = only(make_batch([event]))
    assert conversion.value == pytest.approx(value)
    assert conversion.currency == "USD"


@pytest.mark.parametrize(
    ("product_action", "products"),
    [
        ({"total_amount": 0}, [{"id": "a", "price": 10.0}]),
        ({"total_amount": -5}, []),
        ({"total_amount": 1e-9}, []),  # rounds to 0 at Meta's precision
        ({}, [{"id": "a", "price": 0}]),
        ({}, [{"id": "a"}]),
        ({}, []),
        ({"total_amount": "free"}, [{"id": "a", "price": "n/a"}]),
    ],
)
def test_no_positive_value_omits_value_and_currency_and_skips_a_purchase(
    product_action: dict[str, Any], products: list[dict[str, Any]]
) -> None:
    event = commerce_event("add_to_cart", products=products, product_action=product_action)
    conversion = only(make_batch([event]))
    assert (conversion.value, conversion.currency) == (None, None)
    purchase = commerce_event("purchase", products=products, product_action=product_action)
    assert skip_reason(make_batch([purchase])) == "purchase_without_value"


@pytest.mark.parametrize(
    ("currency_code", "env", "currency"),
    [
        ("USD", {}, "USD"),
        ("eur", {}, "EUR"),
        (" gbp ", {}, "GBP"),
        (None, {}, "USD"),
        ("", {"DEFAULT_CURRENCY": "eur"}, "EUR"),
        (None, {"DEFAULT_CURRENCY": "JPY"}, "JPY"),
    ],
)
def test_currency_is_upper_case_with_a_configurable_default(
    currency_code: str | None, env: dict[str, str], currency: str
) -> None:
    event = commerce_event(currency_code=currency_code)
    assert only(make_batch([event]), settings(**env)).currency == currency


@pytest.mark.parametrize("currency_code", ["US Dollars", "$", "EURO", 840, "U1D"])
def test_an_invalid_currency_skips_a_purchase_and_drops_value_elsewhere(currency_code: Any) -> None:
    assert skip_reason(make_batch([commerce_event("purchase", currency_code=currency_code)])) == "invalid_currency"
    conversion = only(make_batch([commerce_event("checkout", currency_code=currency_code)]))
    assert (conversion.value, conversion.currency) == (None, None)


def test_an_integer_too_large_for_a_float_is_not_a_value() -> None:
    # json.loads keeps such integers exact; they must not crash the mapping.
    event = commerce_event(product_action={"total_amount": 10**400}, products=[{"id": "a", "price": 7.0}])
    assert only(make_batch([event])).value == 7.0


def test_a_value_that_overflows_is_not_sent() -> None:
    products = [{"id": "a", "price": 1e308, "quantity": 10}]
    conversion = only(make_batch([commerce_event("add_to_cart", products=products)]))
    assert (conversion.value, conversion.currency) == (None, None)


# ---- contents, custom data, order id -----------------------------------------------------------


def test_contents_come_from_products() -> None:
    products = [
        {"id": "sku-1", "name": "Shirt", "price": 10.0, "quantity": 3, "brand": "Acme", "category": "Shirts"},
        {"id": 42, "price": "2.5"},  # quantity defaults to 1; ids and prices may be numbers or strings
        {"name": "no id"},
        {"id": "sku-zero", "price": 1.0, "quantity": 0},
        {"id": "sku-half", "price": 3.0, "quantity": 0.4},
        "not a product",
    ]
    conversion = only(make_batch([commerce_event("view_detail", products=products)]), OFFLINE)  # Meta's `price`
    assert conversion.contents == [
        Content(id="sku-1", quantity=3, price=10.0, brand="Acme", category="Shirts"),
        Content(id="42", quantity=1, price=2.5),
        Content(id="sku-half", quantity=1, price=3.0),
    ]


@pytest.mark.parametrize("products", [None, [], "sku-1", {"id": "sku-1"}])
def test_no_products_means_no_contents(products: Any) -> None:
    event = commerce_event("view_detail", products=products)
    assert only(make_batch([event])).contents == []


def test_custom_data_is_the_events_custom_attributes() -> None:
    attributes = {"store": "SF-01", "lane": 3, "staffed": True, "tags": ["a"], "nested": {"a": 1}, "none": None}
    conversion = only(make_batch([commerce_event(custom_attributes=attributes)]))
    assert dict(conversion.custom_data) == {"store": "SF-01", "lane": 3, "staffed": True}


@pytest.mark.parametrize("attributes", [None, "store=SF", [], {}])
def test_missing_custom_attributes_give_empty_custom_data(attributes: Any) -> None:
    assert dict(only(make_batch([commerce_event(custom_attributes=attributes)])).custom_data) == {}


@pytest.mark.parametrize(("transaction_id", "order_id"), [("T-1", "T-1"), (9001, "9001"), (None, None), ("  ", None)])
def test_order_id_is_the_transaction_id(transaction_id: Any, order_id: str | None) -> None:
    event = commerce_event(product_action={"transaction_id": transaction_id})
    assert only(make_batch([event])).order_id == order_id


# ---- event id ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"source_message_id": "smid", "message_id": "mid", "event_id": 5}, "smid"),
        ({"source_message_id": None, "message_id": "mid", "event_id": 5}, "mid"),
        ({"source_message_id": "", "event_id": 5}, "5"),
    ],
)
def test_event_id_prefers_source_message_id(ids: dict[str, Any], expected: str) -> None:
    assert only(make_batch([commerce_event(**ids)]), CAPI).event_id == expected


def test_event_id_is_stable_across_redeliveries_without_ids() -> None:
    first = commerce_event("purchase", source_message_id=None)
    second = commerce_event("purchase", source_message_id=None, product_action={"transaction_id": "T-2"})
    body = make_batch([first, second])
    ids = [conversion.event_id for conversion in run(body, CAPI).conversions]
    again = [conversion.event_id for conversion in run(copy.deepcopy(body), CAPI, now=NOW + 600).conversions]
    assert ids == again
    assert len(set(ids)) == 2
    assert all(event_id for event_id in ids)


def test_event_id_survives_deeply_nested_custom_attributes() -> None:
    # orjson.loads accepts nesting far deeper than a canonical re-serialisation might.
    deep: Any = "leaf"
    for _ in range(400):
        deep = [deep]
    event = commerce_event(source_message_id=None, custom_attributes={"deep": deep})
    assert only(make_batch([event]), CAPI).event_id


def test_event_id_is_left_out_for_the_offline_conversions_api() -> None:
    # That API has no event_id; hashing id-less events for it would be wasted work.
    assert only(make_batch([commerce_event(source_message_id=None)]), OFFLINE).event_id is None


# ---- limited data use --------------------------------------------------------------------------

CCPA_OPTED_OUT = {"ccpa": {"data_sale_opt_out": {"consented": True, "timestamp_unixtime_ms": 0}}}
CCPA_NOT_OPTED_OUT = {"ccpa": {"data_sale_opt_out": {"consented": False, "timestamp_unixtime_ms": 0}}}

LDU_CASES = [
    ("never", CCPA_OPTED_OUT, "US", "CA", None),
    ("always", None, "US", "CA", Ldu(country=1, state=1000)),
    ("always", None, "us", "California", Ldu(country=1, state=1000)),
    ("always", None, "US", "CO", Ldu(country=1, state=1001)),
    ("always", None, "US", "Oregon", Ldu(country=1, state=1004)),
    ("always", None, "US", "TX", Ldu(country=1, state=1005)),
    ("always", None, "US", "New Jersey", Ldu(country=1, state=1010)),
    ("always", None, "US", "ZZ", Ldu(country=1, state=0)),
    ("always", None, "US", None, Ldu(country=1, state=0)),
    ("always", None, "DE", "CA", Ldu(country=0, state=0)),
    ("always", None, None, "CA", Ldu(country=0, state=0)),
    ("always", None, None, None, Ldu(country=0, state=0)),
    ("opted_out", CCPA_OPTED_OUT, "US", "CA", Ldu(country=1, state=1000)),
    ("opted_out", CCPA_NOT_OPTED_OUT, "US", "CA", None),
    ("opted_out", None, "US", "CA", None),
    ("opted_out", {"ccpa": {"data_sale_opt_out": {"consented": "true"}}}, "US", "CA", None),
]


@pytest.mark.parametrize(("mode", "consent_state", "country", "state", "ldu"), LDU_CASES)
def test_limited_data_use_per_mode(
    mode: str, consent_state: dict[str, Any] | None, country: str | None, state: str | None, ldu: Ldu | None
) -> None:
    attributes = {"$firstname": "Jane"}
    if country is not None:
        attributes["$Country"] = country
    if state is not None:
        attributes["$State"] = state
    body = make_batch(user_attributes=attributes)
    if consent_state is not None:
        body["consent_state"] = consent_state
    assert run(body, settings(SEND_CCPA_LIMITED_DATA_USE=mode)).ldu == ldu


# The user's country, in any spelling the country key takes, is one answer for the whole batch: LDU's "in
# the US", the region the phone key reads a national number in, and the one custom data screens numbers in
# (no country and no DEFAULT_COUNTRY: no region, so neither takes a national number for a phone number).
@pytest.mark.parametrize(("country", "in_us"), [("USA", True), ("\u200bUnited States", True), ("Atlantis", False)])
def test_ldu_the_phone_key_and_the_custom_data_screen_agree_on_the_country(country: str, in_us: bool) -> None:
    national = "(650) 555-1212"  # a US number as Americans write it
    event = commerce_event(custom_attributes={"store": "SF-01", "contact": national})
    body = make_batch([event], user_attributes={"$country": country, "$mobile": national})
    mapped = run(body, settings(SEND_CCPA_LIMITED_DATA_USE="always"))
    assert mapped.ldu == (Ldu(country=1, state=0) if in_us else Ldu(country=0, state=0))
    assert ("phone" in mapped.keys.values) == in_us  # Meta matches E.164: a national number needs a country
    if in_us:
        assert mapped.keys.values["phone"] == (sha("16505551212"),)
    [conversion] = mapped.conversions
    assert conversion.custom_data == ({"store": "SF-01"} if in_us else {"store": "SF-01", "contact": national})


# ---- both identity shapes ----------------------------------------------------------------------


def sha(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


@pytest.mark.parametrize(
    "identities",
    [
        [
            {"identity_type": "email", "identity": "Jane.Doe@Example.com ", "timestamp_unixtime_ms": 1},
            {"identity_type": "customer_id", "identity": "123"},
            {"identity_type": "other", "identity": "ignored"},
            "not an identity",
        ],
        {"email": "Jane.Doe@Example.com ", "customerid": "123", "other": "ignored"},
        {"email": "Jane.Doe@Example.com ", "customer_id": "123"},
    ],
    ids=["outbound_array", "inbound_map_sdk", "inbound_map"],
)
def test_both_identity_shapes_give_the_same_keys(identities: Any) -> None:
    mapped = run(make_batch(user_identities=identities, user_attributes={}, device_info={}))
    assert mapped.keys.values == {"email": (sha("jane.doe@example.com"),), "external_id": ("123",)}


def test_products_outside_meta_quantities_count_neither_in_value_nor_contents() -> None:
    products = [
        {"id": "a", "price": 10.0, "quantity": 3},
        {"id": "b", "price": 10.0, "quantity": -2},
        {"id": "c", "price": 5.0, "quantity": 0},
        {"id": "d", "price": 1.0, "quantity": 2**31},
    ]
    conversion = only(make_batch([commerce_event("add_to_cart", products=products)]))
    assert [content["id"] for content in conversion.contents] == ["a"]
    assert conversion.value == 30.0
