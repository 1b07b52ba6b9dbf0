"""Fault injection, hostile answers: only well-formed, bounded fields of Facebook's answers are used.

A Graph server (or something in front of it) answers with nesting, sizes, types and counts that Meta
never sends. The handler must never crash, never report more (or fewer than zero) events forwarded
than it sent, never pass the oddity on in its answer or logs, and settle each event as the fault
suite requires: an answer that is not a Graph success is retried like any transient failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import FaultyGraph, parked_messages
from tests.integration.test_faults import assert_accounted, fault_batch, ids_of
from tests.support import SHORT_INVOCATION, api_event

COUNT = {"offline_conversions": "num_processed_entries", "conversions_api": "events_received"}


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:
        yield stub


def nested(depth: int) -> Any:
    value: Any = "trace"
    for _ in range(depth):
        value = {"a": value}
    return value


def success(api: str, **fields: Any) -> Fault:
    return Fault(200, {COUNT[api]: 3, **fields})


def error(**fields: Any) -> dict[str, Any]:
    # Subcode 33: about the request as a whole, so it is parked, not split (isolation has tests of its own).
    return {"error": {"message": "scripted", "type": "OAuthException", "code": 100, "error_subcode": 33, **fields}}


# (name, answers for one API, status, delivered on the first answer?)
ODD_SUCCESSES = {
    "fbtrace_id nested 300 levels": lambda api: success(api, fbtrace_id=nested(300)),
    "fbtrace_id with a newline": lambda api: success(api, fbtrace_id="Abc\n{}"),
    "fbtrace_id a number": lambda api: success(api, fbtrace_id=12345),
}
NOT_A_SUCCESS = {
    "negative count": lambda api: Fault(200, {COUNT[api]: -5}),
    "count above what was sent": lambda api: Fault(200, {COUNT[api]: 1000}),
    "count as text": lambda api: Fault(200, {COUNT[api]: "3"}),
    "count as a float": lambda api: Fault(200, {COUNT[api]: 3.0}),
    "count as true": lambda api: Fault(200, {COUNT[api]: True}),
    "count of the other API": lambda api: Fault(200, {COUNT[next(a for a in COUNT if a != api)]: 3}),
    "no count": lambda api: Fault(200, {"fbtrace_id": "Abc"}),
    "fbtrace_id of 7 MB (an answer no Graph success is)": lambda api: success(api, fbtrace_id="A" * 7_000_000),
    "a valid count beyond 64 KB of padding": lambda api: Fault(200, {COUNT[api]: 3, "pad": "x" * 100_000}),
}
ODD_ERRORS = {
    "code nested": (Fault(400, error(code=nested(300))), "rejected"),
    "code as text": (Fault(400, error(code="100")), "rejected"),
    "code beyond 32 bits": (Fault(400, error(code=2**70)), "rejected"),
    "message of 1 MB": (Fault(400, error(message="m" * 1_000_000)), "rejected"),
    "message nested": (Fault(400, error(message=nested(300))), "rejected"),
    "error_user_msg a list": (Fault(400, error(error_user_msg=["a", "b"])), "rejected"),
    "is_transient as text": (Fault(400, error(is_transient="true")), "rejected"),
    "fbtrace_id nested": (Fault(400, error(fbtrace_id=nested(300))), "rejected"),
    "error that is a list": (Fault(400, {"error": ["code", 100]}), "rejected"),
    "5xx with a code as text": (Fault(500, error(code="2")), "retried"),
    "error of 7 MB from a proxy": (Fault(502, "<html>" + "x" * 7_000_000), "retried"),
}


def run(batch: dict[str, Any], invoke: Any, timeout: float = 25.0) -> Any:
    answer = invoke(api_event(batch), timeout=timeout)
    assert len(json.dumps(answer.body)) < 10_000, "Facebook's oddity made it into the answer"
    assert 0 <= answer.body.get("forwarded", 0) <= answer.body.get("received", 0)
    for request in answer.body.get("requests", []):
        assert request.get("fbtrace_id") in (None, "StubTrace")
        assert request.get("code") is None or type(request["code"]) is int
        assert len(request.get("error", "")) <= 400
    return answer


@pytest.mark.parametrize("name", ODD_SUCCESSES)
def test_a_success_with_odd_fields_counts_as_delivered_without_them(name, api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    graph.script(ODD_SUCCESSES[name](api))
    batch, _ = fault_batch(3)
    answer = run(batch, invoke)
    assert answer.status == 200
    assert answer.body["forwarded"] == 3 and len(graph.received) == 1
    assert "fbtrace_id" not in answer.body["requests"][0]


@pytest.mark.parametrize("name", NOT_A_SUCCESS)
def test_a_200_that_is_not_a_graph_success_is_retried(name, api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    graph.script(NOT_A_SUCCESS[name](api))
    batch, ids = fault_batch(3)
    answer = run(batch, invoke)
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 3
    assert answer.body["requests"][0]["attempts"] == 2  # the odd answer, then Facebook's own
    acknowledged = {key for request in graph.received[1:] for key in ids_of(request.data)}
    assert_accounted(ids, answer, acknowledged, set())


@pytest.mark.parametrize("name", ODD_ERRORS)
def test_an_error_with_odd_fields_is_classified_by_its_valid_parts_only(name, api, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API=api)
    fault, outcome = ODD_ERRORS[name]
    graph.script(*[fault] * (30 if outcome == "retried" else 1))
    batch, ids = fault_batch(3)
    answer = run(batch, invoke, timeout=SHORT_INVOCATION)
    parked = {key for message in parked_messages(aws) for key in ids_of(message["events"])}
    if outcome == "rejected":
        assert answer.status == 422 and parked == set(ids)
    else:
        assert answer.status == 503 and parked == set()
    assert_accounted(ids, answer, set(), parked)
