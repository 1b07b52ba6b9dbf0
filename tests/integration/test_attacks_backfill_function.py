"""The stack's backfill function (handler/backfill.py) attacked as the state machine runs it: an invocation that
fails while joining the report, and a file that cannot be read to its end. Found by a fresh tester, each kept
as a regression test; moto's S3, SQS and Secrets Manager and the Graph stand-in.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from forwarder.backfill import files
from localdev.graph_stub import GraphStub
from tests.integration.test_backfill import acknowledged, write_csv
from tests.integration.test_backfill_function import BUCKET, KEY, handler, keys, object_created, s3

__all__ = ["handler", "s3"]  # the fixtures this module borrows

REPORT = f"{KEY}.report.jsonl"


@pytest.fixture
def join_fails_once() -> Iterator[dict[str, int]]:
    """S3 refuses the first CompleteMultipartUpload (SlowDown, as S3 answers under load): the call that joins
    the report's parts. A fault at the AWS boundary, registered on the function's own S3 client."""
    client = files.s3_client()
    calls = {"n": 0}

    def refuse_first(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "reduce your request rate"}}, "Complete")

    client.meta.events.register("before-call.s3.CompleteMultipartUpload", refuse_first)
    yield calls
    client.meta.events.unregister("before-call.s3.CompleteMultipartUpload", refuse_first)


def test_a_report_whose_join_failed_is_written_when_the_state_machine_retries_the_invocation(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any], join_fails_once: dict[str, int]
) -> None:
    """Every row is sent and the checkpoint says `finished` before the report's parts are joined; when the join
    fails (S3 throttled, or the invocation's last minute is not enough for thousands of parts), the state
    machine retries the invocation (States.TaskFailed), which finds the file finished, writes nothing, and so
    never joins: the execution ends AllSent with no `<key>.report.jsonl` beside the file."""
    local = tmp_path / "sales.csv.gz"
    write_csv(local, 300)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=local.read_bytes())

    with pytest.raises(ClientError):
        handler(object_created(KEY))
    retried = handler(object_created(KEY))

    assert join_fails_once["n"] >= 1
    assert retried["finished"] and not retried["failed"]
    assert REPORT in keys(s3), f"no report beside the file: {keys(s3)}"


def test_a_file_that_cannot_be_read_to_its_end_still_gets_the_report_of_the_rows_it_sent(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any]
) -> None:
    """A .csv.gz cut short: the gatherings read before the cut are sent and their report parts written, then
    the read fails (InputError) and the function answers `failed` without joining the parts. The operator,
    paged by BackfillFailuresAlarm, finds no report of the thousands of rows that did reach Facebook."""
    local = tmp_path / "sales.csv"
    write_csv(local, 6000)
    data = gzip.compress(local.read_bytes())
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=data[: len(data) * 9 // 10])

    answers = [handler(object_created(KEY))]
    while not answers[-1]["finished"]:  # the state machine invokes it again until it answers finished
        answers.append(handler(object_created(KEY)))
        assert len(answers) < 10
    answer = answers[-1]

    assert answer["failed"] and sum(acknowledged(graph).values()) > 1000, answer
    assert REPORT in keys(s3), f"{sum(acknowledged(graph).values())} rows sent, no report: {keys(s3)}"
    lines = [json.loads(line) for line in s3.get_object(Bucket=BUCKET, Key=REPORT)["Body"].read().splitlines()]
    assert sum(line["status"] == "forwarded" for line in lines) == sum(acknowledged(graph).values())


def test_an_execution_with_rows_reported_failed_answers_failed_as_the_boolean_the_state_machine_compares(
    tmp_path: Path, s3: Any, graph: GraphStub, handler: Callable[..., Any], function_env: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The state machine's Choice compares `$.progress.failed` with BooleanEquals true; the function answers
    `failed` as `error is not None or (stopped or tally.rows[FAILED])`, so a run that finishes with failed rows
    that did not stop it (the Offline Conversions API's `interrupted_while_sending`, after an invocation cut off
    mid-request) answers the row count, an integer: not the boolean true the rule matches, and the execution
    does not end NotAllSent (BackfillFailuresAlarm stays quiet about rows never sent)."""
    from forwarder.posting import Poster
    from tests.integration.test_backfill import Interrupted

    function_env(FACEBOOK_API="offline_conversions")
    local = tmp_path / "sales.csv"
    write_csv(local, 4500, api="offline_conversions")
    s3.put_object(Bucket=BUCKET, Key="backfill/sales.csv", Body=local.read_bytes())
    original = Poster.post

    def cut_off_after_the_second_request(self: Poster, *args: Any) -> Any:
        outcome = original(self, *args)
        if len(graph.received) == 2:
            raise Interrupted  # the invocation ends (a crash, or Lambda's timeout) before the answer is read
        return outcome

    monkeypatch.setattr(Poster, "post", cut_off_after_the_second_request)
    with pytest.raises(Interrupted):
        handler(object_created("backfill/sales.csv"))
    monkeypatch.setattr(Poster, "post", original)
    answers = [handler(object_created("backfill/sales.csv"))]
    while not answers[-1]["finished"]:
        answers.append(handler(object_created("backfill/sales.csv")))
        assert len(answers) < 10

    failed_rows = sum(answer["summary"]["failed"] for answer in answers)
    assert failed_rows > 0
    assert answers[-1]["failed"] is True, f"failed: {answers[-1]['failed']!r} after {failed_rows} failed rows"


def _eventbridge_wildcard(pattern: str, key: str) -> bool:
    """EventBridge's `wildcard` matching: `*` any run of characters, everything else itself, case-sensitive
    (content filtering in event patterns; only `equals-ignore-case` ignores case)."""
    import re

    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), key) is not None


@pytest.mark.parametrize("key", ["backfill/2026-03/SALES.CSV", "backfill/Export.Csv.GZ", "backfill/batches.JSONL"])
def test_every_name_the_backfill_reads_starts_an_execution(key: str) -> None:
    """The function (and `make backfill`) reads a name whatever the case of its suffix (`Location.kind` lowers
    it), but the bucket's EventBridge rule matches `backfill/*.csv` and the others case-sensitively: a file
    put as `SALES.CSV` (as many Windows and mainframe exports name them) starts no execution at all: nothing
    is sent, no report, no alarm."""
    from cfnlint.decode import decode_str

    from forwarder.backfill.files import Location

    Location(key, BUCKET).kind  # noqa: B018 (the function reads it)
    template, problems = decode_str((Path(__file__).resolve().parents[2] / "template.yaml").read_text())
    assert not problems
    rule = template["Resources"]["BackfillStateMachine"]["Properties"]["Events"]["FilePut"]["Properties"]
    patterns = [entry["wildcard"] for entry in rule["Pattern"]["detail"]["object"]["key"]]
    assert any(_eventbridge_wildcard(pattern, key) for pattern in patterns), f"{key} matches none of {patterns}"
