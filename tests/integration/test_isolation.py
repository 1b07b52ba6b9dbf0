"""One bad event never costs its neighbours, end to end: the real handler against the Graph stand-in
scripted to refuse any request that holds a marked event (as Meta refuses a request with one invalid
event), and moto's SQS for parking. Every event is delivered once, or parked alone with Meta's reason."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import FaultyGraph, parked_messages, reasons
from tests.integration.test_faults import event_key
from tests.support import api_event, commerce_event, make_batch

LIMIT = {"offline_conversions": 2000, "conversions_api": 1000}
BAD = {10, 999, 1200}  # spread over both Conversions API requests (1000 + 500)


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:
        yield stub


def batch_with_bad(count: int, bad: set[int]) -> tuple[dict[str, Any], list[str]]:
    ids = [f"{'BAD' if index in bad else 'ok'}-{index}" for index in range(count)]
    events = [commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
    return make_batch(events), ids


def acknowledged(graph: GraphStub) -> Counter[str]:
    return Counter(event_key(event) for request in graph.received if request.status == 200 for event in request.data)


@pytest.mark.parametrize("blame", [True, False], ids=["Meta names the event", "halving"])
def test_the_bad_events_are_parked_alone_and_the_rest_delivered_once(blame, api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    graph.reject_marked, graph.blame = "BAD", blame
    batch, ids = batch_with_bad(1500, BAD)
    answer = invoke(api_event(batch))

    assert answer.status == 200, answer.body
    assert (answer.body["forwarded"], answer.body["parked"]) == (1497, 3)
    good = [i for i in ids if not i.startswith("BAD")]
    assert acknowledged(graph) == Counter(good)  # each exactly once
    messages = parked_messages(aws)
    parked = [event_key(event) for message in messages for event in message["events"]]
    assert sorted(parked) == sorted(i for i in ids if i.startswith("BAD"))
    parked_reasons = [reason for message in messages for reason in reasons(message)]
    assert all("Invalid Product Id" in reason and "subcode 2804050" in reason for reason in parked_reasons)
    chunks = math.ceil(1500 / LIMIT[api])
    assert len(graph.received) - chunks == answer.body["isolation_requests"] <= 2 * 3 * math.ceil(math.log2(1500))


def test_a_budget_that_runs_out_midway_is_resent_and_nothing_is_parked_twice(aws, function_env, invoke, graph):
    """Conversions API: what is not settled in time is answered 503 with nothing parked; mParticle's resend
    then finishes the job, and Meta counts the events delivered twice once (same event_id)."""
    function_env(FACEBOOK_API="conversions_api")
    graph.reject_marked, graph.blame = "BAD", False
    graph.script(*[Fault(delay=0.7)] * 12)  # Facebook slow: halving cannot finish in a 9 s invocation
    batch, ids = batch_with_bad(1000, {3, 600})
    first = invoke(api_event(batch), timeout=9)
    assert first.status == 503 and first.body["parked"] == 0 and parked_messages(aws) == []

    resent = invoke(api_event(batch))
    assert resent.status == 200 and resent.body["parked"] == 2
    assert sorted(event_key(e) for m in parked_messages(aws) for e in m["events"]) == ["BAD-3", "BAD-600"]
    assert set(acknowledged(graph)) == {i for i in ids if not i.startswith("BAD")}


def test_an_error_about_the_whole_request_is_not_split(api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(100, error_subcode=33, message="Object with ID '1234567890' does not exist"))
    batch, _ = batch_with_bad(5, set())
    answer = invoke(api_event(batch))
    assert answer.status == 422 and answer.body["parked"] == 5 and len(graph.received) == 1
    assert answer.body["isolation_requests"] == 0


def test_every_event_rejected_alone_is_still_a_422(api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    graph.reject_marked = "BAD"
    batch, _ = batch_with_bad(2, {0, 1})
    answer = invoke(api_event(batch))
    assert answer.status == 422 and answer.body["forwarded"] == 0 and answer.body["parked"] == 2


def test_replay_isolates_too(aws, function_env, invoke, graph):
    """A request parked whole (the dataset was wrong) holds two bad events: once the cause is fixed, replay
    delivers the rest and parks the two again, alone, with Meta's reason."""
    graph.script(Fault.graph_error(100, error_subcode=33))
    batch, ids = batch_with_bad(50, {4, 40})
    assert invoke(api_event(batch)).status == 422
    graph.received.clear()
    graph.reject_marked = "BAD"

    report = replay(load_settings())
    assert report.delivered_events == 48 and report.reparked_events == 2 and report.isolation_requests >= 1
    assert acknowledged(graph) == Counter(i for i in ids if not i.startswith("BAD"))
    reparked = parked_messages(aws)
    assert sorted(event_key(e) for m in reparked for e in m["events"]) == ["BAD-4", "BAD-40"]
    assert all("Invalid Product Id" in r for m in reparked for r in reasons(m))
