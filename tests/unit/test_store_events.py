"""Every store event a business records: custom events, the action source per event, richer
commerce data and development batches, table by table.

Every batch is built and serialised by mParticle's Python SDK (custom events with custom attributes and
custom flags, commerce events, both environments), mapped once and rendered for both APIs; every event
rendered must pass the Graph stand-in's own rules (localdev/graph_stub.py, `event_problem`), which check
it as Meta would. Expectations come from the issue, mParticle's and Meta's docs, never from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mparticle as mp
import pytest

from forwarder.action_source import INVALID_ACTION_SOURCE
from forwarder.batch import read_batch
from forwarder.event_names import STANDARD_EVENTS
from forwarder.event_time import MAX_AGE_SECONDS
from forwarder.event_user_data import FIELDS as EVENT_USER_DATA_FIELDS
from forwarder.mapping import Mapped, map_batch
from forwarder.original_event import INVALID_ORIGINAL_EVENT_TIME
from forwarder.render import render_events
from forwarder.settings import Settings, SettingsError, load_settings
from forwarder.skip_reasons import Skip
from forwarder.value import NET_REVENUE_WITHOUT_VALUE, VALUE_FIELDS
from localdev.graph_stub import ACTION_SOURCE_MAX_AGE_DAYS, META_STANDARD_EVENTS, event_problem
from tests.support import BOTH_APIS, NOW_MS

NOW = NOW_MS / 1000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BASE_ENV = {
    "OFFLINE_EVENT_SET_ID": "1234567890",
    "SECRET_ID": "facebook-offline-forwarder",
    "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
}
MAPPING = "Appointment Booked=Schedule,Store Visit=FindLocation,Loyalty Signup=CompleteRegistration"
ACTION_SOURCES = [
    "physical_store",
    "phone_call",
    "chat",
    "email",
    "system_generated",
    "website",
    "app",
    "business_messaging",
    "other",
]
CONTENT_DETAILS = {"content_ids", "num_items", "content_name", "content_category", "delivery_category"}


def settings(api: str = "conversions_api", **env: str) -> Settings:
    return load_settings({**BASE_ENV, "FACEBOOK_API": api, **env})


def custom(
    name: str,
    attributes: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
    age_ms: int = HOUR_MS,
    message_id: str = "m-custom",
) -> mp.AppEvent:
    """A custom event as an mParticle SDK logs it (`logEvent`): a name, a type, attributes and flags."""
    event = mp.AppEvent(name, "other")
    event.timestamp_unixtime_ms = NOW_MS - age_ms
    event.source_message_id = message_id
    if attributes is not None:
        event.custom_attributes = attributes
    if flags is not None:
        event.custom_flags = flags
    return event


def product(**fields: Any) -> mp.Product:
    item = mp.Product()
    for name, value in fields.items():
        setattr(item, name, value)
    return item


def commerce(
    action: str, products: list[mp.Product], flags: dict[str, Any] | None = None, **action_fields: Any
) -> mp.CommerceEvent:
    product_action = mp.ProductAction(action)
    product_action.products = products
    for name, value in action_fields.items():
        setattr(product_action, name, value)
    event = mp.CommerceEvent(product_action)
    event.timestamp_unixtime_ms = NOW_MS - HOUR_MS
    # Each event its own id, as mParticle's SDKs give them: Meta counts one event_name + event_id once.
    event.source_message_id = "-".join(["m", action, *map(str, action_fields.values())])
    event.currency_code = "USD"
    if flags is not None:
        event.custom_flags = flags
    return event


def sdk_batch(*events: Any, environment: str = "production") -> dict[str, Any]:
    """One user's batch, serialised by the SDK exactly as it travels."""
    batch = mp.Batch()
    batch.environment = environment
    identities = mp.UserIdentities()
    identities.email = "jane.doe@example.com"
    identities.customerid = "cust-123"
    batch.user_identities = identities
    batch.user_attributes = {"$Country": "US"}
    batch.events = list(events)
    return json.loads(json.dumps(mp.ApiClient.sanitize_for_serialization(batch)))


