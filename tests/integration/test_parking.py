"""Parking and replay: events mParticle will not resend are kept in SQS, and replay sends them again."""

from __future__ import annotations

import json

import boto3
import pytest

from forwarder.parking import MAX_MESSAGE_BYTES
from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.aws import ACCESS_TOKEN, WEBHOOK_AUTHORIZATION
from localdev.graph_stub import Fault
from tests.faulty_servers import reasons
from tests.support import api_event, commerce_event, make_batch


def parked_messages(env: dict[str, str]) -> list[dict]:
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=env["PARKING_QUEUE_URL"], MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(message["Body"]) for message in messages.get("Messages", [])]


def queue_depth(env: dict[str, str]) -> int:
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=env["PARKING_QUEUE_URL"], AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_rejected_events_are_parked_before_the_422(aws, function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(100, error_subcode=33, message="Invalid parameter"))
    answer = invoke(api_event(make_batch()))
    assert answer.status == 422
    assert answer.body["parked"] == 1
    [message] = parked_messages(aws)
    assert "code 100" in reasons(message)[0]
    assert message["destination"]["api"] == api
    assert message["batch_id"] == "42"
    assert message["events"] == graph.received[0].data  # exactly what Facebook refused
    text = json.dumps(message)
    assert ACCESS_TOKEN not in text
    assert WEBHOOK_AUTHORIZATION not in text
    assert "Jane" not in text
    assert "jane.doe@example.com" not in text.lower()


def test_partially_processed_requests_are_parked_and_answered_200(aws, function_env, invoke, graph):
    graph.script(Fault(status=200, body={"id": "1", "num_processed_entries": 1}))
    events = [commerce_event("add_to_cart", source_message_id=f"m-{i}") for i in range(3)]
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 200
    assert answer.body["forwarded"] == 1  # what Facebook acknowledged, not what was sent
    assert answer.body["parked"] == 3
    [message] = parked_messages(aws)
    assert reasons(message) == ["Facebook processed 1 of 3 events"] * 3


def test_nothing_is_parked_when_mparticle_will_retry(aws, function_env, invoke, graph):
    graph.script(*[Fault.graph_error(2, status=500)] * 50)
    answer = invoke(api_event(make_batch()), timeout=6)
    assert answer.status == 503
    assert parked_messages(aws) == []


def test_an_sqs_failure_turns_the_final_answer_into_a_503(aws, function_env, invoke, graph):
    function_env(PARKING_QUEUE_URL=aws["PARKING_QUEUE_URL"] + "-missing")
    graph.script(Fault.graph_error(100, error_subcode=33))
    answer = invoke(api_event(make_batch()))
    assert answer.status == 503  # retried by mParticle: never a final answer without a durable copy
    assert int(answer.headers["Retry-After"]) > 0
    assert "could not park" in answer.body["error"]


def test_large_rejections_are_split_into_messages_sqs_accepts(aws, function_env, invoke, graph):
    graph.script(Fault.graph_error(100, error_subcode=33))
    events = [commerce_event("add_to_cart", source_message_id=f"m-{i}") for i in range(1500)]
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 422
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    bodies, seen = [], set()
    while True:
        messages = sqs.receive_message(QueueUrl=aws["PARKING_QUEUE_URL"], MaxNumberOfMessages=10).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        bodies.extend(m["Body"] for m in fresh)
    assert len(bodies) > 1
    assert all(len(body.encode()) <= MAX_MESSAGE_BYTES + 1024 for body in bodies)
    assert sum(len(json.loads(body)["events"]) for body in bodies) == 1500


def test_replay_sends_parked_events_and_empties_the_queue(aws, function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(make_batch())).status == 422
    refused = graph.received[0].data
    report = replay(load_settings())
    assert report.as_dict() == {
        "messages": 1,
        "delivered_events": 1,
        "deleted": 1,
        "duplicates": 0,
        "duplicate_events": 0,
        "incomplete_discarded": 0,
        "reparked_events": 0,
        "isolation_requests": 0,
        "kept": {},
        "malformed": {},
        "waiting": 0,
        "in_flight": 0,
    }
    assert graph.received[-1].data == refused
    assert graph.received[-1].status == 200
    assert queue_depth(aws) == 0


def test_replay_keeps_what_still_fails(aws, function_env, invoke, graph):
    graph.script(
        Fault.graph_error(100, error_subcode=33), Fault.graph_error(100, error_subcode=33, message="still invalid")
    )
    assert invoke(api_event(make_batch())).status == 422
    report = replay(load_settings())
    assert report.deleted == 0
    assert report.kept == {"rejected by Facebook (code 100, subcode 33): still invalid": 1}
    assert queue_depth(aws) == 1  # still there, invisible until the next run


@pytest.mark.parametrize(
    ("body", "problem"),
    [("not json", "not JSON"), (json.dumps({"format": 99, "events": []}), "not a parked part of format 1 to 3")],
)
def test_replay_sets_aside_messages_it_did_not_write(aws, function_env, graph, body, problem):
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    sqs.send_message(QueueUrl=aws["PARKING_QUEUE_URL"], MessageBody=body)
    report = replay(load_settings())
    assert report.malformed == {problem: 1}
    assert not report.finished
    assert graph.received == []
    assert queue_depth(aws) == 1
