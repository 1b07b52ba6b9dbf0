"""Buffered delivery end to end: the webhook queues into moto's SQS, the sender function (invoked by a local
stand-in for the SQS event source, localdev/event_source.py) sends to the Graph stand-in.

Every event is delivered exactly once per event_id across many batches; what fails comes back as exactly
the right batchItemFailures; a poison event is parked alone; SQS down at ingest is a 503 with nothing lost.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest

from localdev.event_source import drain, poll_once
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import closed_port, fresh_aws_clients, parked_messages, reasons
from tests.support import api_event, commerce_event, make_batch

# A sender invocation's time when Facebook keeps failing: it retries until then (the stack gives it 60 s).
SHORT = 8.0


@pytest.fixture
def buffered(function_env: Any) -> None:
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered")


@pytest.fixture
def sender() -> Any:
    from handler.sender import lambda_handler

    return lambda_handler


def sqs(aws: dict[str, str]) -> Any:
    return boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")


def batches(count: int, prefix: str = "ev") -> tuple[list[dict[str, Any]], list[str]]:
    """`count` webhook batches of 1 to 5 events each, every event with its own id."""
    bodies, ids = [], []
    for number in range(count):
        mine = [f"{prefix}-{number}-{index}" for index in range(1 + number % 5)]
        events = [
            commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i}) for i in mine
        ]
        bodies.append(make_batch(events, batch_id=number))
        ids += mine
    return bodies, ids


def delivered(graph: GraphStub) -> Counter[str]:
    return Counter(event["event_id"] for request in graph.received if request.status == 200 for event in request.data)


def test_many_webhook_batches_reach_facebook_as_one_request_each_event_once(aws, buffered, invoke, graph, sender):
    bodies, ids = batches(60)
    for body in bodies:
        answer = invoke(api_event(body))
        assert answer.status == 200 and answer.body["queued"] == len(body["events"])
    assert graph.received == []  # the webhook never calls Facebook

    invocations = drain(sqs(aws), aws["INGEST_QUEUE_URL"], sender)
    assert [invocation.failures for invocation in invocations] == [[]]
    assert len(graph.received) == 1 and delivered(graph) == Counter(ids)


def test_a_transient_failure_returns_exactly_its_messages_and_a_retry_delivers_them_once(
    aws, function_env, invoke, graph, sender
):
    """Two datasets in one receive: the request of one fails until the deadline, the other's is delivered.
    Exactly the failing dataset's messages come back, and the next receive delivers them."""
    first, first_ids = batches(4, "a")
    second, second_ids = batches(4, "b")
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered")
    for body in first:
        assert invoke(api_event(body)).status == 200
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered", OFFLINE_EVENT_SET_ID="222")
    for body in second:
        assert invoke(api_event(body)).status == 200
    queue = aws["INGEST_QUEUE_URL"]
    failing = {
        message["MessageId"]
        for message in sqs(aws).receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        if json.loads(message["Body"])["destination"]["dataset_id"] == "222"
    }
    graph.script(Fault(), *[Fault.graph_error(2, status=500)] * 100)  # dataset 1 first (queue order), then 222 fails

    invocation = poll_once(sqs(aws), queue, sender, timeout=SHORT)
    assert invocation is not None and set(invocation.failures) == failing
    assert delivered(graph) == Counter(first_ids)

    graph.recover()
    assert poll_once(sqs(aws), queue, sender).failures == []
    assert delivered(graph) == Counter(first_ids + second_ids)


def test_a_poison_event_is_parked_alone_and_its_message_settled(aws, buffered, invoke, graph, sender):
    graph.reject_marked = "BAD"
    body = make_batch(
        [commerce_event("add_to_cart", source_message_id=i) for i in ("ok-1", "BAD-2", "ok-3")], batch_id=7
    )
    assert invoke(api_event(body)).status == 200
    invocations = drain(sqs(aws), aws["INGEST_QUEUE_URL"], sender)
    assert [invocation.failures for invocation in invocations] == [[]]
    assert delivered(graph) == Counter(["ok-1", "ok-3"])
    [message] = parked_messages(aws)
    assert [event["event_id"] for event in message["events"]] == ["BAD-2"]
    assert "Invalid Product Id" in reasons(message)[0]