def mapped(body: dict[str, Any], config: Settings) -> Mapped:
    return map_batch(read_batch(body), config, NOW)


def rendered(body: dict[str, Any], config: Settings) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """The events sent, the skipped ones and the adjusted ones by reason; every event sent is one the Graph
    stand-in accepts."""
    result = mapped(body, config)
    events, unmatched = render_events(result, config)
    for event in events:
        assert event_problem(event, config.api.value) is None, (event_problem(event, config.api.value), event)
    return events, dict(result.skipped + unmatched), dict(result.adjusted)


def only(body: dict[str, Any], config: Settings) -> dict[str, Any]:
    events, skipped, _ = rendered(body, config)
    assert not skipped, skipped
    [event] = events
    return event


def commerce_data(event: dict[str, Any]) -> dict[str, Any]:
    """Where an API puts value, currency and contents: custom_data (Conversions API) or the event itself."""
    return event.get("custom_data", {}) if "user_data" in event else event


def test_the_forwarder_and_the_graph_stand_in_read_metas_tables_alike() -> None:
    assert STANDARD_EVENTS == META_STANDARD_EVENTS
    assert {source: seconds // (DAY_MS // 1000) for source, seconds in MAX_AGE_SECONDS.items()} == (
        ACTION_SOURCE_MAX_AGE_DAYS
    )
    assert sorted(ACTION_SOURCE_MAX_AGE_DAYS) == sorted(ACTION_SOURCES)


# ---- custom events: names ----------------------------------------------------------------------

# (settings, mParticle event name, {api: Facebook event name, or the reason it is skipped})
CUSTOM_NAMES = [
    ({"CUSTOM_EVENT_MAPPING": MAPPING}, "Appointment Booked", {"both": "Schedule"}),
    ({"CUSTOM_EVENT_MAPPING": MAPPING}, "appointment BOOKED", {"both": "Schedule"}),  # matched case-insensitively
    ({"CUSTOM_EVENT_MAPPING": MAPPING}, "  Store Visit ", {"both": "FindLocation"}),
    ({"CUSTOM_EVENT_MAPPING": MAPPING}, "Loyalty Signup", {"both": "CompleteRegistration"}),
    # A custom Facebook name: the Conversions API takes it, the Offline Conversions API only Meta's events.
    (
        {"CUSTOM_EVENT_MAPPING": "Call Booked=BookedByPhone"},
        "Call Booked",
        {"conversions_api": "BookedByPhone", "offline_conversions": "custom_name_unsupported"},
    ),
    ({"CUSTOM_EVENT_MAPPING": MAPPING}, "Newsletter", {"both": "unmapped_custom_event"}),
    ({}, "Appointment Booked", {"both": "unmapped_custom_event"}),
    # Unmapped ones under their own name, within Meta's rules for custom event names.
    (
        {"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"},
        "Newsletter Signup",
        {"conversions_api": "Newsletter Signup", "offline_conversions": "custom_name_unsupported"},
    ),
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "TRUE"}, "Lead", {"both": "Lead"}),  # a standard name is one on both
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"}, "x" * 50, {"conversions_api": "x" * 50}),
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"}, "x" * 51, {"both": "invalid_custom_event_name"}),
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"}, "Sign-up (web)", {"both": "invalid_custom_event_name"}),
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"}, "Café visit", {"both": "invalid_custom_event_name"}),
    ({"FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"}, "store.visit", {"both": "invalid_custom_event_name"}),
    # A mapped name wins over forwarding; the mapping names what the name may not be sent as.
    (
        {"CUSTOM_EVENT_MAPPING": "Sign-up (web)=CompleteRegistration", "FORWARD_UNMAPPED_CUSTOM_EVENTS": "true"},
        "sign-up (WEB)",
        {"both": "CompleteRegistration"},
    ),
    (
        {"CUSTOM_EVENT_MAPPING": MAPPING, "FORWARD_UNMAPPED_CUSTOM_EVENTS": "false"},
        "Other",
        {"both": "unmapped_custom_event"},
    ),
]


