"""The Graph stand-in refuses the new fields as Meta would, so an end-to-end test fails if we send a wrong type.

Meta's rules: customer-information-parameters (`db` hashed; `lead_id`, `page_id`, `ctwa_clid` not hashed),
server-event (`opt_out` a boolean; an unknown field refused: 'Unexpected key "…" on param "$['data'][0]"',
facebook-nodejs-business-sdk#258; `app` events need app_data, #233 and #251), original-event (event_name,
event_time, order_id, event_id with their types), custom-data (net_revenue, predicted_ltv numbers). The
Offline Conversions API's events have none of the Conversions API's fields (marketing-api/offline-conversions).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from localdev.graph_stub import event_problem

HASHED = hashlib.sha256(b"19970216").hexdigest()


def conversions_api_event(**fields: Any) -> dict[str, Any]:
    event = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "action_source": "physical_store",
        "event_id": "m-1",
        "user_data": {"em": hashlib.sha256(b"jane@example.com").hexdigest()},
        "custom_data": {"value": 10.0, "currency": "USD"},
    }
    for name, value in fields.items():
        if name.startswith("user_data.") or name.startswith("custom_data."):
            part, field = name.split(".", 1)
            event[part][field] = value
        else:
            event[name] = value
    return event


ACCEPTED = [
    {"user_data.db": HASHED},
    {"user_data.db": [HASHED, hashlib.sha256(b"19970217").hexdigest()]},
    {"user_data.lead_id": "4234567890123"},
    {"user_data.lead_id": 4234567890123},  # Meta's page types it as an integer
    {"user_data.page_id": "102938475610293"},
    {"user_data.ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0N"},
    {"opt_out": True},
    {"opt_out": False},
    {"original_event_data": {"event_name": "Purchase", "event_time": 1_700_000_000, "order_id": "T-1"}},
    {"original_event_data": {"event_name": "Purchase", "event_id": "m-0"}},
    {"custom_data.net_revenue": 12.5, "custom_data.predicted_ltv": 300},
    {"custom_data.net_revenue": -2.0},
    {"action_source": "app", "app_data": {"advertiser_tracking_enabled": 1, "application_tracking_enabled": 1}},
]

REFUSED = [
    ({"user_data.db": "19970216"}, "db must be SHA-256 hex"),  # unhashed
    ({"user_data.lead_id": hashlib.sha256(b"4234567890123").hexdigest()}, "lead_id must be a Facebook id"),
    ({"user_data.lead_id": "l:4234567890123"}, "lead_id must be a Facebook id"),
    ({"user_data.lead_id": "18446744073709551616"}, "lead_id must be a Facebook id"),
    ({"user_data.lead_id": True}, "lead_id must be a Facebook id"),
    ({"user_data.page_id": "my-page"}, "page_id must be a Facebook id"),
    ({"user_data.ctwa_clid": ""}, "ctwa_clid must be a non-empty string"),
    ({"user_data.ctwa_clid": 12345}, "ctwa_clid must be a non-empty string"),
    ({"opt_out": "true"}, "opt_out must be a boolean"),
    ({"opt_out": 1}, "opt_out must be a boolean"),
    ({"original_event_data": {}}, "original_event_data must be an object"),
    ({"original_event_data": {"event_name": "Purchase", "order": "T-1"}}, "original_event_data must be an object"),
    ({"original_event_data": {"event_name": "Purchase", "event_time": "1700000000"}}, "event_time must be an integer"),
    ({"original_event_data": {"event_name": "Purchase", "order_id": 1}}, "order_id must be a string"),
    ({"custom_data.net_revenue": "12.5"}, "net_revenue must be a number"),
    ({"custom_data.predicted_ltv": True}, "predicted_ltv must be a number"),
    ({"action_source": "app"}, "advertiser_tracking_enabled' is required"),
    ({"advertiser_tracking_enabled": 1}, 'Unexpected key "advertiser_tracking_enabled"'),
]


@pytest.mark.parametrize("fields", ACCEPTED)
def test_what_meta_takes_is_accepted(fields: dict[str, Any]) -> None:
    assert event_problem(conversions_api_event(**fields), "conversions_api") is None


@pytest.mark.parametrize(("fields", "problem"), REFUSED)
def test_what_meta_refuses_is_refused(fields: dict[str, Any], problem: str) -> None:
    assert problem in (event_problem(conversions_api_event(**fields), "conversions_api") or "")


@pytest.mark.parametrize(
    "field",
    [
        ("opt_out", True),
        ("original_event_data", {"event_name": "Purchase", "order_id": "T-1"}),
        ("action_source", "physical_store"),
        ("user_data", {}),
    ],
)
def test_the_offline_conversions_api_takes_none_of_the_conversions_apis_fields(field: tuple[str, Any]) -> None:
    event = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "match_keys": {"doby": hashlib.sha256(b"1997").hexdigest(), "dobm": hashlib.sha256(b"02").hexdigest()},
        "value": 10.0,
        "currency": "USD",
    }
    assert event_problem(event, "offline_conversions") is None
    name, value = field
    assert event_problem({**event, name: value}, "offline_conversions") == f'Unexpected key "{name}"'
