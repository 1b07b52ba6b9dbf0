"""Observability: EMF metrics and the summary line per invocation, and X-Ray subsegments when tracing is on."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager

import pytest

from forwarder import telemetry
from localdev.graph_stub import Fault
from tests.support import api_event, commerce_event, make_batch


def emitted(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch):
    """The Powertools JSON log lines (its handler keeps the stdout it was created with, so capture it there)."""
    stream = io.StringIO()
    monkeypatch.setattr(telemetry.logger.registered_handler, "stream", stream)
    return lambda: emitted(stream.getvalue())


def metric_values(blobs: list[dict]) -> dict[tuple[str, str | None], float]:
    """(metric name, dimension value other than service) -> summed value, from every EMF blob."""
    values: dict[tuple[str, str | None], float] = {}
    for blob in blobs:
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            dimensions = [name for group in directive["Dimensions"] for name in group if name != "service"]
            label = blob[dimensions[0]] if dimensions else None
            for metric in directive["Metrics"]:
                raw = blob[metric["Name"]]
                values[(metric["Name"], label)] = values.get((metric["Name"], label), 0) + sum(
                    raw if isinstance(raw, list) else [raw]
                )
    return values


def test_one_invocation_emits_counts_by_reason_and_one_summary_line(function_env, invoke, graph, capsys, log_lines):
    capsys.readouterr()
    events = [commerce_event(), commerce_event("refund"), {"event_type": "screen_view"}]
    graph.script(Fault.graph_error(17))
    assert invoke(api_event(make_batch(events))).status == 200
    blobs = emitted(capsys.readouterr().out)
    values = metric_values(blobs)
    assert values[("EventsReceived", None)] == 3
    assert values[("EventsForwarded", None)] == 1
    assert values[("EventsSkipped", None)] == 2
    assert values[("EventsSkippedByReason", "unsupported_action")] == 1
    assert values[("EventsSkippedByReason", "not_commerce_event")] == 1
    assert values[("FacebookRequests", None)] == 1
    assert values[("FacebookRetries", None)] == 1
    assert ("FacebookLatency", None) in values
    assert all(
        blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MParticleFacebookForwarder"
        for blob in blobs
        if "_aws" in blob
    )
    summaries = [line for line in log_lines() if line.get("message") == "batch processed"]
    assert len(summaries) == 1
    assert summaries[0]["status"] == 200
    assert summaries[0]["batch_id"] == "42"
    assert summaries[0]["correlation_id"] == "test-request"


def test_a_failed_delivery_counts_as_a_delivery_failure_by_error_class(function_env, invoke, graph, capsys):
    capsys.readouterr()
    graph.script(Fault.graph_error(100, error_subcode=33))
    assert invoke(api_event(make_batch())).status == 422
    values = metric_values(emitted(capsys.readouterr().out))
    assert values[("DeliveryFailures", None)] == 1
    assert values[("FacebookErrorsByClass", "invalid")] == 1
    assert values[("EventsParked", None)] == 1


def test_match_key_coverage_is_counted_per_key_over_forwarded_events(
    function_env, invoke, graph, api, capsys, log_lines
):
    """EventsWithMatchKey (dimension key) and the summary's match_keys: forwarded events that carried each key,
    so coverage per key is that over EventsForwarded (docs/deploy.md, "Dashboard")."""
    function_env(FACEBOOK_API=api)
    capsys.readouterr()
    events = [commerce_event(source_message_id="m-1"), commerce_event("view_detail", source_message_id="m-2")]
    with_phone = make_batch(events, user_identities={"email": "jane@example.com", "mobile_number": "+1 650 555 1212"})
    without_phone = make_batch(events[:1], user_identities={"email": "john@example.com"}, user_attributes={})
    assert invoke(api_event(with_phone)).status == 200
    assert invoke(api_event(without_phone)).status == 200
    values = metric_values(emitted(capsys.readouterr().out))
    assert values[("EventsForwarded", None)] == 3
    assert values[("EventsWithMatchKey", "email")] == 3
    assert values[("EventsWithMatchKey", "phone")] == 2  # two thirds of the forwarded events carried a phone
    assert values[("EventsWithMatchKey", "fn")] == 2
    assert values[("EventsWithMatchKey", "madid")] == 3
    assert ("EventsWithMatchKey", "st") not in values
    summaries = [line["summary"] for line in log_lines() if line.get("message") == "batch processed"]
    assert summaries[0]["match_keys"] == {
        "email": 2, "phone": 2, "fn": 2, "ln": 2, "ct": 2, "country": 2, "madid": 2
    }  # fmt: skip
    assert summaries[1]["match_keys"] == {"email": 1, "madid": 1}


def test_no_key_is_counted_for_events_facebook_did_not_take(function_env, invoke, graph, capsys):
    capsys.readouterr()
    graph.script(Fault.graph_error(100))
    answer = invoke(api_event(make_batch()))
    assert answer.status == 422
    assert answer.body["match_keys"] == {}
    assert not [key for key in metric_values(emitted(capsys.readouterr().out)) if key[0] == "EventsWithMatchKey"]


def test_batch_ids_do_not_leak_into_the_next_invocation(function_env, invoke, graph, log_lines):
    invoke(api_event(make_batch(batch_id=777)))
    assert any(line.get("batch_id") == "777" for line in log_lines())
    seen = len(log_lines())
    invoke(api_event(raw="not json"))
    later = log_lines()[seen:]
    assert later
    assert all("batch_id" not in line for line in later)


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, True),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"}, False),
    ],
)
def test_tracing_is_on_only_inside_lambda(monkeypatch, env, enabled):
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert telemetry._tracing_enabled() is enabled


class RecordingTracer:
    """Stands in for Powertools' Tracer: records the subsegments the code opens."""

    def __init__(self) -> None:
        self.subsegments: list[str] = []
        self.provider = self

    @contextmanager
    def in_subsegment(self, name: str):
        self.subsegments.append(name)
        yield self

    def put_annotation(self, key: str, value: object) -> None:
        self.subsegments.append(f"{key}={value}")