@pytest.mark.parametrize("api", BOTH_APIS)
@pytest.mark.parametrize(("env", "name", "expected"), CUSTOM_NAMES)
def test_custom_event_names(api: str, env: dict[str, str], name: str, expected: dict[str, str]) -> None:
    outcome = expected.get(api, expected.get("both", "custom_name_unsupported"))
    events, skipped, _ = rendered(sdk_batch(custom(name)), settings(api, **env))
    if outcome.islower() and "_" in outcome:  # a reason
        assert (events, skipped) == ([], {outcome: 1})
    else:
        assert [event["event_name"] for event in events] == [outcome]


def test_a_custom_event_without_a_name_is_unmapped() -> None:
    body = sdk_batch(custom("x"))
    del body["events"][0]["data"]["event_name"]
    config = settings(CUSTOM_EVENT_MAPPING=MAPPING, FORWARD_UNMAPPED_CUSTOM_EVENTS="true")
    assert rendered(body, config)[1] == {"unmapped_custom_event": 1}


def test_other_events_that_are_not_commerce_stay_not_commerce_events() -> None:
    screen = mp.ScreenViewEvent(screen_name="Store locator")
    session = mp.SessionStartEvent()
    config = settings(CUSTOM_EVENT_MAPPING="Store locator=FindLocation", FORWARD_UNMAPPED_CUSTOM_EVENTS="true")
    assert rendered(sdk_batch(screen, session), config)[1] == {"not_commerce_event": 2}


@pytest.mark.parametrize("api", BOTH_APIS)
def test_a_custom_event_keeps_its_custom_attributes_and_ids(api: str) -> None:
    attributes = {"store": "SF-01", "advisor": "A-7", "Facebook.ActionSource": "phone_call"}
    event = only(sdk_batch(custom("Appointment Booked", attributes)), settings(api, CUSTOM_EVENT_MAPPING=MAPPING))
    # The action source attribute is an instruction to the integration, never custom data.
    assert event["custom_data"] == {"store": "SF-01", "advisor": "A-7"}
    assert event["event_time"] == (NOW_MS - HOUR_MS) // 1000
    assert ("event_id" in event) == (api == "conversions_api")
    assert event.get("event_id", "m-custom") == "m-custom"


# ---- custom events: value and currency ---------------------------------------------------------

# (settings, custom attributes, (value, currency) sent or None)
CUSTOM_VALUES = [
    ({}, {"value": "25.50"}, (25.5, "USD")),  # DEFAULT_CURRENCY when there is no currency attribute
    ({}, {"Revenue": 40, "CURRENCY": "eur"}, (40.0, "EUR")),  # names matched case-insensitively
    ({}, {"value": "n/a", "revenue": 12}, (12.0, "USD")),  # the first valid of the names, in order
    ({}, {"value": 9, "revenue": 12}, (9.0, "USD")),
    ({}, {"value": 0}, None),  # Meta refuses a value of 0 or less
    ({}, {"value": -3, "currency": "EUR"}, None),
    ({}, {"value": True}, None),
    ({}, {"value": 10, "currency": "Dollars"}, None),  # not an ISO 4217 code: the value is dropped
    ({}, {"value": 10, "currency": " "}, (10.0, "USD")),
    ({}, {"amount": 10}, None),
    ({"DEFAULT_CURRENCY": "GBP"}, {"value": 10}, (10.0, "GBP")),
    ({"CUSTOM_EVENT_VALUE_ATTRIBUTES": "Amount, deposit"}, {"deposit": 5, "amount": "7.5"}, (7.5, "USD")),
    ({"CUSTOM_EVENT_VALUE_ATTRIBUTES": "amount"}, {"value": 10}, None),
    ({"CUSTOM_EVENT_CURRENCY_ATTRIBUTE": "Curr"}, {"value": 3, "curr": "jpy", "currency": "EUR"}, (3.0, "JPY")),
]


