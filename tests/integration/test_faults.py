"""Fault injection: the real handler against a real local Graph server and a real moto server.

Every row of FAULTS scripts one fault (Facebook, Secrets Manager, SQS, or the invocation's own time)
and states what mParticle must see and what must be parked. Every row also checks the accounting
invariant: each input event is acknowledged by Facebook (in a request the stand-in answered 200),
parked in SQS, in a batch answered with a status mParticle retries, or skipped with a counted reason.
Events are matched by id: `source_message_id` (the Conversions API's `event_id`) and the same value as
`transaction_id` (the Offline Conversions `order_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.replay import replay
from forwarder.settings import load_settings
from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import (
    AwsFaultServer,
    FaultyGraph,
    Reset,
    Truncated,
    closed_port,
    fresh_aws_clients,
    parked_messages,
    reasons,
)
from tests.support import NOW_MS, SHORT_INVOCATION, Answer, api_event, commerce_event, make_batch

# mParticle retries 408, 429 and 5xx; every other answer is final.
RETRIED = {408, 429, *range(500, 600)}
LIMIT = {"offline_conversions": 2000, "conversions_api": 1000}
ALL_APIS = ("offline_conversions", "conversions_api")
ONE_API = ("conversions_api",)
OFFLINE = ("offline_conversions",)
SKIPPED = {"skip-custom": "unmapped_custom_event", "skip-refund": "unsupported_action"}
SHORT = SHORT_INVOCATION  # for faults that last until the deadline (tests/support.py says how long)


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:
        yield stub


@pytest.fixture
def throttling_aws() -> Iterator[AwsFaultServer]:
    with AwsFaultServer(400, {"__type": "ThrottlingException", "message": "Rate exceeded"}) as server:
        yield server


def needs_throttling(case: Case) -> bool:
    return "{throttling}" in case.env.values()


def fault_batch(forwardable: int) -> tuple[dict[str, Any], list[str]]:
    """A batch of `forwardable` add_to_cart events plus the two SKIPPED ones; returns it and its event ids."""
    ids = [f"ev-{index}" for index in range(forwardable)]
    events = [commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
    custom = {
        "event_type": "custom_event",
        "data": {"event_name": "Store visit", "source_message_id": "skip-custom", "timestamp_unixtime_ms": NOW_MS},
    }
    refund = commerce_event("refund", source_message_id="skip-refund", product_action={"transaction_id": "sr"})
    events.insert(0, custom)
    events.insert(len(events) // 2, refund)
    return make_batch(events), ids


def event_key(event: dict[str, Any]) -> str:
    """The input event a rendered one came from: event_id (Conversions API) or order_id (Offline)."""
    return event.get("event_id") or event["order_id"]


def graph_5xx(code: int = 2) -> Fault:
    return Fault.graph_error(code, status=500, message="Service temporarily unavailable")


def partial(api: str) -> tuple[Fault, ...]:
    key = "num_processed_entries" if api == "offline_conversions" else "events_received"
    return (Fault(status=200, body={key: 1}),)


OK = Fault()  # answered normally by the stand-in


@dataclass(frozen=True)
class Case:
    """One fault and what must follow. `acknowledged`/`parked`: "all", "none", "first" or "second"
    (the parts of a split batch), or None when not asserted (Facebook may have processed a request
    whose answer never arrived)."""

    name: str
    faults: tuple[Fault, ...] | Callable[[str], tuple[Fault, ...]] = ()
    status: int = 200
    acknowledged: str | None = "all"
    parked: str = "none"
    attempts: int | None = None  # of the first request, when the fault decides it exactly
    graph_requests: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # "{closed}" / "{throttling}" filled in at run time
    timeout: float = 25.0
    apis: tuple[str, ...] = ALL_APIS
    error: str | None = None  # part of the error body
    stub_token: str | None = None  # the token the stand-in accepts, when not the secret's
    split: bool = False  # the batch has 5 events more than the API's per-request limit: two requests
    aws_calls: int = 0  # at least this many calls reached the throttling AWS endpoint
    replay: bool = False  # parked events are replayed afterwards and must all be acknowledged


FAULTS = [
    # Facebook: 5xx
    Case(
        "5xx burst then success",
        (graph_5xx(), Fault(500, ""), Fault(503, "<html>Unavailable</html>")),
        attempts=4,
        apis=ONE_API,
    ),
    Case("5xx with an undocumented code then success", (graph_5xx(5000),), attempts=2),
    Case(
        "5xx with an undocumented code until the deadline",
        (graph_5xx(5000),) * 30,
        503,
        "none",
        timeout=SHORT,
        error="code 5000",
    ),
    Case("5xx until the deadline", (graph_5xx(1),) * 30, 503, "none", timeout=SHORT, apis=ONE_API, error="code 1"),
    # Facebook: rate limits (HTTP 429 without a Graph body, and Meta's codes)
    Case("HTTP 429 then success", (Fault(429, "Too Many Requests"),), attempts=2),
    *[
        Case(f"rate limit code {code} then success", (Fault.graph_error(code),), attempts=2, apis=ONE_API)
        for code in (4, 17, 32, 341, 613, 80000, 80014)
    ],
    Case(
        "HTTP 429 until the deadline", (Fault(429, "Too Many Requests"),) * 30, 503, "none", timeout=SHORT, apis=ONE_API
    ),
    # Facebook: slow
    Case("slow answer within the read timeout", (Fault(delay=1.0),), attempts=1, apis=ONE_API),
    Case(
        "slow answer beyond the read timeout",
        (Fault(delay=10.0),),  # beyond the whole invocation, so beyond any read timeout in it
        503,
        None,
        timeout=SHORT,
        apis=ONE_API,
        error="did not answer in time",
    ),
    # Facebook: connections
    Case(
        "connection refused",
        status=503,
        acknowledged="none",
        graph_requests=0,
        env={"FACEBOOK_GRAPH_URL": "{closed}"},
        timeout=SHORT,
        apis=ONE_API,
        error="could not reach Facebook",
    ),
    Case("connection dropped mid-request then success", (Fault(drop=True),), attempts=2),
    Case("connection dropped until the deadline", (Fault(drop=True),) * 30, 503, "none", timeout=SHORT, apis=ONE_API),
    Case("connection reset then success", (Fault(status=0, body=Reset()),), attempts=2),
    # Facebook: truncated or non-JSON bodies
    Case("truncated 200 then success", (Fault(200, Truncated('{"events_received": 3')),), attempts=2),
    Case(
        "truncated 200 until the deadline",
        (Fault(200, Truncated('{"num_processed_entries": 3')),) * 30,
        503,
        None,  # Facebook processed them; the answer never arrived, so mParticle resends
        timeout=SHORT,
        apis=ONE_API,
    ),
    Case("non-JSON 200 then success", (Fault(200, "OK"),), attempts=2),
    Case("JSON 200 that is not an object then success", (Fault(200, ["events_received", 3]),), attempts=2),
    Case("cut-off JSON 500 then success", (Fault(500, '{"error": {"code": 2, "mess'),), attempts=2),
    Case("non-JSON 400", (Fault(400, "<html>Bad Request</html>"),), 422, "none", "all", error="HTTP 400"),
    # Facebook: final answers
    Case(
        "invalid parameter (code 100)",
        (Fault.graph_error(100, error_subcode=33),),
        422,
        "none",
        "all",
        error="code 100",
    ),
    Case("processed in part", partial, 200, "all", "all"),
    Case("token invalid even after re-reading", (), 502, "none", stub_token="not-the-secret", error="code 190"),
    Case("permission missing (code 200)", (Fault.graph_error(200),), 502, "none", error="code 200"),
    # Secrets Manager
    Case(
        "Secrets Manager unreachable",
        status=503,
        acknowledged="none",
        graph_requests=0,
        env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": "{closed}"},
        error="Secrets Manager",
    ),
    Case(
        "Secrets Manager throttled",
        status=503,
        acknowledged="none",
        graph_requests=0,
        env={"AWS_ENDPOINT_URL_SECRETS_MANAGER": "{throttling}"},
        error="ThrottlingException",
        aws_calls=2,  # the SDK retried before giving up
    ),
    # SQS, when a parking is needed (and when it is not)
    Case(
        "SQS unreachable while parking a rejection",
        (Fault.graph_error(100, error_subcode=33),),
        503,
        "none",
        env={"AWS_ENDPOINT_URL_SQS": "{closed}"},
        error="could not park",
    ),
    Case(
        "SQS throttled while parking a rejection",
        (Fault.graph_error(100, error_subcode=33),),
        503,
        "none",
        env={"AWS_ENDPOINT_URL_SQS": "{throttling}"},
        error="ThrottlingException",
        aws_calls=1,
    ),
    Case(
        "SQS unreachable while parking a partial answer",
        partial,
        503,
        "all",
        env={"AWS_ENDPOINT_URL_SQS": "{closed}"},
        apis=ONE_API,
        error="could not park",
    ),
    Case("SQS unreachable, nothing to park", (), 200, "all", env={"AWS_ENDPOINT_URL_SQS": "{closed}"}, apis=ONE_API),
    # The invocation itself
    Case("invocation too short to try", (), 503, "none", graph_requests=0, timeout=5.0, apis=ONE_API, error="no time"),
    # Split batches: one part fails, the other does not
    Case(
        "split: second part rejected",
        (OK, Fault.graph_error(100, error_subcode=33)),
        422,
        "first",
        "second",
        split=True,
        replay=True,
    ),
    Case(
        "split: first part rejected", (Fault.graph_error(100, error_subcode=33), OK), 422, "second", "first", split=True
    ),
    Case(
        "split: second part failing until the deadline",
        (OK, *[graph_5xx()] * 30),
        503,
        "first",
        timeout=SHORT,
        apis=ONE_API,
        split=True,
    ),
    Case(
        "split: first part rejected, second failing until the deadline",
        (Fault.graph_error(100, error_subcode=33), *[graph_5xx()] * 30),
        503,
        "none",
        "none",  # not parked: mParticle resends the whole batch, so a copy now would be parked twice
        timeout=SHORT,
        apis=ONE_API,
        split=True,
    ),
    Case("split: second part processed in part", lambda api: (OK, *partial(api)), 200, "all", "second", split=True),
    Case(
        "split: second part rejected, SQS unreachable",
        (OK, Fault.graph_error(100, error_subcode=33)),
        503,
        "first",
        env={"AWS_ENDPOINT_URL_SQS": "{closed}"},
        split=True,
    ),
    Case("split: first part rate limited once", (Fault.graph_error(17), OK, OK), 200, "all", split=True),
    # A part delivered, the rest failing in a way mParticle would retry: the Conversions API de-duplicates the
    # resend by event_id; the Offline Conversions API cannot, so the rest is parked and the answer is final.
    Case("split: second part permission missing", (OK, Fault.graph_error(200)), 502, "first", split=True, apis=ONE_API),
    Case(
        "split: second part permission missing",
        (OK, Fault.graph_error(200)),
        200,
        "first",
        "second",
        split=True,
        apis=OFFLINE,
    ),
    Case(
        "split: second part failing until the deadline",
        (OK, *[graph_5xx()] * 30),
        200,
        "first",
        "second",
        timeout=SHORT,
        apis=OFFLINE,
        split=True,
        replay=True,
    ),
    # Facebook says it took part of the first request (not which events): that request is parked whole with the
    # undelivered rest, on the API that cannot de-duplicate a resend.
    Case(
        "split: first part processed in part, second failing until the deadline",
        (Fault(200, {"num_processed_entries": 1990}), *[graph_5xx()] * 30),
        200,
        "first",
        "all",
        timeout=SHORT,
        apis=OFFLINE,
        split=True,
    ),
]


def ids_of(events: list[dict[str, Any]]) -> set[str]:
    return {event_key(event) for event in events}


def expected_ids(which: str | None, ids: list[str], limit: int) -> set[str] | None:
    return {"all": set(ids), "none": set(), "first": set(ids[:limit]), "second": set(ids[limit:]), None: None}[which]


def assert_accounted(ids: list[str], answer: Answer, acknowledged: set[str], parked: set[str]) -> None:
    """Every input event has a home: Facebook, the parking queue, mParticle's retry, or a counted skip."""
    everything = set(ids) | set(SKIPPED)
    retried = everything if answer.status in RETRIED else set()
    homes = acknowledged | parked | retried
    assert homes <= everything, f"sent or parked events that were never in the batch: {homes - everything}"
    missing = everything - homes
    if "received" in answer.body:
        summary = answer.body
        assert summary["received"] == len(everything)
        assert summary["skipped"] == {reason: 1 for reason in SKIPPED.values()}
        assert sum(request["events"] for request in summary["requests"]) + len(SKIPPED) == summary["received"]
        assert summary["parked"] == len(parked)
    if answer.status in RETRIED:
        assert not missing
    else:
        # Only the skipped events have no other home, and each is counted under its reason.
        assert missing == set(SKIPPED), f"lost: {sorted(missing - set(SKIPPED))[:10]}"
        assert sum(answer.body["skipped"].values()) == len(missing)


