"""`python -m forwarder.replay --list` (`make parked`): what is parked, shown without sending, deleting or
hiding anything, and without a personal value; a replay right after it still delivers every set."""

from __future__ import annotations

import re
from collections import Counter

import boto3

from forwarder.replay import main, replay
from forwarder.settings import load_settings
from localdev.graph_stub import Fault
from tests.support import api_event, commerce_event, make_batch

PERSONAL = ["jane", "doe", "example.com", "6d92078a", "san francisco", "cust-998877"]


def counts(out: str, title: str) -> dict[str, int]:
    """The lines under one of the listing's titles: name -> count."""
    lines = out.split(f"\n{title}\n")[1].splitlines()
    rows = []
    for line in lines:
        if not line.startswith("  "):
            break
        count, name = line.split(maxsplit=1)
        rows.append((name, int(count)))
    return dict(rows)


def park(invoke, graph, function_env, dataset: str, fault: Fault, ids: list[str]) -> None:
    function_env(FACEBOOK_API="conversions_api", OFFLINE_EVENT_SET_ID=dataset)
    graph.script(fault)
    events = [commerce_event("purchase", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
    batch = make_batch(events, batch_id=ids[0])
    batch["user_identities"].append({"identity_type": "customer_id", "identity": "CUST-998877"})
    assert invoke(api_event(batch)).status == 422


def test_the_list_counts_what_is_parked_by_reason_connection_dataset_and_age_and_hides_nothing(
    aws, function_env, invoke, graph, capsys
):
    missing = Fault.graph_error(100, error_subcode=33, message="Object with ID does not exist")
    invalid = Fault.graph_error(100, error_subcode=2804050, message="Invalid parameter: cust-998877 jane doe")
    expired = Fault.graph_error(2635, message="You are calling a deprecated version of the Graph API")
    park(invoke, graph, function_env, "111", missing, ["a-1", "a-2"])
    park(invoke, graph, function_env, "111", invalid, ["b-1"])
    park(invoke, graph, function_env, "222", expired, ["c-1", "c-2", "c-3"])

    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "parked: 3 sets, 6 events, in 3 messages" in out
    assert counts(out, "events by dataset:") == {"111": 3, "222": 3}
    assert counts(out, "events by connection:") == {"default": 6}
    assert counts(out, "events by age:") == {"under 1 hour": 6}
    reasons = counts(out, "events by reason:")
    assert sorted(reasons.values()) == [1, 2, 3] and len(reasons) == 3
    assert any("subcode 33" in reason for reason in reasons) and any("2635" in reason for reason in reasons)
    sets = out.split("\nsets:\n")[1].splitlines()[1:]
    assert len(sets) == 3
    assert sorted(line.split()[1] for line in sets) == ["1", "2", "3"]  # events per set
    assert {line.split()[-2] for line in sets} == {
        "100/33",
        "100/2804050",
        "2635/-",
    }
    for value in PERSONAL:  # as words: Meta's own "does not exist" is not the user's last name
        assert not re.search(rf"\b{re.escape(value)}\b", out.lower()), value

    graph.received.clear()
    report = replay(load_settings())  # right after the list: nothing hidden from it
    assert report.delivered_events == 6 and report.finished
    assert Counter(event["event_id"] for request in graph.received for event in request.data) == Counter(
        ["a-1", "a-2", "b-1", "c-1", "c-2", "c-3"]
    )


def test_the_list_sets_aside_what_it_cannot_read_and_leaves_it_there(aws, function_env, graph, capsys):
    function_env(FACEBOOK_API="conversions_api")
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    sqs.send_message(QueueUrl=aws["PARKING_QUEUE_URL"], MessageBody="not json")
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "parked: 0 sets, 0 events, in 1 messages" in out and "not JSON" in out
    left = sqs.receive_message(QueueUrl=aws["PARKING_QUEUE_URL"], VisibilityTimeout=0)["Messages"]
    assert [message["Body"] for message in left] == ["not json"]  # visible again at once