@pytest.mark.parametrize("api", BOTH_APIS)
@pytest.mark.parametrize(("env", "attributes", "expected"), CUSTOM_VALUES)
def test_custom_event_value_and_currency(
    api: str, env: dict[str, str], attributes: dict[str, Any], expected: tuple[float, str] | None
) -> None:
    config = settings(api, CUSTOM_EVENT_MAPPING="Deposit Paid=Lead", **env)
    fields = commerce_data(only(sdk_batch(custom("Deposit Paid", attributes)), config))
    assert ((fields["value"], fields["currency"]) if "value" in fields else None) == expected


@pytest.mark.parametrize("api", BOTH_APIS)
@pytest.mark.parametrize(
    ("attributes", "outcome"),
    [
        ({"value": "49.90", "currency": "USD"}, None),
        ({}, "purchase_without_value"),
        ({"value": 0}, "purchase_without_value"),
        ({"value": 49.9, "currency": "US Dollars"}, "invalid_currency"),
    ],
)
def test_a_custom_event_sent_as_a_purchase_follows_metas_purchase_rules(
    api: str, attributes: dict[str, Any], outcome: str | None
) -> None:
    config = settings(api, CUSTOM_EVENT_MAPPING="Phone Order=Purchase")
    events, skipped, _ = rendered(sdk_batch(custom("Phone Order", attributes)), config)
    if outcome is None:
        [event] = events
        assert (commerce_data(event)["value"], commerce_data(event)["currency"]) == (49.9, "USD")
    else:
        assert (events, skipped) == ([], {outcome: 1})


# ---- action source -----------------------------------------------------------------------------

# (settings, custom flags, custom attributes, action source sent, adjusted)
ACTION_SOURCE_CASES = [
    ({}, None, None, "physical_store", {}),
    ({"DEFAULT_ACTION_SOURCE": "phone_call"}, None, None, "phone_call", {}),
    ({"DEFAULT_ACTION_SOURCE": "CHAT"}, None, None, "chat", {}),
    ({}, {"Facebook.ActionSource": "chat"}, None, "chat", {}),
    ({}, {"Facebook.ActionSource": ["email"]}, None, "email", {}),  # a flag may be a list of strings
    ({}, {"Facebook.ActionSource": ["email", "chat"]}, None, "email", {}),
    ({}, {"Facebook.ActionSource": " Phone_Call "}, None, "phone_call", {}),
    ({}, None, {"Facebook.ActionSource": "system_generated"}, "system_generated", {}),
    ({}, {"Facebook.ActionSource": "chat"}, {"Facebook.ActionSource": "email"}, "chat", {}),  # the flag first
    ({"DEFAULT_ACTION_SOURCE": "other"}, {"Other.Flag": "x"}, {"facebook.actionsource": "chat"}, "other", {}),
    # Not one of Meta's values: the default, counted.
    ({}, {"Facebook.ActionSource": "in store"}, None, "physical_store", {"invalid_action_source": 1}),
    ({}, {"Facebook.ActionSource": "offline"}, None, "physical_store", {"invalid_action_source": 1}),
    ({"DEFAULT_ACTION_SOURCE": "email"}, None, {"Facebook.ActionSource": 7}, "email", {"invalid_action_source": 1}),
    ({}, {"Facebook.ActionSource": [3]}, None, "physical_store", {"invalid_action_source": 1}),
    # Set but empty: as if absent.
    ({}, {"Facebook.ActionSource": ""}, None, "physical_store", {}),
    ({}, {"Facebook.ActionSource": []}, None, "physical_store", {}),
]


@pytest.mark.parametrize(("env", "flags", "attributes", "source", "adjusted"), ACTION_SOURCE_CASES)
@pytest.mark.parametrize("kind", ["custom", "commerce"])
def test_action_source_per_event(
    kind: str,
    env: dict[str, str],
    flags: dict[str, Any] | None,
    attributes: dict[str, Any] | None,
    source: str,
    adjusted: dict[str, int],
) -> None:
    if kind == "custom":
        event = custom("Appointment Booked", {"store": "SF-01", **(attributes or {})}, flags)
    else:
        event = commerce("add_to_cart", [product(id="sku-1", price=5.0)], flags)
        event.custom_attributes = {"store": "SF-01", **(attributes or {})}
    config = settings(CUSTOM_EVENT_MAPPING=MAPPING, **env)
    events, skipped, counted = rendered(sdk_batch(event), config)
    assert not skipped
    assert [sent["action_source"] for sent in events] == [source]
    assert counted == adjusted
    assert events[0]["custom_data"].get("store") == "SF-01"
    assert "Facebook.ActionSource" not in events[0]["custom_data"]


