"""Fault injection, parking and replay: nothing parked twice, nothing replayed after it was delivered,
and replay recovers what it was built for.

Against the real handler, a real moto server (through a proxy that can answer late or fail one write)
and the Graph stand-in. Every test ends by counting, per event, what Facebook acknowledged: each event
exactly once, whatever was written to the parking queue on the way.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from forwarder import graph_client, held_messages
from forwarder import replay as replay_module
from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import (
    HOLD_SECONDS,
    MAX_VISIBILITY,
    AwsProxy,
    AwsStep,
    FaultyGraph,
    Held,
    SqsClock,
    fresh_aws_clients,
    parked_messages,
)
from tests.integration.test_faults import event_key
from tests.support import EVENT_SET_ID, api_event, commerce_event, make_batch, wait_for

THROTTLED = AwsStep(error=(400, "ThrottlingException"))
ACCEPTED = '{"events_received": 3, "num_processed_entries": 3}'  # either API's success for 3 events


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:
        yield stub


def batch_of(count: int, note: int = 0) -> tuple[dict[str, Any], list[str]]:
    """`count` add_to_cart events; `note` characters of custom attribute each (to fill parking messages)."""
    ids = [f"ev-{index}" for index in range(count)]
    attributes = {"note": "n" * note} if note else {}
    events = [
        commerce_event(
            "add_to_cart", source_message_id=i, product_action={"transaction_id": i}, custom_attributes=attributes
        )
        for i in ids
    ]
    return make_batch(events), ids


def acknowledged(graph: GraphStub) -> Counter[str]:
    """How many times Facebook acknowledged each event."""
    return Counter(event_key(event) for request in graph.received if request.status == 200 for event in request.data)


def sqs(aws: dict[str, str]) -> Any:
    return boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")


def in_flight(aws: dict[str, str]) -> int:
    """Messages of the parking queue some consumer holds (invisible), by moto's clock."""
    name = "ApproximateNumberOfMessagesNotVisible"
    attributes = sqs(aws).get_queue_attributes(QueueUrl=aws["PARKING_QUEUE_URL"], AttributeNames=[name])
    return int(attributes["Attributes"][name])


# --- nothing parked twice ------------------------------------------------------------------------


def test_a_parking_write_whose_answer_is_lost_is_written_twice_and_replayed_once(aws, function_env, invoke, graph, api):
    """SQS stores the message but its answer never arrives (a read timeout or, here, a reset connection,
    which needs no waiting): the SDK sends it again."""
    batch, ids = batch_of(3)
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("SendMessageBatch", AwsStep(reset_after=True))
        function_env(FACEBOOK_API=api, AWS_ENDPOINT_URL_SQS=proxy.url)
        graph.script(Fault.graph_error(100, error_subcode=33))
        with fresh_aws_clients():
            assert invoke(api_event(batch)).status == 422
            assert proxy.count("SendMessageBatch") == 2
            messages = parked_messages(aws)
            assert len(messages) == 2 and messages[0]["set_id"] == messages[1]["set_id"]
            report = replay(load_settings())
    assert (report.duplicates, report.deleted, report.delivered_events) == (1, 2, 3)
    assert acknowledged(graph) == Counter(ids)
    assert parked_messages(aws) == []


@pytest.mark.parametrize("facebook_on_resend", ["accepts", "rejects again"])
def test_a_set_cut_short_is_never_replayed_beside_its_resend(
    facebook_on_resend, aws, function_env, invoke, graph, api, monkeypatch
):
    """The first of two parking messages is stored, the second fails: 503, and mParticle resends. Whether
    Facebook then takes the batch or rejects it again, each event reaches Facebook exactly once."""
    batch, ids = batch_of(450, note=900)  # about 450 KB of rejected events: two parking messages
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("SendMessageBatch", AwsStep(), THROTTLED, THROTTLED)
        function_env(FACEBOOK_API=api, AWS_ENDPOINT_URL_SQS=proxy.url)
        graph.script(Fault.graph_error(100, error_subcode=33))
        with fresh_aws_clients():
            first = invoke(api_event(batch))
            assert first.status == 503 and "could not park" in first.body["error"]
            assert len(parked_messages(aws)) == 1  # the first part of the set only
            if facebook_on_resend == "rejects again":
                graph.script(Fault.graph_error(100, error_subcode=33))
            resent = invoke(api_event(batch))  # mParticle's retry
            assert resent.status == (200 if facebook_on_resend == "accepts" else 422)
            report = replay(load_settings())
            if facebook_on_resend == "accepts":
                # The lone first part is never sent, and never deleted unless the operator asks.
                assert report.delivered_events == 0 and report.kept == {replay_module.INCOMPLETE: 1}
                assert replay(load_settings(), discard_incomplete=True).incomplete_discarded == 0  # too young
                monkeypatch.setattr(replay_module, "INCOMPLETE_AFTER_SECONDS", -1)  # as if 15 minutes had passed
                report = replay(load_settings(), discard_incomplete=True)
                assert report.incomplete_discarded == 1 and report.delivered_events == 0
            else:
                assert report.duplicates == 1 and report.delivered_events == len(ids)
    assert acknowledged(graph) == Counter(ids)
    assert parked_messages(aws) == []


