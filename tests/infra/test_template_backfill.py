"""template.yaml's backfill (Backfill true): a bucket, the function that sends what is put under backfill/,
and the state machine that runs it until a file is sent (docs/deploy.md, "Backfill").

Off by default; when on, least privilege (the bucket's backfill/ prefix, the stack's secret and parking
queue), the same environment and build as the webhook, and the wiring the handler relies on: the event it
is given, the answer the state machine loops on, the object names that start an execution.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfnlint.decode import decode_str

from forwarder.backfill import lock
from forwarder.backfill import run as backfill_run
from forwarder.backfill.checkpoint import SUFFIX, Checkpoint
from forwarder.backfill.files import Location
from forwarder.backfill.report import S3Report
from handler import backfill as backfill_handler
from tests.infra.test_template import (
    BACKFILL,
    FUNCTION_ID,
    ROOT,
    TEMPLATE,
    actions,
    dangling,
    deployed,
    function_policies,
    getatt,
    makefile_targets,
    plain,
    resolve_sub,
)

BACKFILL_ID = "BackfillFunction"
STATE_MACHINE_ID = "BackfillStateMachine"
BUCKET_ID = "BackfillBucket"
BACKFILL_RESOURCES = {
    BUCKET_ID,
    "BackfillBucketPolicy",
    BACKFILL_ID,
    "BackfillLogGroup",
    STATE_MACHINE_ID,
    "BackfillFailuresAlarm",
}
LAMBDA_MAX_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches
    return plain(decoded)


@pytest.fixture(scope="module")
def stack(template: dict[str, Any]) -> dict[str, Any]:
    resources, _ = deployed(template, Backfill="true")
    return resources


@pytest.fixture(scope="module")
def backfill_function(stack: dict[str, Any]) -> dict[str, Any]:
    return stack[BACKFILL_ID]


@pytest.fixture(scope="module")
def machine(stack: dict[str, Any]) -> dict[str, Any]:
    return stack[STATE_MACHINE_ID]["Properties"]


def test_backfill_is_off_by_default_and_adds_only_its_own_resources(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["Backfill"]
    assert parameter["AllowedValues"] == ["false", "true"] and parameter["Default"] == "false"
    assert template["Conditions"][BACKFILL] == {"Fn::Equals": [{"Ref": "Backfill"}, "true"]}
    conditional = {name for name, resource in template["Resources"].items() if resource.get("Condition") == BACKFILL}
    assert conditional == BACKFILL_RESOURCES
    off, off_outputs = deployed(template)
    on, on_outputs = deployed(template, Backfill="true")
    assert on.keys() - off.keys() == BACKFILL_RESOURCES
    assert on_outputs.keys() - off_outputs.keys() == {"BackfillBucketName", "BackfillStateMachineArn"}
    assert dangling(template, on, on_outputs) == set()
    assert dangling(template, *deployed(template, Backfill="true", DeliveryMode="buffered")) == set()


def test_the_backfill_function_is_built_and_configured_like_the_webhook(
    backfill_function: dict[str, Any], stack: dict[str, Any]
) -> None:
    props, webhook = backfill_function["Properties"], stack[FUNCTION_ID]["Properties"]
    assert backfill_function["Metadata"] == {"BuildMethod": "makefile"}
    assert f"build-{BACKFILL_ID}" in makefile_targets()
    assert props["Handler"] == "handler.backfill.lambda_handler" and (ROOT / "handler" / "backfill.py").is_file()
    same = ("CodeUri", "Runtime", "Architectures", "Tracing")
    assert {key: props[key] for key in same} == {key: webhook[key] for key in same}
    assert props["Environment"] == webhook["Environment"]
    assert "Events" not in props and "Role" not in props  # only the state machine invokes it
    (group,) = [g for g in stack.values() if g["Type"] == "AWS::Logs::LogGroup" and BACKFILL_ID in str(g)]
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{BACKFILL_ID}}}"}


def test_the_function_pauses_well_before_its_timeout(backfill_function: dict[str, Any]) -> None:
    timeout = backfill_function["Properties"]["Timeout"]
    assert timeout == LAMBDA_MAX_TIMEOUT_S
    # It starts no gathering with less than MIN_GATHERING_SECONDS left before its own stop, STOP_MARGIN before the end.
    assert timeout / 4 > backfill_handler.STOP_MARGIN_SECONDS + backfill_run.MIN_GATHERING_SECONDS


S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]


def test_the_backfill_function_may_do_what_the_webhook_may_and_read_and_write_under_backfill_only(
    template: dict[str, Any],
) -> None:
    """What the webhook may do in every stack (its secret, parking, ...), the same customer-managed key, and the
    bucket's backfill/ prefix: nothing else."""
    resources = template["Resources"]

    def grants(function_id: str) -> list[tuple[str | None, dict[str, Any]]]:
        return [
            (c, statement) for c, statements in function_policies(resources[function_id]) for statement in statements
        ]

    webhook = sorted(a for c, s in grants(FUNCTION_ID) if c is None for a in actions(s))
    every = grants(BACKFILL_ID)
    assert sorted(a for c, s in every if c is None for a in actions(s)) == sorted(webhook + S3_ACTIONS)
    conditional = [(c, a) for c, s in every if c for a in actions(s)]
    assert conditional == [("HasConnectionsParameter", "ssm:GetParameter"), ("DecryptWithSecretKey", "kms:Decrypt")]
    for _, statement in every:
        assert statement["Effect"] == "Allow" and "*" not in actions(statement)
        if "s3:GetObject" in actions(statement):
            assert statement["Resource"] == {"Fn::Sub": f"${{{BUCKET_ID}.Arn}}/backfill/*"}
        if "s3:ListBucket" in actions(statement):
            assert getatt(statement["Resource"]) == [BUCKET_ID, "Arn"]
            assert statement["Condition"] == {"StringLike": {"s3:prefix": "backfill/*"}}
        if "sqs:SendMessage*" in actions(statement):
            assert getatt(resolve_sub(statement["Resource"])[1]["queueName"]) == ["ParkingQueue", "QueueName"]


