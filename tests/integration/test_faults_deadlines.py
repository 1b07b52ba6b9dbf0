"""Fault injection, hostile timing: every wait of an invocation ends by its deadline, in total.

Servers that send a byte just before each read times out (Graph, Secrets Manager, SQS), that hang, or
that answer just too late are run against the real handler with a short invocation timeout. Each row
checks that the answer comes before the Lambda would have been stopped, that its status is the one
mParticle must get, and the per-event accounting of the fault suite (tests/integration/test_faults.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import AwsProxy, AwsStep, FaultyGraph, Trickle, fresh_aws_clients, parked_messages
from tests.integration.test_faults import RETRIED, assert_accounted, fault_batch, ids_of
from tests.support import api_event

SUCCESS = '{"events_received": 3, "num_processed_entries": 3}'


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:
        yield stub


@dataclass(frozen=True)
class Slow:
    name: str
    timeout: float
    graph: tuple[Fault, ...] = ()
    secrets: tuple[AwsStep, ...] = ()  # GetSecretValue calls, in order
    sqs: tuple[AwsStep, ...] = ()  # SendMessage calls, in order
    status: int = 503
    error: str = ""
    env: dict[str, str] = field(default_factory=dict)


HANG = 120.0
SLOW = [
    Slow("Graph trickles its answer", 8, (Fault(200, Trickle(SUCCESS, 0.8)),), error="did not answer in time"),
    Slow("Graph trickles its headers", 8, (Fault(200, Trickle(SUCCESS, 0.8, headers_too=True)),)),
    Slow("Graph trickles an error", 8, (Fault(500, Trickle('{"error": {"code": 2}}', 0.8)),)),
    Slow("Graph hangs", 8, (Fault(delay=HANG),), error="did not answer in time"),
    Slow("Graph acknowledges after the deadline", 8, (Fault(delay=7.0),)),
    Slow("Secrets Manager answers slowly", 4, secrets=(AwsStep(delay_before=2.9),) * 3, error="Secrets Manager"),
    Slow("Secrets Manager trickles", 6, secrets=(AwsStep(trickle=0.5),) * 3, error="Secrets Manager"),
    Slow("Secrets Manager hangs", 6, secrets=(AwsStep(delay_before=HANG),) * 3, error="Secrets Manager"),
    Slow(
        "SQS hangs while parking a rejection",
        8,
        (Fault.graph_error(100, error_subcode=33),),
        sqs=(AwsStep(delay_before=HANG),) * 3,
        error="could not park",
    ),
    Slow(
        "SQS trickles while parking a rejection",
        8,
        (Fault.graph_error(100, error_subcode=33),),
        sqs=(AwsStep(trickle=0.5),) * 3,
        error="could not park",
    ),
    Slow(
        "token re-read after code 190 late in the invocation, Secrets Manager slow",
        10,
        # Answered 2.5 s in: the re-read has 6 s of the 8.5 left, what two 3 s SDK attempts would take; and
        # the answer comes nearly 3 s inside its read timeout, which shrinks as a busy machine spends time.
        (dataclasses.replace(Fault.graph_error(190), delay=2.5),),
        secrets=(AwsStep(), AwsStep(delay_before=HANG), AwsStep(delay_before=HANG)),
        error="Secrets Manager",
    ),
]


@pytest.mark.parametrize("case", SLOW, ids=[case.name for case in SLOW])
def test_every_invocation_answers_by_its_deadline(case, aws, function_env, invoke, graph):
    with AwsProxy(aws["AWS_ENDPOINT_URL"]) as proxy:
        proxy.script("GetSecretValue", *case.secrets)
        proxy.script("SendMessageBatch", *case.sqs)
        function_env(
            FACEBOOK_API="conversions_api",
            AWS_ENDPOINT_URL_SECRETS_MANAGER=proxy.url,
            AWS_ENDPOINT_URL_SQS=proxy.url,
        )
        graph.script(*case.graph)
        batch, ids = fault_batch(3)
        started = time.monotonic()
        with fresh_aws_clients():
            answer = invoke(api_event(batch), timeout=case.timeout)
        elapsed = time.monotonic() - started

    assert elapsed < case.timeout, f"answered after {elapsed:.1f} s; Lambda stops the function at {case.timeout} s"
    assert answer.status == case.status, answer.body
    assert answer.status in RETRIED
    assert case.error in answer.body["error"]
    assert "Retry-After" in answer.headers
    acknowledged = {key for request in graph.received if request.status == 200 for key in ids_of(request.data)}
    # A write SQS made but answered too slowly may be there; replay sends each parked set once (test_faults_parking).
    parked = {key for message in parked_messages(aws) for key in ids_of(message["events"])}
    assert_accounted(ids, answer, acknowledged, parked)
