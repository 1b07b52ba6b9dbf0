"""Hypothesis strategies for mParticle batches, and the invariants read_batch + map_batch + render_events
keep over them (`check`).

Whatever arrives, the pipeline either refuses a body that is not a batch (BatchError) or accounts for
every event, and everything it emits is something Meta accepts: a standard name (or, on the Conversions
API, a valid custom one), one of Meta's action sources and a time inside its window, at least one match
key, a positive finite value with a currency, and strict JSON. tests/unit/test_mapping_properties.py runs
the properties on a small budget (`make unit`); tests/integration/test_mapping_search.py runs them on a
large one, and checks that the strategies reach what the properties are about.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hypothesis import event
from hypothesis import strategies as st

from forwarder.batch import BatchError, read_batch
from forwarder.event_names import CUSTOM_EVENT_NAME
from forwarder.mapping import map_batch
from forwarder.render import render_events
from forwarder.settings import Settings, load_settings
from localdev.graph_stub import ACTION_SOURCE_MAX_AGE_DAYS, META_STANDARD_EVENTS

NOW = 1_790_000_000.0
DAY = 24 * 3600
OLDEST = NOW - 62 * DAY
NEWEST = NOW + 3600
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
CURRENCY = re.compile(r"[A-Z]{3}")
LDU_FIELDS = {"data_processing_options", "data_processing_options_country", "data_processing_options_state"}

CONFIGS = [
    load_settings(
        {
            "OFFLINE_EVENT_SET_ID": "1234567890",
            "SECRET_ID": "secret",
            "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
            "FACEBOOK_API": api,
            "SEND_CCPA_LIMITED_DATA_USE": ldu,
        }
    )
    for api in ("offline_conversions", "conversions_api")
    for ldu in ("never", "always", "opted_out")
] + [
    load_settings(
        {
            "OFFLINE_EVENT_SET_ID": "1234567890",
            "SECRET_ID": "secret",
            "PARKING_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked-batches",
            "FACEBOOK_API": api,
            "CUSTOM_EVENT_MAPPING": "Visit=FindLocation,Phone Order=Purchase,Call=Called By Phone",
            "FORWARD_UNMAPPED_CUSTOM_EVENTS": forward,
            "DEFAULT_ACTION_SOURCE": source,
        }
    )
    for api in ("offline_conversions", "conversions_api")
    for forward, source in (("true", "physical_store"), ("false", "chat"))
]

# ---- strategies --------------------------------------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

SUPPORTED_ACTIONS = ["add_to_cart", "add_to_wishlist", "checkout", "purchase", "view_detail"]
UNSUPPORTED_ACTIONS = ["refund", "remove_from_cart", "click", "checkout_option", "remove_from_wish_list", "unknown"]
# Mostly inside Meta's window, so that events do come out; also either side of it, as text, and junk.
timestamps = st.one_of(
    st.integers(int(OLDEST * 1000), int(NEWEST * 1000)),
    st.integers(int((NOW - 8 * DAY) * 1000), int(NEWEST * 1000)),  # either side of the 7 days of most sources
    st.integers(int(OLDEST * 1000), int(NEWEST * 1000)),
    st.integers(int(OLDEST * 1000) - 5 * DAY * 1000, int(NEWEST * 1000) + 5 * 3600 * 1000),
    st.integers(int(OLDEST * 1000), int(NEWEST * 1000)).map(str),
    json_values,
)
amounts = st.one_of(
    st.floats(-100, 1e6, allow_nan=False),
    st.integers(-10, 10**6),
    st.sampled_from(["12.5", "0", "-1", "abc", "1e400", "nan", ""]),
    st.floats(1e300, 1.7e308),
    st.none(),
)
products = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=8), st.integers()),
        "price": amounts,
        "quantity": amounts,
        "brand": st.text(max_size=8),
        "category": st.text(max_size=8),
    },
)
product_actions = st.fixed_dictionaries(
    {"action": st.sampled_from(SUPPORTED_ACTIONS) | st.sampled_from(UNSUPPORTED_ACTIONS)},
    optional={
        "total_amount": amounts,
        "transaction_id": st.one_of(st.text(max_size=8), st.integers()),
        "products": st.lists(products, max_size=3),
    },
)
action_source_values = st.sampled_from(
    ["physical_store", "phone_call", "chat", "email", "website", "Other", " app ", "", "shop", 7, None]
)
custom_flags = st.dictionaries(
    st.sampled_from(["Facebook.ActionSource", "Facebook.EventSourceUrl", "other"]),
    action_source_values | st.lists(action_source_values, max_size=2),
    max_size=2,
)
attribute_names = st.sampled_from(["value", "Revenue", "currency", "Facebook.ActionSource"]) | st.text(max_size=8)
commerce_events = st.fixed_dictionaries(
    {
        "event_type": st.just("commerce_event"),
        "data": st.fixed_dictionaries(
            {"product_action": product_actions, "timestamp_unixtime_ms": timestamps},
            optional={
                "currency_code": st.sampled_from(["USD", "eur", " gbp ", "", "US Dollars", "XX", 840]),
                "source_message_id": st.text(max_size=8),
                "custom_attributes": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
                "custom_flags": custom_flags,
            },
        ),
    }
)
custom_events = st.fixed_dictionaries(
    {
        "event_type": st.just("custom_event"),
        "data": st.fixed_dictionaries(
            {
                "event_name": st.sampled_from(
                    ["Visit", "VISIT ", "phone order", "Call", "Lead", "Store.Visit", "x" * 51]
                )
                | st.text(max_size=12),
                "timestamp_unixtime_ms": timestamps,
            },
            optional={
                "custom_event_type": st.sampled_from(["other", "location", "transaction"]),
                "source_message_id": st.text(max_size=8),
                "custom_attributes": st.dictionaries(attribute_names, amounts | json_values, max_size=4),
                "custom_flags": custom_flags,
            },
        ),
    }
)
other_events = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["custom_event", "screen_view", "session_start"])},
    optional={"data": json_values},
)
identity_values = st.sampled_from(
    ["Jane.Doe@Example.com ", "not-an-email", "", "  ", "A" * 64, "f" * 64, "cust-1", "é@ü.de"]
) | st.text(max_size=12)
identity_types = st.sampled_from(["email", "customer_id", "customerid", "Email", "other", "mobile_number"])
user_identities = st.one_of(
    st.dictionaries(identity_types, identity_values, max_size=3),
    st.lists(st.fixed_dictionaries({"identity_type": identity_types, "identity": identity_values}), max_size=3),
)
ATTRIBUTES = ["$firstname", "$FirstName", "$lastname", "$Gender", "$city", "$Country", "$State", "$zip"]
attribute_values = st.sampled_from(["Jane", "O'Doe", "Male", "f", "other", "US", "us", "CA", "San Francisco", "!!"])
user_attributes = st.dictionaries(st.sampled_from(ATTRIBUTES), attribute_values | st.text(max_size=10), max_size=6)
device_ids = st.sampled_from(
    ["6D92078A-8246-4BA4-AE5B-76104861E7DC", "00000000-0000-0000-0000-000000000000", "", "abc"]
) | st.text(max_size=40)
device_info = st.fixed_dictionaries(
    {}, optional={"ios_advertising_id": device_ids, "android_advertising_id": device_ids}
)
consent_states = st.fixed_dictionaries(
    {"ccpa": st.fixed_dictionaries({"data_sale_opt_out": st.fixed_dictionaries({"consented": st.booleans()})})}
)
valid_batches = st.fixed_dictionaries(
    {
        "events": st.tuples(
            st.lists(commerce_events, max_size=4),
            st.lists(custom_events, max_size=2),
            st.lists(other_events, max_size=1),
        ).map(lambda parts: parts[0] + parts[1] + parts[2]),
        "user_identities": user_identities,
        "user_attributes": user_attributes,
    },
    optional={
        "timestamp_unixtime_ms": timestamps,
        "batch_id": st.integers(0, 2**63),
        "source_request_id": st.text(max_size=8),
        "device_info": device_info,
        "consent_state": consent_states,
    },
)


@st.composite
def corrupted(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """The value with a few nodes replaced by arbitrary JSON, deleted or left alone."""
    if depth > 0 and draw(st.integers(0, 24)) == 0:
        return draw(json_values)
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if draw(st.integers(0, 24)) == 0:
                continue
            result[key] = draw(corrupted(item, depth + 1))
        return result
    if isinstance(value, list):
        return [draw(corrupted(item, depth + 1)) for item in value]
    return value


nearly_valid_batches = valid_batches.flatmap(corrupted)
BATCH_FIELDS = ["events", "user_identities", "user_attributes", "device_info", "consent_state", "timestamp_unixtime_ms"]
arbitrary_batches = st.one_of(
    st.dictionaries(st.sampled_from(BATCH_FIELDS) | st.text(max_size=8), json_values, max_size=6),
    st.fixed_dictionaries({"events": st.lists(json_values, max_size=4)}, optional={"user_identities": json_values}),
)
configs = st.sampled_from(CONFIGS)


# ---- the invariants ----------------------------------------------------------------------------


def is_batch(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("events", []), list | None)


def emitted(body: Any, config: Settings) -> list[dict[str, Any]]:
    return render_events(map_batch(read_batch(body), config, NOW), config)[0]


# Meta: the Offline Conversions API takes extern_id unhashed, the Conversions API the madid.
UNHASHED = {"offline_conversions": {"extern_id"}, "conversions_api": {"madid"}}


def check(body: Any, config: Settings) -> None:
    try:
        batch = read_batch(body)
    except BatchError:
        assert not is_batch(body)
        return
    assert is_batch(body)
    mapped = map_batch(batch, config, NOW)
    events, unmatched = render_events(mapped, config)

    assert mapped.received == len(body.get("events") or [])
    assert mapped.received == len(mapped.conversions) + sum(mapped.skipped.values())
    assert len(mapped.conversions) == len(events) + sum(unmatched.values())
    assert set(unmatched) <= {"no_match_key"}
    event(f"events emitted: {min(len(events), 3)}")

    for rendered in events:
        json.dumps(rendered, allow_nan=False)  # strict JSON: no NaN or Infinity
        name = rendered["event_name"]
        assert name in META_STANDARD_EVENTS or (
            config.api.value == "conversions_api" and CUSTOM_EVENT_NAME.fullmatch(name)
        )
        assert type(rendered["event_time"]) is int
        assert OLDEST <= rendered["event_time"] <= NEWEST
        if config.api.value == "offline_conversions":
            keys, commerce = rendered["match_keys"], rendered
            assert "action_source" not in rendered
        else:
            keys, commerce = rendered["user_data"], rendered.get("custom_data", {})
            assert rendered["action_source"] in ACTION_SOURCE_MAX_AGE_DAYS
            assert NOW - ACTION_SOURCE_MAX_AGE_DAYS[rendered["action_source"]] * DAY <= rendered["event_time"]
            assert isinstance(rendered["event_id"], str) and rendered["event_id"]
            assert "Facebook.ActionSource" not in commerce
        assert keys
        for name, value in keys.items():  # SHA-256 hex, one or an array, but what the API takes unhashed
            if name in UNHASHED[config.api.value]:
                assert isinstance(value, str) and value.strip() == value and value
            else:
                values = value if isinstance(value, list) else [value]
                assert values and len(set(values)) == len(values) and all(SHA256_HEX.fullmatch(v) for v in values)
        assert ("value" in commerce) == ("currency" in commerce)
        if "value" in commerce:
            assert math.isfinite(commerce["value"]) and commerce["value"] > 0
            assert CURRENCY.fullmatch(commerce["currency"])
        if rendered["event_name"] == "Purchase":
            assert "value" in commerce
        if config.ldu_mode.value == "never":
            assert LDU_FIELDS.isdisjoint(rendered)
        else:
            assert rendered.keys() >= LDU_FIELDS or LDU_FIELDS.isdisjoint(rendered)
