"""Probes of the settled-events table (issue 21: "what one invocation cannot settle is left so that mParticle's
resend continues the work ... every bad one parked once"), with DynamoDB failing as it does under load.

forwarder/settled.py: "a table that cannot be read or written costs only the memory (the work then
restarts, as without a table)". It does not restart as without a table: with a table configured, the rejected
events of a batch answered 503 are parked *now*, whether or not the table then remembers them.

A test marked xfail(strict=True) is a finding (see test_probe_connections.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from forwarder import settled
from tests.faulty_servers import AwsProxy, AwsStep, fresh_aws_clients, parked_messages
from tests.support import api_event, commerce_event, make_batch

IDS = ["ok-1", "BAD-2", "ok-3", "ok-4"]
THROTTLED = AwsStep(error=(400, "ProvisionedThroughputExceededException"))


def _parked(aws: dict[str, str]) -> Counter[tuple[str, str]]:
    """(dataset, event_id) of every parked event, as many times as it is parked."""
    return Counter(
        (message["destination"]["dataset_id"], event["event_id"])
        for message in parked_messages(aws)
        for event in message["events"]
    )


ONCE_EACH = Counter({("111", "BAD-2"): 1, ("222", "BAD-2"): 1})  # rejected in each dataset, parked once in each


@pytest.mark.xfail(strict=True, reason="finding: a DynamoDB failure parks the same event twice across retries")
@pytest.mark.parametrize("failing", ["BatchWriteItem", "BatchGetItem"])
def test_each_bad_event_is_parked_once_across_retries_when_dynamodb_fails(
    failing, aws, function_env, invoke, graph, monkeypatch
):
    """Dataset 111 rejects BAD-2 (isolated and parked now, since a table is configured); dataset 222 fails
    transiently until the invocation's time is out, so the batch is answered 503 and mParticle resends it.
    DynamoDB throttles the write (the first invocation) or the read (the resend): the resend isolates BAD-2
    again and parks it a second time. No wall clock in the verdict: 222 never succeeds in the first call."""
    batch = make_batch([commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i})
                        for i in IDS])
    graph.reject_marked, graph.blame = "BAD", True
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        function_env(FACEBOOK_API="conversions_api", OFFLINE_EVENT_SET_ID="111,222",
                     AWS_ENDPOINT_URL_DYNAMODB=proxy.url)
        monkeypatch.setattr(settled, "_dynamodb", settled._dynamodb.__wrapped__)  # a client for the proxy
        graph.unavailable = {"222"}
        if failing == "BatchWriteItem":
            proxy.script(failing, *[THROTTLED] * 10)
        with fresh_aws_clients():
            first = invoke(api_event(batch), timeout=8)
            assert first.status == 503, first.body
            graph.unavailable = set()
            if failing == "BatchGetItem":
                proxy.script(failing, *[THROTTLED] * 10)
            resend = invoke(api_event(batch))
        assert resend.status == 200, resend.body
        assert proxy.count(failing) >= 1
    assert _parked(aws) == ONCE_EACH, _parked(aws)


def test_each_bad_event_is_parked_once_across_retries_when_dynamodb_answers(aws, function_env, invoke, graph):
    """What holds: with the table answering, the resend leaves BAD-2 out and it stays parked once."""
    batch = make_batch([commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i})
                        for i in IDS])
    graph.reject_marked, graph.blame = "BAD", True
    function_env(FACEBOOK_API="conversions_api", OFFLINE_EVENT_SET_ID="111,222")
    graph.unavailable = {"222"}
    assert invoke(api_event(batch), timeout=8).status == 503
    graph.unavailable = set()
    assert invoke(api_event(batch)).status == 200
    assert _parked(aws) == ONCE_EACH, _parked(aws)