# --- replays that overlap ------------------------------------------------------------------------


def test_overlapping_replays_never_send_the_same_set(aws, function_env, invoke, graph, monkeypatch):
    """A replay whose Graph requests take longer than the visibility timeout keeps its messages invisible
    (its heartbeat extends the timeout), so a second replay started meanwhile finds nothing to send.

    Time passes only as the test says: Facebook answers the first replay when the test releases it, and
    moto's clock jumps past the visibility timeout."""
    clock = SqsClock(monkeypatch)
    monkeypatch.setattr(held_messages, "HEARTBEAT_SECONDS", 0.05)
    # The first replay waits for Facebook's answer as long as the test may hold it.
    monkeypatch.setattr(graph_client, "MAX_READ_TIMEOUT", HOLD_SECONDS)
    monkeypatch.setattr(replay_module, "SEND_BUDGET_SECONDS", 2 * HOLD_SECONDS)
    batch, ids = batch_of(3)
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(batch)).status == 422
    graph.received.clear()
    facebook_answers = threading.Event()
    graph.script(Fault(200, Held(ACCEPTED, facebook_answers)))  # the first replay's request
    reports: list[Any] = []
    slow = threading.Thread(target=lambda: reports.append(replay(load_settings())))
    slow.start()
    try:
        wait_for(lambda: graph.received, "the first replay's request to Facebook")  # it holds the message
        clock.advance(replay_module.VISIBILITY_TIMEOUT + 1)  # past the timeout the message was received with
        wait_for(lambda: in_flight(aws) == 1, "a heartbeat to hide the message again")
        second = replay(load_settings())
    finally:
        facebook_answers.set()
        slow.join()
    assert second.messages == 0 and second.in_flight == 1 and not second.finished
    assert reports[0].delivered_events == 3
    assert acknowledged(graph) == Counter(ids)


# --- replay recovers what it was built for -------------------------------------------------------

MISCONFIGURED = {
    "event set id that does not exist": {"OFFLINE_EVENT_SET_ID": "111"},
    "retired Graph version": {"FACEBOOK_API_VERSION": "v12.0"},
}


@pytest.mark.parametrize("wrong", MISCONFIGURED)
def test_replay_sends_to_the_destination_fixed_since(wrong, aws, function_env, invoke, graph, api, monkeypatch):
    graph.datasets, graph.deprecated_before = {EVENT_SET_ID}, 15
    function_env(FACEBOOK_API=api, **MISCONFIGURED[wrong])
    batch, ids = batch_of(3)
    assert invoke(api_event(batch)).status == 422
    assert len(parked_messages(aws)) == 1

    # The operator fixes the variable and runs replay, as README says; first asking for the parked one.
    assert replay_module.main(["--parked-destination"]) == 1
    assert acknowledged(graph) == Counter()
    monkeypatch.delenv("FACEBOOK_API_VERSION", raising=False)
    function_env(FACEBOOK_API=api)
    assert replay_module.main([]) == 0
    assert acknowledged(graph) == Counter(ids)
    assert graph.received[-1].path == f"/{load_settings().api_version}/{EVENT_SET_ID}/events"
    assert parked_messages(aws) == []