def test_the_offline_conversions_api_has_no_action_source() -> None:
    flags = {"Facebook.ActionSource": "not a source"}
    attributes = {"store": "SF-01", "Facebook.ActionSource": "chat"}
    config = settings("offline_conversions", CUSTOM_EVENT_MAPPING=MAPPING, DEFAULT_ACTION_SOURCE="email")
    events, skipped, adjusted = rendered(sdk_batch(custom("Store Visit", attributes, flags)), config)
    assert (skipped, adjusted) == ({}, {})  # nothing read, so nothing invalid to count
    assert "action_source" not in events[0]
    assert events[0]["custom_data"] == {"store": "SF-01"}


# Meta's windows: physical_store events up to 62 days old, every other action source up to 7; the Offline
# Conversions API took offline events up to 62 days old, whatever the flag says.
WINDOWS = [
    *[("conversions_api", "physical_store", days, days < 62) for days in (1, 6.9, 7.1, 61.9, 62.1)],
    # `app` is never sent, whatever its age (tests/unit/test_action_source_app.py).
    *[
        ("conversions_api", source, days, days < 7)
        for source in ACTION_SOURCES[1:]
        if source != "app"
        for days in (6.9, 7.1)
    ],
    *[("offline_conversions", source, days, days < 62) for source in ("chat", "phone_call") for days in (7.1, 62.1)],
]


@pytest.mark.parametrize(("api", "source", "days", "sent"), WINDOWS)
def test_each_action_source_keeps_metas_time_window(api: str, source: str, days: float, sent: bool) -> None:
    event = custom("Appointment Booked", flags={"Facebook.ActionSource": source}, age_ms=int(days * DAY_MS))
    events, skipped, _ = rendered(sdk_batch(event), settings(api, CUSTOM_EVENT_MAPPING=MAPPING))
    assert (len(events), skipped) == ((1, {}) if sent else (0, {"too_old": 1}))


def test_an_invalid_action_source_takes_the_defaults_window() -> None:
    event = custom("Store Visit", flags={"Facebook.ActionSource": "shop"}, age_ms=30 * DAY_MS)
    events, _, adjusted = rendered(sdk_batch(event), settings(CUSTOM_EVENT_MAPPING=MAPPING))
    assert [sent["action_source"] for sent in events] == ["physical_store"]
    assert adjusted == {"invalid_action_source": 1}
    old_phone_default = settings(CUSTOM_EVENT_MAPPING=MAPPING, DEFAULT_ACTION_SOURCE="phone_call")
    assert rendered(sdk_batch(event), old_phone_default)[1] == {"too_old": 1}


# ---- richer commerce data ----------------------------------------------------------------------

SHIRT = {"id": "sku-1", "name": "Oxford Shirt", "brand": "Acme", "category": "Shirts", "price": 40.0, "quantity": 2.0}
SOCKS = {"id": "sku-2", "name": "Wool Socks", "category": "Socks", "price": 5.0, "quantity": 3.0}

