"""Limits: a batch over them is refused with a 413 naming the limit; an event over them is skipped and counted."""

from __future__ import annotations

import pytest

from forwarder.batch import MAX_EVENTS_PER_BATCH
from forwarder.mapping import MAX_PRODUCTS_PER_EVENT, MAX_TEXT_LENGTH
from tests.support import api_event, commerce_event, make_batch


def test_too_many_events_is_a_413_naming_the_limit(function_env, invoke, graph):
    events = [{"event_type": "custom_event"}] * (MAX_EVENTS_PER_BATCH + 1)
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 413
    assert str(MAX_EVENTS_PER_BATCH) in answer.body["error"]
    assert graph.received == []


def test_exactly_the_event_limit_is_accepted(function_env, invoke, graph):
    events = [{"event_type": "custom_event"}] * MAX_EVENTS_PER_BATCH
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 200
    assert answer.body["skipped"] == {"not_commerce_event": MAX_EVENTS_PER_BATCH}


def products(count: int, **fields: object) -> list[dict]:
    return [{"id": f"sku-{i}", "price": 1.0, "quantity": 1, **fields} for i in range(count)]


long_text = "x" * (MAX_TEXT_LENGTH + 1)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (commerce_event("add_to_cart", products=products(MAX_PRODUCTS_PER_EVENT + 1)), "too_many_products"),
        (commerce_event("add_to_cart", products=[{"id": long_text, "price": 1.0}]), "value_too_long"),
        (commerce_event("add_to_cart", products=products(1, brand=long_text)), "value_too_long"),
        (commerce_event("add_to_cart", products=products(1, category=long_text)), "value_too_long"),
        (commerce_event("purchase", product_action={"transaction_id": long_text}), "value_too_long"),
        (commerce_event("add_to_cart", custom_attributes={"note": long_text}), "value_too_long"),
        (commerce_event("add_to_cart", custom_attributes={long_text: "x"}), "value_too_long"),
    ],
)
def test_an_event_over_a_limit_is_skipped_and_the_rest_forwarded(function_env, invoke, graph, api, event, reason):
    function_env(FACEBOOK_API=api)
    fine = commerce_event("view_detail", source_message_id="fine")
    answer = invoke(api_event(make_batch([event, fine])))
    assert answer.status == 200, answer.body
    assert answer.body["skipped"] == {reason: 1}
    assert answer.body["forwarded"] == 1
    assert len(graph.events) == 1


def test_values_at_the_limits_are_forwarded(function_env, invoke, graph):
    at_limit = "y" * MAX_TEXT_LENGTH
    event = commerce_event(
        "add_to_cart", products=products(MAX_PRODUCTS_PER_EVENT, brand=at_limit), custom_attributes={"n": at_limit}
    )
    answer = invoke(api_event(make_batch([event])))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 1
    [sent] = graph.events
    assert len(sent["contents"]) == MAX_PRODUCTS_PER_EVENT
    assert sent["custom_data"]["n"] == at_limit
