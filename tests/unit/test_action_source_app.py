"""Action source `app`: never sent, since Meta refuses an app event without `app_data` and an offline feed has none.

Meta answers an `app` event without app_data "Missing Advertiser Tracking Enabled Flag: The parameter
'advertiser_tracking_enabled' is required for the event with the action source 'app'"
(facebook-nodejs-business-sdk#233, #251; app-data parameters: advertiser_tracking_enabled,
application_tracking_enabled and extinfo are required). Sent, such an event would be refused, isolated and
parked, and no replay could ever deliver it. So an event that says `app` is skipped `app_without_app_data`,
and DEFAULT_ACTION_SOURCE refuses `app` when the function starts. The Graph stand-in refuses such an event as
Meta does (tests/unit/test_graph_stub_fields.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from forwarder.action_source import ActionSource
from forwarder.settings import SettingsError
from tests.unit.test_sdk_batches import outbound
from tests.unit.test_store_events import MAPPING, commerce, custom, product, rendered, sdk_batch, settings

SHIRT = product(id="sku-1", name="Shirt", price=40.0, quantity=1.0)
SHAPES = {"inbound": lambda body: body, "outbound": outbound}


def purchase(flags: dict[str, Any] | None = None, attributes: dict[str, Any] | None = None) -> Any:
    event = commerce("purchase", [SHIRT], flags, transaction_id="T-1", total_amount=40.0)
    if attributes is not None:
        event.custom_attributes = attributes
    return event


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_issues_example_a_purchase_flagged_app_is_skipped_not_sent(shape: str) -> None:
    body = SHAPES[shape](sdk_batch(purchase({"Facebook.ActionSource": "app"})))
    assert rendered(body, settings("conversions_api"))[:2] == ([], {"app_without_app_data": 1})


# (how the event says it, the event kind, what is sent: the action source, or None for skipped)
NEIGHBOURS = [
    ({"flags": {"Facebook.ActionSource": "app"}}, "purchase", None),
    ({"attributes": {"Facebook.ActionSource": "app"}}, "purchase", None),  # the custom attribute form
    ({"flags": {"Facebook.ActionSource": " APP "}}, "purchase", None),  # trimmed, any case
    ({"flags": {"Facebook.ActionSource": ["app", "physical_store"]}}, "purchase", None),  # a list's first
    ({"flags": {"Facebook.ActionSource": "app"}}, "custom", None),  # a mapped custom event too
    ({"flags": {"Facebook.ActionSource": "phone_call"}}, "purchase", "phone_call"),  # other sources as before
    ({"flags": {"Facebook.ActionSource": "website"}}, "custom", "website"),
    ({"attributes": {"Facebook.ActionSource": "chat"}}, "purchase", "chat"),
    ({"flags": {"Facebook.ActionSource": "apps"}}, "purchase", "physical_store"),  # invalid: the default
    ({}, "purchase", "physical_store"),
]


@pytest.mark.parametrize(("given", "kind", "sent"), NEIGHBOURS)
def test_neighbours(given: dict[str, Any], kind: str, sent: str | None) -> None:
    flags, attributes = given.get("flags"), given.get("attributes")
    event = purchase(flags, attributes) if kind == "purchase" else custom("Store Visit", attributes, flags)
    events, skipped, _ = rendered(sdk_batch(event), settings("conversions_api", CUSTOM_EVENT_MAPPING=MAPPING))
    if sent is None:
        assert (events, skipped) == ([], {"app_without_app_data": 1})
    else:
        assert [event["action_source"] for event in events] == [sent]
        assert "Facebook.ActionSource" not in events[0].get("custom_data", {})


def test_the_offline_conversions_api_reads_no_action_source_and_sends_the_purchase() -> None:
    events, skipped, _ = rendered(
        sdk_batch(purchase({"Facebook.ActionSource": "app"})), settings("offline_conversions")
    )
    assert (len(events), skipped) == (1, {})
    assert "action_source" not in events[0]


@pytest.mark.parametrize("value", ["app", "APP", " app "])
def test_default_action_source_app_is_refused_when_the_function_starts(value: str) -> None:
    with pytest.raises(SettingsError, match="DEFAULT_ACTION_SOURCE") as raised:
        settings(DEFAULT_ACTION_SOURCE=value)
    assert "app_data" in str(raised.value)


@pytest.mark.parametrize("source", [source.value for source in ActionSource if source is not ActionSource.APP])
def test_every_other_default_action_source_is_taken(source: str) -> None:
    assert settings(DEFAULT_ACTION_SOURCE=source.upper()).default_action_source == source