# (product action, products, custom flags, the Conversions API's content fields)
CONTENT_CASES = [
    (
        "purchase",
        [SHIRT],
        None,
        {
            "content_ids": ["sku-1"],
            "num_items": 2,
            "content_name": "Oxford Shirt",
            "content_category": "Shirts",
            "delivery_category": "in_store",
        },
    ),
    (
        "purchase",
        [SHIRT, SOCKS],
        None,
        {"content_ids": ["sku-1", "sku-2"], "num_items": 5, "delivery_category": "in_store"},
    ),
    # A purchase over the phone is not delivered in the store.
    (
        "purchase",
        [SHIRT],
        {"Facebook.ActionSource": "phone_call"},
        {"content_ids": ["sku-1"], "num_items": 2, "content_name": "Oxford Shirt", "content_category": "Shirts"},
    ),
    ("checkout", [SHIRT, SOCKS], None, {"content_ids": ["sku-1", "sku-2"], "num_items": 5}),
    (
        "view_detail",
        [SHIRT],
        None,
        {"content_ids": ["sku-1"], "content_name": "Oxford Shirt", "content_category": "Shirts"},
    ),
    ("add_to_cart", [SHIRT, SOCKS], None, {"content_ids": ["sku-1", "sku-2"]}),
    ("add_to_cart", [{"id": "sku-3"}], None, {"content_ids": ["sku-3"]}),  # no name, no category
    ("add_to_wishlist", [], None, {}),
]


@pytest.mark.parametrize(("action", "products", "flags", "details"), CONTENT_CASES)
def test_content_details_on_the_conversions_api(
    action: str, products: list[dict[str, Any]], flags: dict[str, Any] | None, details: dict[str, Any]
) -> None:
    event = commerce(action, [product(**fields) for fields in products], flags, transaction_id="T-9")
    custom_data = only(sdk_batch(event), settings())["custom_data"]
    assert {key: custom_data[key] for key in CONTENT_DETAILS & custom_data.keys()} == details
    titles = [content.get("title") for content in custom_data.get("contents", [])]
    assert titles == [fields.get("name") for fields in products]  # the product's name is the content's title


@pytest.mark.parametrize(("action", "products", "flags", "details"), CONTENT_CASES)
def test_the_offline_conversions_api_has_no_content_details(
    action: str, products: list[dict[str, Any]], flags: dict[str, Any] | None, details: dict[str, Any]
) -> None:
    event = commerce(action, [product(**fields) for fields in products], flags, transaction_id="T-9")
    sent = only(sdk_batch(event), settings("offline_conversions"))
    assert CONTENT_DETAILS.isdisjoint(sent)
    assert CONTENT_DETAILS.isdisjoint(sent.get("custom_data", {}))
    assert all("title" not in content for content in sent.get("contents", []))
    assert [content["id"] for content in sent.get("contents", [])] == details.get("content_ids", [])


def test_custom_attributes_never_stand_in_for_content_details() -> None:
    event = commerce("add_to_cart", [product(**SHIRT), product(**SOCKS)])
    event.custom_attributes = {"content_name": "forged", "num_items": 99, "delivery_category": "drone", "lane": 4}
    custom_data = only(sdk_batch(event), settings())["custom_data"]
    assert custom_data["lane"] == 4
    assert {"content_name", "num_items", "delivery_category"}.isdisjoint(custom_data)


# ---- development batches -----------------------------------------------------------------------

# (DEVELOPMENT_BATCHES, TEST_EVENT_CODE, api, environment, the request's test_event_code, or "skipped")
DEVELOPMENT_CASES = [
    (None, "TEST123", "conversions_api", "development", "TEST123"),  # test is the default
    ("test", "TEST123", "conversions_api", "development", "TEST123"),
    ("test", None, "conversions_api", "development", "skipped"),
    ("test", "TEST123", "offline_conversions", "development", "skipped"),  # that API cannot mark a test
    ("send", "TEST123", "conversions_api", "development", None),
    ("send", None, "conversions_api", "development", None),
    ("send", "TEST123", "offline_conversions", "development", None),
    ("skip", "TEST123", "conversions_api", "development", "skipped"),
    ("skip", None, "offline_conversions", "development", "skipped"),
    # Production batches are sent, and never with the test code.
    *[
        (mode, code, api, "production", None)
        for mode in ("test", "send", "skip")
        for code in ("TEST123", None)
        for api in BOTH_APIS
    ],
]