def test_sqs_down_at_ingest_is_a_503_and_nothing_is_lost(aws, buffered, invoke, graph, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{closed_port()}")
    with fresh_aws_clients():
        answer = invoke(api_event(make_batch()), timeout=6)
    assert answer.status == 503 and "Retry-After" in answer.headers and "could not queue" in answer.body["error"]
    assert graph.received == []  # mParticle resends the batch: it is nowhere else


def test_a_message_that_keeps_failing_is_redriven_to_the_parking_queue_and_replayed(
    aws, buffered, invoke, graph, sender
):
    """Facebook down for every receive: after maxReceiveCount the queue redrives the message to the parking
    queue, whose replay sends it once Facebook is back."""
    from forwarder.replay import replay
    from forwarder.settings import load_settings
    from localdev.aws import INGEST_MAX_RECEIVES

    assert invoke(api_event(make_batch())).status == 200
    graph.script(*[Fault.graph_error(2, status=500)] * 1000)
    for _ in range(INGEST_MAX_RECEIVES + 1):
        poll_once(sqs(aws), aws["INGEST_QUEUE_URL"], sender, timeout=SHORT)
    assert len(parked_messages(aws)) == 1  # redriven, in the parking queue's own format
    graph.recover()
    assert replay(load_settings()).delivered_events == 1
    assert delivered(graph) == Counter(["msg-purchase"])


def test_buffered_delivery_refuses_the_offline_conversions_api(aws, function_env, invoke, graph):
    function_env(FACEBOOK_API="offline_conversions", DELIVERY_MODE="buffered")
    answer = invoke(api_event(make_batch()))
    assert (
        answer.status == 500 and "DELIVERY_MODE" in answer.body["error"] and "conversions_api" in answer.body["error"]
    )


def test_only_a_development_batch_carries_the_test_event_code_through_the_queue(
    aws, function_env, invoke, graph, sender
):
    """TEST_EVENT_CODE is decided per webhook batch (DEVELOPMENT_BATCHES=test): the queued events keep it, and
    the sender never merges test and production events into one request."""
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered", TEST_EVENT_CODE="TEST123")
    production = make_batch([commerce_event("purchase", source_message_id="prod-1")], batch_id=1)
    development = make_batch([commerce_event("purchase", source_message_id="dev-1")], batch_id=2)
    development["environment"] = "development"
    for body in (production, development):
        assert invoke(api_event(body)).status == 200
    assert [invocation.failures for invocation in drain(sqs(aws), aws["INGEST_QUEUE_URL"], sender)] == [[]]
    codes = {request.data[0]["event_id"]: request.body.get("test_event_code") for request in graph.received}
    assert codes == {"prod-1": None, "dev-1": "TEST123"}


def test_the_event_source_stand_in_invokes_with_at_most_6_mb_like_lambda(aws):
    """30 messages of 240 KB: the first invocation gets what fits in Lambda's 6 MB payload, the next the rest."""
    client, queue = sqs(aws), aws["INGEST_QUEUE_URL"]
    for number in range(30):
        client.send_message(QueueUrl=queue, MessageBody=f"{number:02}" + "x" * 240_000)
    sizes: list[tuple[int, int]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        sizes.append((len(event["Records"]), len(json.dumps(event))))
        return {"batchItemFailures": []}

    assert [invocation.records for invocation in drain(client, queue, handler)] == [count for count, _ in sizes]
    assert [count for count, _ in sizes] == [26, 4] and all(size <= 6 * 1024 * 1024 for _, size in sizes)


def queue_to(invoke: Any, function_env: Any, dataset: str, bodies: list[dict[str, Any]], **env: str) -> None:
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered", OFFLINE_EVENT_SET_ID=dataset, **env)
    for body in bodies:
        assert invoke(api_event(body)).status == 200


def test_a_dataset_that_keeps_failing_does_not_starve_the_others_in_the_same_receive(
    aws, function_env, invoke, graph, sender
):
    """The failing dataset's messages come first in the receive, and the healthy one answers in 5 s: it is
    still delivered in that receive, the failing one having had only its share of the time. (Had the
    failing one retried until the invocation's deadline, the healthy one's request would have had about
    1 s to be answered in; with its share it has about 9 s, room for a busy machine.)"""
    failing, _ = batches(4, "down")
    healthy, healthy_ids = batches(4, "up")
    queue_to(invoke, function_env, "111", failing)
    queue_to(invoke, function_env, "222", healthy)
    graph.unavailable, graph.slow = {"111"}, {"222": 5.0}
    invocation = poll_once(sqs(aws), aws["INGEST_QUEUE_URL"], sender, timeout=16.0)
    assert invocation is not None and len(invocation.failures) == len(failing)
    assert delivered(graph) == Counter(healthy_ids)


@pytest.mark.parametrize(
    ("environment", "code_when_sent", "parked_code"),
    [
        ("production", None, None),  # never the test code, though TEST_EVENT_CODE is set
        ("development", "TEST123", "TEST123"),
    ],
)
def test_events_the_sender_parks_keep_what_they_were_rendered_for(
    aws, function_env, invoke, graph, sender, environment, code_when_sent, parked_code
):
    """Parked by the sender with the message's destination and test event code, not the function's: the
    environment may have changed since the webhook queued them (here: another dataset, no test code)."""
    body = make_batch([commerce_event(source_message_id=i) for i in ("ok-1", "BAD-1")], batch_id=3)
    body["environment"] = environment
    queue_to(invoke, function_env, "111", [body], TEST_EVENT_CODE="TEST123")
    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered", OFFLINE_EVENT_SET_ID="999")
    graph.reject_marked = "BAD"
    assert [invocation.failures for invocation in drain(sqs(aws), aws["INGEST_QUEUE_URL"], sender)] == [[]]
    assert {request.body.get("test_event_code") for request in graph.received} == {code_when_sent}
    assert all("/111/events" in request.path for request in graph.received)
    [message] = parked_messages(aws)
    assert message["destination"]["dataset_id"] == "111"
    assert message["destination"].get("test_event_code") == parked_code
    assert [event["event_id"] for event in message["events"]] == ["BAD-1"]


def test_a_message_delivered_twice_in_one_receive_sends_its_events_once(aws, buffered, invoke, graph, sender):
    assert invoke(api_event(make_batch([commerce_event(source_message_id="once")]))).status == 200
    client, queue = sqs(aws), aws["INGEST_QUEUE_URL"]
    [message] = client.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    client.send_message(QueueUrl=queue, MessageBody=message["Body"])  # what an at-least-once queue may do
    assert [invocation.failures for invocation in drain(client, queue, sender)] == [[]]
    assert [event["event_id"] for request in graph.received for event in request.data] == ["once"]


def test_a_tampered_message_for_the_offline_conversions_api_is_never_sent(aws, buffered, invoke, graph, sender):
    assert invoke(api_event(make_batch())).status == 200
    client, queue = sqs(aws), aws["INGEST_QUEUE_URL"]
    [message] = client.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    client.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    body = json.loads(message["Body"])
    body["destination"]["api"] = "offline_conversions"
    client.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    invocation = poll_once(client, queue, sender)
    assert invocation is not None and len(invocation.failures) == 1 and graph.received == []
