"""One delivery core for every path: the faults its three former copies grew, each tried on the webhook (direct),
the buffered sender and replay, against the Graph stand-in and moto (SQS, DynamoDB, Secrets Manager).

Each test names a kind of fault and tries it with its neighbours: another key quoted, another path, Meta
naming a wrong event, a slow Facebook over several deliveries. Counts come from what the stand-in
acknowledged and what the parking queue holds, never from the function's own summary alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.event_source import poll_once
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import parked_messages, reasons
from tests.support import Answer, api_event, commerce_event, make_batch

PATHS = ["direct", "buffered", "replay"]


def sqs(aws: dict[str, str]) -> Any:
    return boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")


def events(ids: list[str], action: str = "add_to_cart") -> list[dict[str, Any]]:
    return [commerce_event(action, source_message_id=i, product_action={"transaction_id": i}) for i in ids]


def acknowledged(graph: GraphStub) -> Counter[tuple[str, str]]:
    """Each (event_name, event_id) Facebook acknowledged, as many times as it did."""
    return Counter(
        (event["event_name"], event["event_id"]) for r in graph.received if r.status == 200 for event in r.data
    )


def parked_ids(aws: dict[str, str]) -> Counter[str]:
    return Counter(event["event_id"] for message in parked_messages(aws) for event in message["events"])


class Paths:
    """Runs a batch through one path end to end: the webhook sending it (direct); the webhook queueing it
    and the sender function sending it (buffered); or the webhook parking it whole (Facebook refuses the
    dataset once) and replay sending it (replay). `before_sending` scripts Facebook once the batch is on
    its way, so replay's first refusal is not disturbed."""

    def __init__(self, path: str, aws: dict[str, str], function_env: Any, invoke: Any, graph: GraphStub) -> None:
        self.path, self.aws, self.function_env, self.invoke, self.graph = path, aws, function_env, invoke, graph

    def run(self, batch: dict[str, Any], before_sending: Callable[[], None] = lambda: None, **env: str) -> Any:
        if self.path == "buffered":
            self.function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered", **env)
            assert self.invoke(api_event(batch)).status == 200
            before_sending()
            from handler.sender import lambda_handler

            return poll_once(sqs(self.aws), self.aws["INGEST_QUEUE_URL"], lambda_handler)
        self.function_env(FACEBOOK_API="conversions_api", **env)
        if self.path == "direct":
            before_sending()
            return self.invoke(api_event(batch))
        self.graph.datasets = {"0"}  # every request refused: the dataset does not exist (code 100, subcode 33)
        assert self.invoke(api_event(batch)).status == 422
        self.graph.datasets = None
        self.graph.received.clear()
        before_sending()
        return replay(load_settings())


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, aws: Any, function_env: Any, invoke: Any, graph: GraphStub) -> Paths:
    return Paths(request.param, aws, function_env, invoke, graph)


# --- Meta's de-duplication key is event_name + event_id ------------------------------------------------


def test_two_events_sharing_an_event_id_under_different_names_both_reach_facebook(path: Paths, graph: GraphStub):
    """An add_to_cart and a purchase of one order, with the same source_message_id and transaction_id: Meta
    counts event_name + event_id once, so both are distinct events and both must be sent."""
    batch = make_batch(events(["order-7"], "add_to_cart") + events(["order-7"], "purchase"))
    path.run(batch)
    assert acknowledged(graph) == Counter({("AddToCart", "order-7"): 1, ("Purchase", "order-7"): 1})


def test_the_same_event_twice_in_a_batch_is_sent_once_and_counted(aws, function_env, invoke, graph):
    function_env(FACEBOOK_API="conversions_api")
    answer = invoke(api_event(make_batch(events(["m-1", "m-1", "m-2"]))))
    assert answer.status == 200 and answer.body["duplicates"] == 1 and answer.body["forwarded"] == 2
    assert acknowledged(graph) == Counter({("AddToCart", "m-1"): 1, ("AddToCart", "m-2"): 1})


# --- what Facebook says is redacted on every path, in every form it quotes a value --------------------

PHONE_USER = {"$mobile": "(650) 555-1212", "$country": "US"}
EMAIL_DIGEST = hashlib.sha256(b"jane.doe@example.com").hexdigest()
QUOTES = [
    # (user attributes and identities, what Meta's text quotes, what must never appear)
    ({}, "Invalid parameter: external_id CUST-998877 unknown", "CUST-998877"),
    ({}, "em jane.doe@example.com does not match", "jane.doe@example.com"),
    (PHONE_USER, "Invalid parameter: ph 16505551212 is not a phone", "16505551212"),
    (PHONE_USER, "Invalid parameter: ph +16505551212 is not a phone", "6505551212"),
    (PHONE_USER, "Invalid parameter: ph (650) 555-1212 is not a phone", "555-1212"),
    ({}, "madid 6D92078A-8246-4BA4-AE5B-76104861E7DC refused", "6D92078A"),
    ({}, f"em {EMAIL_DIGEST} refused", EMAIL_DIGEST),
]


