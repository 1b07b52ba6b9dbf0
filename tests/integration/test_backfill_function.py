"""The stack's backfill function end to end: its handler (template.yaml's BackfillFunction) invoked with the
EventBridge "Object Created" event S3 sends, as the backfill state machine invokes it, against moto's S3,
SQS and Secrets Manager and the Graph stand-in.

The state machine invokes it again until it answers `finished` (its Choice state); here a loop does. Time
is the invocation's own clock, moved on by each gathering's report, so the pauses come at the same rows
whatever the machine's speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from forwarder.backfill.report import S3Report
from localdev.graph_stub import GraphStub
from localdev.lambda_context import LocalContext
from tests.integration.test_backfill import acknowledged, expected_statuses, forwarded_orders, statuses, write_csv

BUCKET = "forwarder-backfill"
KEY = "backfill/2026-q1/sales.csv.gz"
SECONDS_PER_GATHERING = 300.0  # what each gathering costs on the invocation's clock
LAMBDA_TIMEOUT = 900


def object_created(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    """The event S3 sends to EventBridge for a new object (the state machine's input)."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": "e"}},
    }


@pytest.fixture
def s3(aws: dict[str, str]) -> Any:
    client = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def handler(function_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """The handler, with an invocation clock that each committed gathering moves on SECONDS_PER_GATHERING."""
    import handler.backfill

    function_env(FACEBOOK_API="conversions_api")
    offset = [0.0]
    commit = S3Report.commit

    def slow_commit(self: S3Report) -> int:
        offset[0] += SECONDS_PER_GATHERING
        return commit(self)

    monkeypatch.setattr(S3Report, "commit", slow_commit)
    monkeypatch.setattr(handler.backfill, "clock", lambda: time.monotonic() + offset[0])

    def invoke(event: dict[str, Any]) -> Any:
        offset[0] = 0.0  # a fresh invocation: its whole timeout ahead
        return handler.backfill.lambda_handler(event, LocalContext(timeout_seconds=LAMBDA_TIMEOUT))

    yield invoke


def keys(s3: Any) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_a_file_put_under_backfill_is_sent_over_several_invocations_and_reported_beside_it(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    local = tmp_path / "sales.csv.gz"
    expected = write_csv(local, 6000)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=local.read_bytes())

    answers = []
    while not answers or not answers[-1]["finished"]:
        answers.append(handler(object_created(KEY)))
        assert len(answers) < 10

    assert len(answers) > 1  # paused before the invocation's time ran out, then went on
    assert not any(answer["failed"] for answer in answers)
    assert acknowledged(graph) == forwarded_orders(expected)
    assert keys(s3) == [KEY, f"{KEY}.default.checkpoint.json", f"{KEY}.report.jsonl"]  # the parts are joined
    report = s3.get_object(Bucket=BUCKET, Key=f"{KEY}.report.jsonl")["Body"].read().decode()
    lines = [json.loads(line) for line in report.splitlines()]
    assert [line["row"] for line in lines] == sorted(expected)
    unmarked = {row: "forwarded" if s == "parked" else s for row, s in expected_statuses(expected).items()}
    assert statuses(lines) == unmarked

    again = handler(object_created(KEY))  # the same object again: nothing is sent twice, the report stays
    assert again["finished"] and acknowledged(graph) == forwarded_orders(expected)
    assert again["summary"]["inputs_sent_earlier"] == [f"s3://{BUCKET}/{KEY}"]
    assert s3.get_object(Bucket=BUCKET, Key=f"{KEY}.report.jsonl")["Body"].read().decode() == report


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (f"{KEY}.report.jsonl", "a backfill report"),
        (f"{KEY}.default.checkpoint.json", "must end in"),
        (f"{KEY}.report.jsonl.parts/000001.part", "must end in"),
        ("exports/sales.csv", "only objects under backfill/"),
    ],
)
def test_objects_the_backfill_writes_or_cannot_read_are_not_sent(
    key: str, reason: str, s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    answer = handler(object_created(key))
    assert answer["finished"] and not answer["failed"] and reason in answer["ignored"]
    assert graph.received == []


def test_a_file_without_a_header_ends_the_execution_as_failed_naming_the_problem(
    s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="backfill/no-header.csv", Body=b"jane@example.com,Purchase\n")
    answer = handler(object_created("backfill/no-header.csv"))
    assert answer["finished"] and answer["failed"] and "event_name" in answer["error"]
    assert "jane" not in json.dumps(answer) and graph.received == []


def test_an_s3_notification_event_is_taken_too(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    local = tmp_path / "small.csv"
    expected = write_csv(local, 300)
    s3.put_object(Bucket=BUCKET, Key="backfill/small+file.csv", Body=local.read_bytes())
    record = {"s3": {"bucket": {"name": BUCKET}, "object": {"key": "backfill/small%2Bfile.csv"}}}
    answer = handler({"Records": [record]})
    assert answer["finished"] and acknowledged(graph) == forwarded_orders(expected)