@pytest.mark.parametrize(("mode", "code", "api", "environment", "expected"), DEVELOPMENT_CASES)
def test_development_batches(mode: str | None, code: str | None, api: str, environment: str, expected: str | None):
    env = {"CUSTOM_EVENT_MAPPING": MAPPING}
    if mode is not None:
        env["DEVELOPMENT_BATCHES"] = mode
    if code is not None:
        env["TEST_EVENT_CODE"] = code
    body = sdk_batch(commerce("purchase", [product(**SHIRT)]), custom("Store Visit"), environment=environment)
    batch = read_batch(body)
    config = settings(api, **env)
    [destination] = config.destinations("Purchase", batch.development)  # as the webhook sends and parks it
    events, skipped, _ = rendered(body, config)
    if expected == "skipped":
        assert (events, skipped) == ([], {"development_batch": 2})
    else:
        assert (len(events), skipped) == (2, {})
        assert destination.request_fields().get("test_event_code") == expected
        assert destination.record()["test_event_code"] == expected  # what a parked event is replayed with


@pytest.mark.parametrize(("environment", "development"), [("development", True), ("production", False)])
def test_the_sdks_environment_marks_a_development_batch(environment: str, development: bool) -> None:
    assert read_batch(sdk_batch(environment=environment)).development is development


@pytest.mark.parametrize("environment", [None, "", "Production", "staging", 1, ["development"]])
def test_anything_but_development_is_production(environment: Any) -> None:
    body = sdk_batch()
    body["environment"] = environment
    assert read_batch(body).development is False
    body["environment"] = " DEVELOPMENT "
    assert read_batch(body).development is True


# ---- one store's day, both APIs ----------------------------------------------------------------


def store_day(environment: str = "production") -> dict[str, Any]:
    """What a store and its call centre record in a day, as the SDK uploads it."""
    return sdk_batch(
        commerce("purchase", [product(**SHIRT)], transaction_id="T-1"),
        commerce("purchase", [product(**SOCKS)], {"Facebook.ActionSource": "phone_call"}, transaction_id="T-2"),
        custom("Appointment Booked", {"value": 20, "currency": "USD"}, message_id="m-appointment"),
        custom("Store Visit", {"Facebook.ActionSource": "physical_store"}, message_id="m-visit"),
        custom("Loyalty Signup", flags={"Facebook.ActionSource": ["email"]}, message_id="m-signup"),
        custom("Chat Enquiry", flags={"Facebook.ActionSource": "chat"}, message_id="m-chat"),
        custom("Game Played", message_id="m-game"),
        mp.ScreenViewEvent(screen_name="Home"),
        environment=environment,
    )


DAY_ENV = {"CUSTOM_EVENT_MAPPING": MAPPING + ",Chat Enquiry=Contact"}


def test_one_store_day_on_the_conversions_api() -> None:
    events, skipped, adjusted = rendered(store_day(), settings(**DAY_ENV))
    assert [(event["event_name"], event["action_source"]) for event in events] == [
        ("Purchase", "physical_store"),
        ("Purchase", "phone_call"),
        ("Schedule", "physical_store"),
        ("FindLocation", "physical_store"),
        ("CompleteRegistration", "email"),
        ("Contact", "chat"),
    ]
    assert [event["custom_data"].get("delivery_category") for event in events[:2]] == ["in_store", None]
    assert (skipped, adjusted) == ({"unmapped_custom_event": 1, "not_commerce_event": 1}, {})


def test_one_store_day_on_the_offline_conversions_api_is_the_same_mapping() -> None:
    capi, _, _ = rendered(store_day(), settings(**DAY_ENV))
    events, skipped, _ = rendered(store_day(), settings("offline_conversions", **DAY_ENV))
    assert [event["event_name"] for event in events] == [event["event_name"] for event in capi]
    assert [event.get("value") for event in events] == [commerce_data(event).get("value") for event in capi]
    assert all("action_source" not in event for event in events)
    assert skipped == {"unmapped_custom_event": 1, "not_commerce_event": 1}


# ---- settings ----------------------------------------------------------------------------------