def park_one(aws: dict[str, str], function_env: Any, invoke: Any, graph: GraphStub) -> dict[str, Any]:
    """A real parked message, taken out of the queue so a test can alter it and put it back."""
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(batch_of(3)[0])).status == 422
    queue = aws["PARKING_QUEUE_URL"]
    message = sqs(aws).receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"][0]
    sqs(aws).delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    graph.received.clear()
    return json.loads(message["Body"])


def altered(parked: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(parked))
    target = copy
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return copy


# (what is altered, value, outcome without and with --parked-destination)
TAMPERED = [
    ("destination", "not an object", "malformed", "malformed"),
    ("destination", None, "malformed", "malformed"),
    ("destination.api_version", "v1/../../me?fields=x#", "malformed", "malformed"),
    ("destination.api_version", 16.0, "malformed", "malformed"),
    ("destination.dataset_id", "1/../../evil", "malformed", "malformed"),
    ("destination.dataset_id", "1234567890\n", "malformed", "malformed"),
    ("destination.dataset_id", "12345\n67890", "malformed", "malformed"),
    ("destination.api", "graph_explorer", "malformed", "malformed"),
    ("destination.connection", "../other", "malformed", "malformed"),
    ("destination.test_event_code", "TEST 1", "malformed", "malformed"),
    ("events", "not a list", "malformed", "malformed"),
    ("events", [], "malformed", "malformed"),
    ("events", [1, 2], "malformed", "malformed"),
    ("events", [{"custom_data": json.loads("[" * 300 + "]" * 300)}], "malformed", "malformed"),
    ("set_id", "../x", "malformed", "malformed"),
    ("part", 3, "malformed", "malformed"),
    ("parts", True, "malformed", "malformed"),
    ("reasons", [], "malformed", "malformed"),
    ("event_reasons", [0, 0, 7], "malformed", "malformed"),
    ("format", 4, "malformed", "malformed"),
]


@pytest.mark.parametrize(
    ("path", "value", "outcome", "parked_destination"),
    [
        pytest.param(path, value, outcome, flag, id=f"{path}={value!r}{' --parked-destination' if flag else ''}")
        for path, value, default, with_flag in TAMPERED
        for outcome, flag in ((default, False), (with_flag, True))
    ],
)
def test_replay_never_crashes_on_nor_is_steered_by_a_tampered_message(
    path, value, outcome, parked_destination, aws, function_env, invoke, graph
):
    function_env(FACEBOOK_API="conversions_api")
    message = altered(park_one(aws, function_env, invoke, graph), path, value)
    sqs(aws).send_message(QueueUrl=aws["PARKING_QUEUE_URL"], MessageBody=json.dumps(message))

    report = replay(load_settings(), parked_destination=parked_destination)

    assert {request.path for request in graph.received} <= {f"/v26.0/{EVENT_SET_ID}/events"}
    if outcome == "delivered":
        assert report.delivered_events == 3 and report.finished
    elif outcome == "kept":
        assert graph.received == [] and sum(report.kept.values()) == 1
    else:
        assert graph.received == [] and sum(report.malformed.values()) == 1 and not report.finished
    assert len(parked_messages(aws)) == (0 if outcome == "delivered" else 1)


def test_replay_reports_messages_another_consumer_holds(aws, function_env, invoke, graph, capsys):
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(batch_of(3)[0])).status == 422
    sqs(aws).receive_message(QueueUrl=aws["PARKING_QUEUE_URL"], VisibilityTimeout=MAX_VISIBILITY)  # someone else has it

    assert replay_module.main([]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out[out.rindex('{\n  "messages"') :])["in_flight"] == 1
    assert "1 messages are held by another consumer" in err


def park_several_parts(aws: dict[str, str], function_env: Any, invoke: Any, graph: GraphStub) -> tuple[list[str], int]:
    """A rejected batch parked as one set of several messages; returns its event ids and the messages."""
    batch, ids = batch_of(450, note=900)
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(batch)).status == 422
    parts = len(parked_messages(aws))
    assert parts >= 2
    graph.received.clear()
    return ids, parts