def test_the_graph_call_and_the_secret_read_are_subsegments(function_env, invoke, graph, monkeypatch):
    tracer = RecordingTracer()
    monkeypatch.setattr(telemetry, "_tracer", tracer)
    assert invoke(api_event(make_batch())).status == 200
    assert "## Secrets Manager GetSecretValue" in tracer.subsegments
    assert "## Graph API events POST" in tracer.subsegments
    assert "events=1" in tracer.subsegments


def test_isolation_is_measured_rejected_events_by_subcode_and_the_extra_requests(function_env, invoke, graph, capsys):
    capsys.readouterr()
    graph.reject_marked = "BAD"
    ids = [f"{mark}-{i}" for i, mark in enumerate(["ok", "ok", "BAD", "ok"])]
    events = [commerce_event("add_to_cart", source_message_id=i, product_action={"transaction_id": i}) for i in ids]
    assert invoke(api_event(make_batch(events))).status == 200
    values = metric_values(emitted(capsys.readouterr().out))
    assert values[("EventsRejectedBySubcode", "2804050")] == 1
    assert values[("FacebookIsolationRequests", None)] >= 1
    assert values[("EventsParked", None)] == 1 and values[("EventsForwarded", None)] == 3


def test_a_buffered_stack_counts_each_event_received_once_and_its_match_keys_when_queued(
    aws, function_env, invoke, graph, capsys
):
    """The webhook counts what mParticle sent and the keys it queued; the sender what it forwarded. A message
    received twice (here: failed once, then delivered) is not received twice in EventsReceived."""
    import boto3

    from handler.sender import lambda_handler as sender
    from localdev.event_source import poll_once

    function_env(FACEBOOK_API="conversions_api", DELIVERY_MODE="buffered")
    capsys.readouterr()
    events = [
        commerce_event(source_message_id="m-1"),
        commerce_event("refund"),
        commerce_event(source_message_id="m-2"),
    ]
    batch = make_batch(events, user_identities={"email": "jane@example.com", "mobile_number": "+1 650 555 1212"})
    assert invoke(api_event(batch)).status == 200
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    graph.script(*[Fault.graph_error(2, status=500)] * 100)
    assert poll_once(sqs, aws["INGEST_QUEUE_URL"], sender, timeout=8.0).failures  # received, not delivered
    graph.recover()
    assert poll_once(sqs, aws["INGEST_QUEUE_URL"], sender).failures == []
    values = metric_values(emitted(capsys.readouterr().out))
    assert values[("EventsReceived", None)] == 3
    assert values[("EventsQueued", None)] == 2
    assert values[("EventsSkippedByReason", "unsupported_action")] == 1
    assert values[("EventsForwarded", None)] == 2
    assert values[("IngestMessagesRetried", None)] == 1
    assert values[("EventsWithMatchKey", "email")] == values[("EventsWithMatchKey", "phone")] == 2