@pytest.mark.parametrize(
    ("case", "api"), [pytest.param(case, api, id=f"{case.name}-{api}") for case in FAULTS for api in case.apis]
)
def test_every_event_is_accounted_for_under_each_fault(case: Case, api: str, aws, function_env, invoke, graph, request):
    limit = LIMIT[api]
    batch, ids = fault_batch(limit + 5 if case.split else 3)
    throttling_aws = request.getfixturevalue("throttling_aws") if needs_throttling(case) else AwsFaultServer()
    places = {"{closed}": f"http://127.0.0.1:{closed_port()}"}
    if needs_throttling(case):
        places["{throttling}"] = throttling_aws.url
    function_env(FACEBOOK_API=api, **{name: places.get(value, value) for name, value in case.env.items()})
    graph.script(*(case.faults(api) if callable(case.faults) else case.faults))
    if case.stub_token:
        graph.access_token = case.stub_token

    if case.env:
        with fresh_aws_clients():  # the endpoints just set are the ones used, and only in this test
            answer = invoke(api_event(batch), timeout=case.timeout)
    else:
        answer = invoke(api_event(batch), timeout=case.timeout)

    assert answer.status == case.status, answer.body
    assert ("error" in answer.body) == (case.status != 200)
    if case.error:
        assert case.error in answer.body["error"]
    assert ("Retry-After" in answer.headers) == (case.status == 503)
    acknowledged = {key for request in graph.received if request.status == 200 for key in ids_of(request.data)}
    messages = parked_messages(aws)
    parked = {key for message in messages for key in ids_of(message["events"])}
    assert sum(len(message["events"]) for message in messages) == len(parked), "an event was parked twice"
    assert all(all(reasons(message)) and message["destination"]["api"] == api for message in messages)
    if (want := expected_ids(case.acknowledged, ids, limit)) is not None:
        assert acknowledged == want
    assert parked == expected_ids(case.parked, ids, limit)
    if case.attempts is not None:
        assert answer.body["requests"][0]["attempts"] == case.attempts
        assert len(graph.received) == case.attempts + (1 if case.split else 0)
    if case.graph_requests is not None:
        assert len(graph.received) == case.graph_requests
    assert len(throttling_aws.targets) >= case.aws_calls
    assert_accounted(ids, answer, acknowledged, parked)

    if case.replay:
        graph.received.clear()
        graph.recover()
        report = replay(load_settings())
        assert report.deleted == len(messages) and not report.kept
        assert {key for request in graph.received if request.status == 200 for key in ids_of(request.data)} == parked
        assert parked_messages(aws) == []


def test_a_resent_batch_after_a_lost_answer_carries_the_same_ids(aws, function_env, invoke, graph, api):
    """Facebook processed the first tries but their answers were lost, so mParticle resends the batch:
    every copy carries the same ids. The Conversions API counts them once by event_id; the Offline
    Conversions API has no such key (README, "The two Facebook APIs")."""
    function_env(FACEBOOK_API=api)
    batch, ids = fault_batch(3)
    graph.script(*[Fault(200, Truncated('{"events_received": 3'))] * 30)
    assert invoke(api_event(batch), timeout=SHORT).status == 503
    graph.recover()
    assert invoke(api_event(batch)).status == 200  # mParticle's retry
    deliveries = [ids_of(request.data) for request in graph.received if request.status == 200]
    assert len(deliveries) >= 2
    assert all(delivered == set(ids) for delivered in deliveries)
