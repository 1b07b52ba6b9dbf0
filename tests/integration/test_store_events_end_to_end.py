"""Store events end to end: batches built by mParticle's Python SDK go through the real handler to
the Graph stand-in, which checks every event as Meta would (the rules: tests/unit/test_store_events.py).

`graph.events` are the events the stand-in accepted, so an event it would refuse (a custom name on the
Offline Conversions API, an action source outside Meta's list, an event older than its source's window)
fails these tests as it would fail the request at Facebook.
"""

from __future__ import annotations

from typing import Any

import mparticle as mp
import pytest

from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.graph_stub import Fault
from tests.support import api_event
from tests.unit.test_store_events import DAY_MS, MAPPING, SHIRT, commerce, custom, product, sdk_batch, store_day

DAY_ENV = {"CUSTOM_EVENT_MAPPING": MAPPING + ",Chat Enquiry=Contact"}


def test_a_store_day_reaches_facebook_on_both_apis(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api, TEST_EVENT_CODE="TEST123", **DAY_ENV)
    answer = invoke(api_event(store_day()))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 6
    assert answer.body["skipped"] == {"unmapped_custom_event": 1, "not_commerce_event": 1}
    names = ["Purchase", "Purchase", "Schedule", "FindLocation", "CompleteRegistration", "Contact"]
    assert [event["event_name"] for event in graph.events] == names
    [request] = graph.received
    assert "test_event_code" not in request.body  # a production batch, whatever TEST_EVENT_CODE says
    if api == "conversions_api":
        sources = [event["action_source"] for event in graph.events]
        assert sources == ["physical_store", "phone_call", "physical_store", "physical_store", "email", "chat"]
        assert graph.events[0]["custom_data"]["delivery_category"] == "in_store"
        assert graph.events[2]["custom_data"]["value"] == 20
    else:
        assert all("action_source" not in event for event in graph.events)
        assert graph.events[2]["value"] == 20


def test_custom_names_reach_the_conversions_api_and_are_skipped_before_the_offline_one(
    function_env, invoke, graph, api
):
    function_env(FACEBOOK_API=api, FORWARD_UNMAPPED_CUSTOM_EVENTS="true", CUSTOM_EVENT_MAPPING="Booked=BookedByPhone")
    body = sdk_batch(custom("Newsletter Signup"), custom("Booked"), custom("Sign-up (web)"), custom("Lead"))
    answer = invoke(api_event(body))
    assert answer.status == 200, answer.body
    if api == "conversions_api":
        assert [event["event_name"] for event in graph.events] == ["Newsletter Signup", "BookedByPhone", "Lead"]
        assert answer.body["skipped"] == {"invalid_custom_event_name": 1}
    else:  # that API takes Meta's event types only: without the skip, Facebook would refuse the request
        assert [event["event_name"] for event in graph.events] == ["Lead"]
        assert answer.body["skipped"] == {"custom_name_unsupported": 2, "invalid_custom_event_name": 1}


@pytest.mark.parametrize(
    ("flags", "age_days", "sent"),
    [
        ({"Facebook.ActionSource": "phone_call"}, 6, True),
        ({"Facebook.ActionSource": "phone_call"}, 8, False),  # Meta would refuse the whole request
        ({"Facebook.ActionSource": "physical_store"}, 61, True),
        (None, 61, True),  # DEFAULT_ACTION_SOURCE, physical_store
        ({"Facebook.ActionSource": "no such source"}, 61, True),  # the default, counted
    ],
)
def test_each_action_source_keeps_its_window_at_facebook(function_env, invoke, graph, flags, age_days, sent):
    function_env(FACEBOOK_API="conversions_api", CUSTOM_EVENT_MAPPING=MAPPING)
    fresh = custom("Store Visit", message_id="m-fresh")
    old = custom("Appointment Booked", flags=flags, age_ms=age_days * DAY_MS, message_id="m-old")
    answer = invoke(api_event(sdk_batch(fresh, old)))
    assert answer.status == 200, answer.body
    assert [event["event_id"] for event in graph.events] == (["m-fresh", "m-old"] if sent else ["m-fresh"])
    assert answer.body["skipped"] == ({} if sent else {"too_old": 1})
    invalid = flags is not None and flags["Facebook.ActionSource"] == "no such source"
    assert answer.body["adjusted"] == ({"invalid_action_source": 1} if invalid else {})


def development_day() -> dict[str, Any]:
    return sdk_batch(commerce("purchase", [product(**SHIRT)]), custom("Store Visit"), environment="development")


@pytest.mark.parametrize(
    ("env", "outcome"),
    [
        ({"TEST_EVENT_CODE": "TEST123"}, "TEST123"),
        ({}, "skipped"),
        ({"DEVELOPMENT_BATCHES": "send", "TEST_EVENT_CODE": "TEST123"}, None),
        ({"DEVELOPMENT_BATCHES": "skip", "TEST_EVENT_CODE": "TEST123"}, "skipped"),
    ],
)
def test_development_batches_at_facebook(function_env, invoke, graph, api, env, outcome):
    function_env(FACEBOOK_API=api, CUSTOM_EVENT_MAPPING=MAPPING, **env)
    if api == "offline_conversions" and outcome == "TEST123":
        outcome = "skipped"  # no test code on that API: test traffic would count as real
    answer = invoke(api_event(development_day()))
    assert answer.status == 200, answer.body
    if outcome == "skipped":
        assert (graph.received, answer.body["skipped"]) == ([], {"development_batch": 2})
    else:
        [request] = graph.received
        assert len(request.data) == 2
        assert request.body.get("test_event_code") == outcome


@pytest.mark.parametrize(("environment", "code"), [("development", "TEST123"), ("production", None)])
def test_a_parked_batch_is_replayed_as_what_it_was(aws, function_env, invoke, graph, environment, code):
    """One batch per invocation, each with its own test code: a development batch parked with TEST_EVENT_CODE
    is replayed as a test, a production one (sent beside it) without, whatever replay's environment says."""
    function_env(FACEBOOK_API="conversions_api", CUSTOM_EVENT_MAPPING=MAPPING, TEST_EVENT_CODE="TEST123")
    body = sdk_batch(custom("Store Visit"), environment=environment)
    assert invoke(api_event(sdk_batch(custom("Store Visit"), environment="development"))).status == 200
    assert graph.received[-1].body["test_event_code"] == "TEST123"
    graph.script(Fault.graph_error(100))
    assert invoke(api_event(body)).status == 422
    function_env(FACEBOOK_API="conversions_api", TEST_EVENT_CODE="VERIFY999")
    assert replay(load_settings()).delivered_events == 1
    assert graph.received[-1].body.get("test_event_code") == code


def test_the_action_source_attribute_never_reaches_facebook_as_custom_data(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api, CUSTOM_EVENT_MAPPING=MAPPING)
    attributes = {"Facebook.ActionSource": "phone_call", "advisor": "A-7"}
    event = commerce("purchase", [product(**SHIRT)])
    event.custom_attributes = attributes
    answer = invoke(api_event(sdk_batch(event, custom("Store Visit", attributes), mp.SessionStartEvent())))
    assert answer.status == 200, answer.body
    assert len(graph.events) == 2
    for sent in graph.events:
        custom_data = sent["custom_data"]
        assert "Facebook.ActionSource" not in custom_data and custom_data["advisor"] == "A-7"
        assert sent.get("action_source", "phone_call") == "phone_call"
