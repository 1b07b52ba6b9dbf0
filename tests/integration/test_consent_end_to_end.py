"""Consent and Meta's other fields end to end: the real handler, moto, and the Graph stand-in, which checks the
new fields' types and hashing as Meta would (localdev/graph_stub.py; the rules: tests/unit/test_consent.py,
test_event_user_data.py, test_date_of_birth_key.py, test_value_fields.py, test_original_event.py,
test_action_source_app.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.integration.test_telemetry import emitted, metric_values
from tests.support import NOW_MS, api_event, commerce_event, make_batch

CTWA_CLID = "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0N"


def consent(gdpr: dict[str, bool] | None = None, ccpa_opted_out: bool | None = None) -> dict[str, Any]:
    """A consent_state as mParticle's webhook writes it."""
    state: dict[str, Any] = {}
    if gdpr is not None:
        state["gdpr"] = {
            purpose: {"consented": given, "document": "v1", "timestamp_unixtime_ms": NOW_MS}
            for purpose, given in gdpr.items()
        }
    if ccpa_opted_out is not None:
        state["ccpa"] = {"data_sale_opt_out": {"consented": ccpa_opted_out, "timestamp_unixtime_ms": NOW_MS}}
    return state


def store_batch(**fields: Any) -> dict[str, Any]:
    events = [
        commerce_event(),
        commerce_event("add_to_cart", source_message_id="msg-cart"),
        {"event_type": "screen_view"},
    ]
    return make_batch(events, **fields)


@pytest.mark.parametrize(
    ("gdpr", "forwarded"),
    [
        (None, False),
        ({"marketing": False}, False),
        ({"Marketing": True}, True),
        ({"marketing": True, "ads": False}, True),
    ],
)
def test_the_gdpr_gate_against_the_graph_stand_in(
    function_env, invoke, graph, api, capsys, gdpr: dict[str, bool] | None, forwarded: bool
) -> None:
    function_env(FACEBOOK_API=api, REQUIRED_GDPR_PURPOSES="marketing")
    capsys.readouterr()
    fields = {"consent_state": consent(gdpr)} if gdpr is not None else {}
    answer = invoke(api_event(store_batch(**fields)))
    assert answer.status == 200, answer.body
    values = metric_values(emitted(capsys.readouterr().out))
    if forwarded:
        assert (answer.body["forwarded"], answer.body["skipped"]) == (2, {"not_commerce_event": 1})
        assert len(graph.events) == 2
        assert ("EventsSkippedByReason", "no_consent") not in values
    else:
        assert (answer.body["forwarded"], answer.body["skipped"]) == (0, {"no_consent": 3})
        assert graph.received == []  # nothing of the batch reached Facebook
        assert values[("EventsSkippedByReason", "no_consent")] == 3


@pytest.mark.parametrize("opted_out", [True, False])
def test_a_ccpa_opt_out_reaches_facebook_as_opt_out(function_env, invoke, graph, api, opted_out: bool) -> None:
    function_env(FACEBOOK_API=api, SEND_CCPA_LIMITED_DATA_USE="never")
    answer = invoke(api_event(store_batch(consent_state=consent(ccpa_opted_out=opted_out))))
    assert (answer.status, answer.body["forwarded"]) == (200, 2), answer.body
    sent = [event.get("opt_out") for event in graph.events]
    # The Offline Conversions API has no opt_out (the stand-in refuses a field Meta does not know).
    assert sent == ([True, True] if opted_out and api == "conversions_api" else [None, None])
    assert all(request.status == 200 for request in graph.received)


def test_meta_other_fields_reach_facebook_with_metas_types(function_env, invoke, graph) -> None:
    function_env(
        FACEBOOK_API="conversions_api",
        DATE_OF_BIRTH_ATTRIBUTE="birthday",
        CUSTOM_EVENT_MAPPING="Margin Added=AppendValue",
    )
    call = commerce_event(
        custom_flags={"Facebook.ActionSource": "phone_call", "Facebook.LeadId": "l:4234567890123"},
        custom_attributes={"Facebook.PageId": "102938475610293", "net_revenue": "12.50", "predicted_ltv": 300},
    )
    chat = commerce_event("add_to_cart", source_message_id="msg-chat", custom_flags={"Facebook.CtwaClid": CTWA_CLID})
    margin = {
        "event_type": "custom_event",
        "data": {
            "event_name": "Margin Added",
            "timestamp_unixtime_ms": NOW_MS - 60_000,
            "source_message_id": "msg-margin",
            "custom_attributes": {
                "value": "4.20",
                "currency": "USD",
                "original_event_name": "Purchase",
                "original_order_id": "T-1",
                "original_event_time": str(NOW_MS - 3_600_000),
            },
        },
    }
    attributes = {"$firstname": "Jane", "$country": "US", "birthday": "2/16/1997"}
    answer = invoke(api_event(make_batch([call, chat, margin], user_attributes=attributes)))
    assert (answer.status, answer.body["forwarded"], answer.body["skipped"]) == (200, 3, {}), answer.body
    purchase, cart, appended = graph.events
    db = hashlib.sha256(b"19970216").hexdigest()  # Meta's example: 2/16/1997 -> 19970216, hashed
    assert all(event["user_data"]["db"] == db for event in graph.events)
    assert (purchase["user_data"]["lead_id"], purchase["user_data"]["page_id"]) == ("4234567890123", "102938475610293")
    assert (purchase["custom_data"]["net_revenue"], purchase["custom_data"]["predicted_ltv"]) == (12.5, 300.0)
    assert cart["user_data"]["ctwa_clid"] == CTWA_CLID and "lead_id" not in cart["user_data"]
    assert appended["event_name"] == "AppendValue"
    assert appended["original_event_data"] == {
        "event_name": "Purchase",
        "event_time": (NOW_MS - 3_600_000) // 1000,
        "order_id": "T-1",
    }
    assert "db" in answer.body["match_keys"]


def test_the_issues_app_example_is_skipped_and_never_reaches_facebook(function_env, invoke, graph, capsys) -> None:
    function_env(FACEBOOK_API="conversions_api")
    capsys.readouterr()
    app_purchase = commerce_event(custom_flags={"Facebook.ActionSource": "app"})
    answer = invoke(api_event(make_batch([app_purchase])))
    assert (answer.status, answer.body["forwarded"], answer.body["skipped"]) == (200, 0, {"app_without_app_data": 1})
    assert answer.body.get("parked", 0) == 0 and graph.received == []
    assert metric_values(emitted(capsys.readouterr().out))[("EventsSkippedByReason", "app_without_app_data")] == 1


def test_the_stand_in_refuses_an_app_event_as_meta_does(graph) -> None:
    """What would have happened: Meta refuses the app event without app_data, with its whole request."""
    event = {
        "event_name": "Purchase",
        "event_time": NOW_MS // 1000 - 60,
        "action_source": "app",
        "user_data": {"em": hashlib.sha256(b"jane.doe@example.com").hexdigest()},
        "custom_data": {"value": 30.0, "currency": "USD"},
    }
    status, answer = graph.answer(
        "/v26.0/1234567890/events", "", {"data": [event], "access_token": graph.access_token}, "conversions_api"
    )
    assert status == 400
    assert "advertiser_tracking_enabled" in answer["error"]["message"]