def test_the_defaults() -> None:
    config = settings()
    assert (config.custom_event_names, config.forward_unmapped_custom_events) == ({}, False)
    assert config.custom_event_value_attributes == ("value", "revenue")
    assert config.custom_event_currency_attribute == "currency"
    assert (config.default_action_source, config.development_batches) == ("physical_store", "test")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CUSTOM_EVENT_MAPPING", "leaky"),
        ("CUSTOM_EVENT_MAPPING", "Appointment=Leaky{Name}"),
        ("CUSTOM_EVENT_MAPPING", "=Schedule"),
        ("CUSTOM_EVENT_MAPPING", "Leaky=" + "A" * 51),
        ("CUSTOM_EVENT_MAPPING", "Leaky Visit=FindLocation,leaky visit=Schedule"),  # one name, twice
        ("CUSTOM_EVENT_MAPPING", "Leaky=Find=Location"),
        ("FORWARD_UNMAPPED_CUSTOM_EVENTS", "leaky"),
        ("FORWARD_UNMAPPED_CUSTOM_EVENTS", "yes-leaky"),
        ("CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "leaky,currency"),
        ("DEFAULT_ACTION_SOURCE", "leaky_store"),
        ("DEFAULT_ACTION_SOURCE", "offline-leaky"),
        ("DEVELOPMENT_BATCHES", "leaky"),
    ],
)
def test_an_invalid_setting_names_the_variable_and_never_its_value(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings(**{variable: value})
    message = str(raised.value)
    assert variable in message
    assert "leaky" not in message.lower()


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("", {}),
        (" , ", {}),
        ("Store Visit=FindLocation", {"store visit": "FindLocation"}),
        ("  Store Visit  =  FindLocation , ", {"store visit": "FindLocation"}),
        ("Sign-up (web)=Lead,Café=Cafe Visit", {"sign-up (web)": "Lead", "café": "Cafe Visit"}),
        ("STRASSE=A,Straße=B", None),  # the same name case-insensitively (casefold): refused
    ],
)
def test_custom_event_mapping_is_parsed(value: str, names: dict[str, str] | None) -> None:
    if names is None:
        with pytest.raises(SettingsError, match="CUSTOM_EVENT_MAPPING"):
            settings(CUSTOM_EVENT_MAPPING=value)
    else:
        assert settings(CUSTOM_EVENT_MAPPING=value).custom_event_names == names


# ---- the docs say it ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(page: str, title: str) -> str:
    """From a heading to the next heading of level 2 in docs/<page>."""
    text = (DOCS / page).read_text()
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_mapping_page_lists_every_skip_and_adjustment_reason() -> None:
    skipped = section("mapping.md", "## Skipped events")
    reasons = [reason.value for reason in Skip]
    assert [reason for reason in reasons if f"`{reason}`" not in skipped] == []
    adjusted = section("mapping.md", "## Adjusted events")
    reasons = [
        "event_time_from_batch",
        INVALID_ACTION_SOURCE,
        *(f"invalid_{field}" for field, _, _ in EVENT_USER_DATA_FIELDS),
        *(f"invalid_{field}" for field in VALUE_FIELDS),
        NET_REVENUE_WITHOUT_VALUE,
        INVALID_ORIGINAL_EVENT_TIME,
    ]
    assert [reason for reason in reasons if f"`{reason}`" not in adjusted] == []


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("CUSTOM_EVENT_MAPPING", "empty: none"),
        ("FORWARD_UNMAPPED_CUSTOM_EVENTS", "`false`"),
        ("CUSTOM_EVENT_VALUE_ATTRIBUTES", "`value,revenue`"),
        ("CUSTOM_EVENT_CURRENCY_ATTRIBUTE", "`currency`"),
        ("DEFAULT_ACTION_SOURCE", "`physical_store`"),
        ("DEVELOPMENT_BATCHES", "`test`"),
        ("TEST_EVENT_CODE", "unset"),
    ],
)
def test_the_configuration_page_documents_each_setting_beside_the_seeds(variable: str, default: str) -> None:
    rows = section("configuration.md", "## Variables").splitlines()
    [row] = [line for line in rows if line.startswith(f"| `{variable}` |")]
    assert row.endswith(f"| {default} |")