@pytest.mark.parametrize("discard", [False, True])
def test_a_complete_set_split_between_consumers_is_never_lost(discard, aws, function_env, invoke, graph, monkeypatch):
    """Another consumer holds one part while replay runs: replay sees an incomplete set, and must keep it,
    even when asked to discard incomplete sets and even when the set is old."""
    ids, parts = park_several_parts(aws, function_env, invoke, graph)
    monkeypatch.setattr(replay_module, "INCOMPLETE_AFTER_SECONDS", -1)
    queue = aws["PARKING_QUEUE_URL"]
    # Held for as long as SQS allows, until the test lets it go: however slow the machine, it stays held.
    held = sqs(aws).receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=MAX_VISIBILITY)
    held = held["Messages"][0]

    report = replay(load_settings(), discard_incomplete=discard)
    assert report.deleted == 0 and report.kept == {replay_module.INCOMPLETE: parts - 1} and graph.received == []

    sqs(aws).change_message_visibility(QueueUrl=queue, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0)
    report = replay(load_settings(), discard_incomplete=discard)
    assert report.delivered_events == len(ids) and report.finished
    assert acknowledged(graph) == Counter(ids)


def test_replays_cut_by_max_messages_never_lose_a_set(aws, function_env, invoke, graph, monkeypatch):
    ids, parts = park_several_parts(aws, function_env, invoke, graph)
    monkeypatch.setattr(replay_module, "INCOMPLETE_AFTER_SECONDS", -1)
    for _ in range(parts):
        assert replay_module.main(["--max-messages", "1", "--discard-incomplete"]) == 1
        assert graph.received == [] and len(parked_messages(aws)) == parts
    assert replay_module.main([]) == 0
    assert acknowledged(graph) == Counter(ids)


def test_a_parked_event_of_noncharacters_still_fits_a_classic_sqs_message(aws, function_env, invoke, graph):
    """SQS refuses U+FFFF in a message body: it is parked as U+FFFD, which takes the same three bytes."""
    event = commerce_event("add_to_cart", product_action={"products": [{"id": "\uffff" * 900}] * 70})
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(make_batch([event]))).status == 422
    queue = aws["PARKING_QUEUE_URL"]
    [message] = sqs(aws).receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    assert 180_000 < len(message["Body"].encode()) <= 256 * 1024
    assert "\ufffd" * 900 in message["Body"] and "\uffff" not in message["Body"]


@pytest.mark.parametrize(("api", "status", "parked"), [("offline_conversions", 200, 5), ("conversions_api", 503, 0)])
def test_a_token_reread_that_fails_after_a_part_was_delivered_is_an_outcome(
    api, status, parked, aws, function_env, invoke, graph
):
    """Code 190 on the second request, then Secrets Manager throttles the re-read: the first request is at
    Facebook, so on the Offline Conversions API the rest is parked (a resend would count the first twice);
    on the Conversions API mParticle resends and Meta de-duplicates. Either way the answer has its summary."""
    limit = {"offline_conversions": 2000, "conversions_api": 1000}[api]
    batch, ids = batch_of(limit + 5)
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("GetSecretValue", AwsStep(), THROTTLED, THROTTLED)
        function_env(FACEBOOK_API=api, AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url)
        graph.script(Fault(), Fault.graph_error(190))
        with fresh_aws_clients():
            answer = invoke(api_event(batch))
    assert answer.status == status
    assert answer.body["forwarded"] == limit and answer.body["parked"] == parked
    assert "Secrets Manager" in answer.body["requests"][1]["error"]
    assert acknowledged(graph) == Counter(ids[:limit])
    assert {event_key(event) for message in parked_messages(aws) for event in message["events"]} == set(
        ids[limit:] if parked else []
    )


@pytest.mark.parametrize("parked_with", ["", "TEST4321"])
def test_replay_keeps_the_test_event_code_the_events_were_sent_with(parked_with, aws, function_env, invoke, graph):
    """The replay environment may carry a TEST_EVENT_CODE (during verification): production events parked
    without one are still replayed as production events, and test events stay test events."""
    function_env(FACEBOOK_API="conversions_api", TEST_EVENT_CODE=parked_with)
    graph.script(Fault.graph_error(100, error_subcode=33))
    body = batch_of(2)[0]
    if parked_with:
        body["environment"] = "development"  # only development batches carry TEST_EVENT_CODE
    assert invoke(api_event(body)).status == 422
    function_env(FACEBOOK_API="conversions_api", TEST_EVENT_CODE="VERIFY999")
    assert replay(load_settings()).delivered_events == 2
    assert graph.received[-1].body.get("test_event_code") == (parked_with or None)
