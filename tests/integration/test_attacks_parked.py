"""Probes of parking, `make parked` (replay --list) and replay: what an operator sees, and what a set costs.

Found by a fresh tester's attack; each kept as a regression test.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import boto3
import pytest

from forwarder.parked_list import list_parked, render
from forwarder.parking import sqs_client
from tests.faulty_servers import MovedClock

LEAKED = "Invalid parameter: external_id CUST-998877 unknown; ph +1 650-555-1212"


def _event() -> dict[str, Any]:
    return {
        "event_name": "Purchase",
        "event_id": "m-1",
        "event_time": int(time.time()) - 60,
        "action_source": "physical_store",
        "user_data": {
            "external_id": hashlib.sha256(b"CUST-998877").hexdigest(),
            "ph": hashlib.sha256(b"16505551212").hexdigest(),
        },
        "custom_data": {"value": 10.0, "currency": "USD"},
    }


def test_make_parked_never_prints_a_personal_value_a_stored_reason_quotes(aws, function_env):
    """The previous release's buffered sender put Meta's text, customer id included, into the parked
    reason. Such messages stay in the parking queue after the upgrade (14 days); the listing prints their
    reason verbatim although the message's own events hold the digests that would identify it."""
    body = {
        "format": 2,
        "set_id": "a" * 64,
        "part": 0,
        "parts": 1,
        "parked_at": int(time.time()) - 3600,
        "settings": {"api": "conversions_api", "api_version": "v26.0", "event_set_id": "1234567890"},
        "reason": f"rejected by Facebook (code 100): {LEAKED}",
        "events": [_event()],
    }
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    sqs.send_message(QueueUrl=aws["PARKING_QUEUE_URL"], MessageBody=json.dumps(body))
    printed = render(list_parked(sqs_client(), aws["PARKING_QUEUE_URL"]))
    assert "1 sets, 1 events" in printed
    assert "998877" not in printed and "555-1212" not in printed, printed


# --- replay: its parking deadline starts before the set is sent -----------------------------------------------


def _acknowledged_orders(graph: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for request in graph.received:
        if request.status == 200:
            for event in request.data:
                key = event.get("order_id") or event.get("event_id")
                found[key] = found.get(key, 0) + 1
    return found


@pytest.mark.parametrize("api", ["offline_conversions", "conversions_api"])
def test_a_replay_that_isolates_for_over_15_seconds_still_reparks_and_never_resends(
    api, aws, function_env, invoke, graph, monkeypatch
):
    """replay._send gives the set's requests SEND_BUDGET_SECONDS each, but its parking deadline is
    Deadline.after(AWS_CALL_SECONDS = 15 s) taken *before* sending. A parked set of 8 events, one bad, against a
    Facebook taking 5 s per answer: isolation needs 4 requests (20 s); the bad event cannot be parked again
    ("in time"), the set is kept although its 7 good events were delivered, and every later replay delivers
    them again: on the Offline Conversions API (no event_id) each replay counts them once more; on the
    Conversions API the set never leaves the queue (replay exits 1 for ever)."""
    from forwarder import replay as replay_module
    from forwarder.settings import load_settings
    from tests.support import api_event, commerce_event, make_batch

    function_env(FACEBOOK_API=api)
    ids = ["BAD-0", *(f"ok-{i}" for i in range(1, 8))]
    batch = make_batch(
        [commerce_event("purchase", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
    )
    graph.datasets = {"0"}  # refused whole: the batch is parked as one set
    assert invoke(api_event(batch)).status == 422
    graph.datasets, graph.reject_marked, graph.blame = None, "BAD", True
    graph.received.clear()

    clock = MovedClock(seconds_per_answer=5.0)  # each answer takes 5 s on the test's clock
    monkeypatch.setattr(replay_module, "Deadline", clock.deadlines)
    first = replay_module.replay(load_settings(), client=clock.slow_graph_client())
    second = replay_module.replay(load_settings())  # the operator runs it again (Facebook quick now)

    assert first.reparked_events == 1 and first.kept == {replay_module.REPARKED: 1}, first.as_dict()
    assert all(count == 1 for count in _acknowledged_orders(graph).values()), _acknowledged_orders(graph)
    assert second.messages == 1  # only the re-parked bad event is left


# --- make parked / make replay in a shell without a region ---------------------------------------------------


@pytest.mark.parametrize("argv", [["--list"], []], ids=["make parked", "make replay"])
def test_parked_and_replay_without_a_region_stop_with_a_message(aws, function_env, monkeypatch, capsys, argv):
    """An operator's shell without AWS_DEFAULT_REGION (the runbook's `eval "$(output ReplayEnvironment)"` sets
    it; a hand-made environment may not): both commands end in botocore's NoRegionError traceback, where their
    other failures print "list stopped: ..." / "replay stopped: ..." and exit 2."""
    from forwarder import replay as replay_module
    from tests.faulty_servers import fresh_aws_clients

    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with fresh_aws_clients():
        assert replay_module.main(argv) == 2
    assert "stopped" in capsys.readouterr().err