def test_the_bucket_is_private_encrypted_tls_only_kept_and_tells_eventbridge(stack: dict[str, Any]) -> None:
    bucket = stack[BUCKET_ID]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    (statement,) = stack["BackfillBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def wildcard(pattern: str) -> re.Pattern[str]:
    """An EventBridge wildcard pattern: `*` stands for any characters (EventBridge user guide, "Wildcard")."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def test_a_file_put_under_backfill_starts_an_execution_but_the_backfills_own_objects_do_not(
    machine: dict[str, Any],
) -> None:
    (event,) = machine["Events"].values()
    assert event["Type"] == "EventBridgeRule"
    pattern = event["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": BUCKET_ID}]
    patterns = [wildcard(entry["wildcard"]) for entry in pattern["detail"]["object"]["key"]]

    def starts(key: str) -> bool:
        return any(p.fullmatch(key) for p in patterns)

    # Every name the backfill reads, in any case (Location.kind lowers it; EventBridge's wildcards do not).
    for key in ["backfill/sales.csv", "backfill/2026/q1/sales.csv.gz", "backfill/batches.jsonl",
                "backfill/batches.jsonl.gz", "backfill/SALES.CSV", "backfill/Export.Csv.GZ", "backfill/b.JSONL",
                "backfill/b.jsonL.gZ", "backfill/s.cSv"]:  # fmt: skip
        assert starts(key), key
        Location(key, "bucket").kind  # noqa: B018 (and the function reads it)
    checkpoint = Checkpoint.place(Location("backfill/sales.csv", "bucket"), "default", None)
    own = [checkpoint, lock.place(checkpoint, SUFFIX), S3Report(Location("backfill/sales.csv.report.jsonl"))._part(1)]
    for key in ["sales.csv", "exports/sales.csv", "backfill/readme.txt", *(location.path for location in own)]:
        assert not starts(key), key


def test_the_state_machine_invokes_the_function_until_it_answers_finished(machine: dict[str, Any]) -> None:
    definition = machine["Definition"]
    assert machine["Type"] == "STANDARD"
    assert getatt(machine["DefinitionSubstitutions"]["BackfillFunctionArn"]) == [BACKFILL_ID, "Arn"]
    assert machine["Policies"] == [{"LambdaInvokePolicy": {"FunctionName": {"Ref": BACKFILL_ID}}}]
    send = definition["States"][definition["StartAt"]]
    assert send["Resource"] == "arn:aws:states:::lambda:invoke"
    assert send["Parameters"] == {"FunctionName": "${BackfillFunctionArn}", "Payload": {"detail.$": "$.detail"}}
    # The handler's answer (handler/backfill.py, `_answer`: booleans, in every answer) is what the Choice reads.
    assert send["ResultSelector"] == {
        "finished.$": "$.Payload.finished",
        "failed.$": "$.Payload.failed",
        "locked.$": "$.Payload.locked",
    }
    assert any("States.TaskFailed" in retry["ErrorEquals"] for retry in send["Retry"])
    choice = definition["States"][send["Next"]]
    by_variable = {(c["Variable"], c["BooleanEquals"]): c["Next"] for c in choice["Choices"]}
    assert choice["Choices"][0]["Variable"] == "$.progress.locked"  # before finished: a locked answer is not
    wait = definition["States"][by_variable[("$.progress.locked", True)]]
    assert wait["Type"] == "Wait" and wait["Next"] == definition["StartAt"]
    assert 0 < wait["Seconds"] < lock.LEASE_SECONDS  # a lapsed lock is found soon after
    assert by_variable[("$.progress.finished", False)] == definition["StartAt"]
    assert definition["States"][by_variable[("$.progress.failed", True)]]["Type"] == "Fail"
    assert definition["States"][choice["Default"]]["Type"] == "Succeed"


def test_a_stopped_backfill_raises_an_alarm(stack: dict[str, Any]) -> None:
    alarm = stack["BackfillFailuresAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": STATE_MACHINE_ID}}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