@pytest.mark.parametrize(("user", "quote", "secret"), QUOTES, ids=[q[2] for q in QUOTES])
def test_no_path_repeats_a_personal_value_facebook_quotes(path: Paths, aws, graph, captured, user, quote, secret):
    batch = make_batch(events(["q-1", "q-2"]))
    batch["user_identities"].append({"identity_type": "customer_id", "identity": "CUST-998877"})
    batch["user_attributes"].update(user)
    error = Fault.graph_error(100, error_subcode=33, message=quote)
    outcome = path.run(batch, before_sending=lambda: graph.script(error))
    answered = json.dumps(outcome.body if isinstance(outcome, Answer) else vars(outcome), default=repr)
    stored = json.dumps([reasons(message) for message in parked_messages(aws)])
    text = answered + stored + captured()
    assert secret.lower() not in text.lower()
    assert "[redacted]" in text


# --- isolation: linear, confirmed, continued across deliveries ------------------------------------------


def test_meta_naming_a_wrong_event_never_parks_a_good_one(path: Paths, aws, graph):
    """64 events whose first is bad, Meta naming the last event of each request it refuses."""
    ids = ["BAD-0", *(f"ok-{i}" for i in range(1, 64))]

    def reject() -> None:
        graph.reject_marked, graph.blame = "BAD", "last"

    path.run(make_batch(events(ids)), before_sending=reject)
    assert acknowledged(graph) == Counter(("AddToCart", i) for i in ids[1:])
    assert parked_ids(aws) == Counter(["BAD-0"])


def test_a_thousand_events_rejected_and_named_one_per_answer_cost_linear_work(aws, function_env, invoke, graph):
    function_env(FACEBOOK_API="conversions_api")
    graph.reject_marked = "BAD"
    n = 1000
    answer = invoke(api_event(make_batch(events([f"BAD-{i}" for i in range(n)]))))
    assert answer.status == 422 and answer.body["parked"] == n
    assert parked_ids(aws) == Counter(f"BAD-{i}" for i in range(n))
    levels = math.ceil(math.log2(n)) + 1
    carried = sum(len(request.data) for request in graph.received)
    assert len(graph.received) <= 2 * n * levels + 2 and carried <= n * levels  # not 1000 requests of 500,500
    assert len(parked_messages(aws)) <= 5  # packed: not one message per event


@pytest.mark.parametrize("named", [True, False], ids=["Meta names the event", "unnamed"])
def test_a_slow_facebook_is_settled_over_several_deliveries_each_event_once(aws, function_env, invoke, graph, named):
    """Facebook slow and the invocation short: each delivery settles part of the isolation, answers 503, and
    mParticle's resend continues from there (the settled-events table) instead of starting over. In the end
    every good event was acknowledged and every bad one parked exactly once."""
    function_env(FACEBOOK_API="conversions_api")
    graph.reject_marked, graph.blame = "BAD", named
    graph.slow = {"1234567890": 0.1}  # at most about 15 requests in an invocation, on any machine
    ids = [f"BAD-{i}" if i % 10 == 3 else f"ok-{i}" for i in range(60)]
    batch = make_batch(events(ids))
    statuses = []
    for _ in range(60):  # far more deliveries than a machine of any speed needs; each makes progress
        answer = invoke(api_event(batch), timeout=7.0)
        statuses.append(answer.status)
        if answer.status != 503:
            break
    assert statuses[-1] == 200 and len(statuses) > 1
    good = [i for i in ids if i.startswith("ok")]
    assert set(acknowledged(graph)) == {("AddToCart", i) for i in good}
    assert parked_ids(aws) == Counter(i for i in ids if i.startswith("BAD"))  # each once, none lost


# --- a token or permission error stops every path --------------------------------------------------------


@pytest.mark.parametrize(("code", "answer"), [(190, "token"), (200, "permission")])
def test_a_token_or_permission_error_stops_sending_on_every_path(path: Paths, aws, graph, code, answer):
    ids = [f"ev-{i}" for i in range(1500)]  # two requests on the Conversions API

    def refuse() -> None:
        graph.script(*[Fault.graph_error(code, message="refused")] * 5)

    outcome = path.run(make_batch(events(ids)), before_sending=refuse)
    assert len(graph.received) == 1  # the same token's re-read gives the same token: not tried again
    if isinstance(outcome, Answer):
        assert outcome.status == 502
    assert parked_ids(aws) == (Counter(ids) if path.path == "replay" else Counter())  # kept, never lost
