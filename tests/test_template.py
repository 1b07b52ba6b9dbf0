"""template.yaml: lint-clean, least-privilege, alarmed, and wired to the code the way the contract says.

The template is read with cfn-lint's own decoder (short-form intrinsics become ``{"Ref": ...}`` dicts).
SAM policy templates are expanded here from their published definitions, so the IAM assertions are about
the statements CloudFormation will really create, not about the policy template names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.config import ManualArgs
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

# API Gateway's integration timeout for REST APIs; the function must answer before it.
API_GATEWAY_TIMEOUT_S = 29
FUNCTION_ID = "ForwarderFunction"

# README, "Configuration": what the deployed function must be given. FACEBOOK_GRAPH_URL and
# AWS_ENDPOINT_URL are for tests only and must never be set by the stack.
CONTRACT_ENV = {
    "SECRET_ID",
    "OFFLINE_EVENT_SET_ID",
    "SEND_CCPA_LIMITED_DATA_USE",
    "FACEBOOK_API",
    "FACEBOOK_API_VERSION",
    "UPLOAD_TAG",
    "PARKING_QUEUE_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
TEST_ONLY_ENV = {"FACEBOOK_GRAPH_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"}

# The statements of the two SAM policy templates the function may use, as published in
# aws/serverless-application-model samtranslator/policy_templates_data/policy_templates.json.
# test_policy_template_definitions_match_sam checks this copy when samtranslator is installed.
POLICY_TEMPLATES: dict[str, dict[str, Any]] = {
    "AWSSecretsManagerGetSecretValuePolicy": {
        "Statement": [
            {
                "Action": ["secretsmanager:GetSecretValue"],
                "Effect": "Allow",
                "Resource": {"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": "SecretArn"}}]},
            }
        ]
    },
    "SQSSendMessagePolicy": {
        "Statement": [
            {
                "Action": ["sqs:SendMessage*"],
                "Effect": "Allow",
                "Resource": {
                    "Fn::Sub": [
                        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}",
                        {"queueName": {"Ref": "QueueName"}},
                    ]
                },
            }
        ]
    },
}

METRICS_NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
# README, "Observability": the custom metrics that must page someone.
CUSTOM_ALARM_METRICS = {"DeliveryFailures", "EventsSkipped", "EventsParked", "ParkingFailures"}


# --- loading and small helpers -------------------------------------------------------------------------


def plain(node: Any) -> Any:
    """cfn-lint's decoded nodes as plain dicts/lists/strings (comparable, printable)."""
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches, [str(m) for m in matches]
    return plain(decoded)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    assert resources[FUNCTION_ID]["Type"] == "AWS::Serverless::Function"
    return resources[FUNCTION_ID]


@pytest.fixture(scope="module")
def env(function: dict[str, Any]) -> dict[str, Any]:
    return function["Properties"]["Environment"]["Variables"]


def of_type(resources: dict[str, Any], type_: str) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == type_}


def getatt(expr: Any) -> list[str] | None:
    if isinstance(expr, dict) and set(expr) == {"Fn::GetAtt"}:
        value = expr["Fn::GetAtt"]
        return value.split(".", 1) if isinstance(value, str) else list(value)
    return None


def ref(expr: Any) -> str | None:
    if isinstance(expr, dict) and set(expr) == {"Ref"}:
        return expr["Ref"]
    return None


def alternatives(expr: Any) -> list[Any]:
    """Every value an expression can take across conditions (Fn::If branches)."""
    if isinstance(expr, dict) and set(expr) == {"Fn::If"}:
        _, yes, no = expr["Fn::If"]
        return alternatives(yes) + alternatives(no)
    return [expr]


def substitute(node: Any, params: dict[str, Any]) -> Any:
    """Fill a policy template's ``{"Ref": "<Parameter>"}`` placeholders with the template's values."""
    if isinstance(node, dict):
        if ref(node) in params:
            return params[ref(node)]
        return {k: substitute(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, params) for v in node]
    return node


def resolve_sub(expr: Any) -> tuple[str, dict[str, Any]]:
    """A policy template's ``Fn::Sub [pattern, vars]`` as (pattern, vars)."""
    assert isinstance(expr, dict) and set(expr) == {"Fn::Sub"}, expr
    value = expr["Fn::Sub"]
    return (value, {}) if isinstance(value, str) else (value[0], value[1])


def function_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    """The IAM statements SAM will put in the function's role, policy templates expanded."""
    props = function["Properties"]
    assert "Role" not in props, "a custom Role bypasses the scoped policies below"
    statements = []
    for policy in props.get("Policies", []):
        assert isinstance(policy, dict) and len(policy) == 1, f"only policy templates are allowed: {policy}"
        (name, params), *_ = policy.items()
        assert name in POLICY_TEMPLATES, f"unexpected policy {name}: review its scope, then list it here"
        statements += substitute(POLICY_TEMPLATES[name]["Statement"], params)
    return statements


# --- cfn-lint / SAM CLI ----------------------------------------------------------------------------------


def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


def test_cfn_lint_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_aws_credentials(monkeypatch)
    matches = lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_cfn_lint_finds_nothing_in_other_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_aws_credentials(monkeypatch)
    regions = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "ap-northeast-1"]
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=regions))
    assert [str(m) for m in matches] == []


SAM = shutil.which("sam")


@pytest.mark.skipif(SAM is None, reason="SAM CLI not installed (optional, not in CI)")
def test_sam_validate_lint() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"SAM_CLI_TELEMETRY": "0", "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
    result = subprocess.run(  # noqa: S603 - our own template and the installed SAM CLI
        [SAM, "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_policy_template_definitions_match_sam() -> None:
    samtranslator = pytest.importorskip("samtranslator")
    path = Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json"
    published = json.loads(path.read_text())["Templates"]
    for name, definition in POLICY_TEMPLATES.items():
        assert published[name]["Definition"]["Statement"] == definition["Statement"], name


# --- the function ------------------------------------------------------------------------------------------


def test_function_runtime_and_limits(function: dict[str, Any]) -> None:
    props = function["Properties"]
    assert re.fullmatch(r"python3\.1\d", props["Runtime"])
    assert props["Architectures"] == ["arm64"]
    assert isinstance(props["Timeout"], int)
    assert 3 <= props["Timeout"] < API_GATEWAY_TIMEOUT_S
    assert props["Tracing"] == "Active"
    assert "MemorySize" in props


def test_function_entry_point_is_built_by_the_makefile(function: dict[str, Any]) -> None:
    props = function["Properties"]
    assert props["CodeUri"] == "."
    assert props["Handler"] == "handler.app.lambda_handler"
    assert function["Metadata"]["BuildMethod"] == "makefile"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^build-{FUNCTION_ID}:", makefile, re.MULTILINE)
    module, _, _ = props["Handler"].rpartition(".")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()


def test_function_environment_covers_the_contract(env: dict[str, Any], template: dict[str, Any]) -> None:
    assert env.keys() >= CONTRACT_ENV, sorted(CONTRACT_ENV - env.keys())
    assert not env.keys() & TEST_ONLY_ENV
    assert env["POWERTOOLS_SERVICE_NAME"] == "facebook-offline-forwarder"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MParticleFacebookForwarder"
    params = template["Parameters"]
    assert ref(env["OFFLINE_EVENT_SET_ID"]) in params


@pytest.mark.parametrize(
    ("variable", "allowed", "default"),
    [
        ("SEND_CCPA_LIMITED_DATA_USE", {"never", "always", "opted_out"}, "never"),
        ("FACEBOOK_API", {"offline_conversions", "conversions_api"}, "conversions_api"),
        ("POWERTOOLS_LOG_LEVEL", {"DEBUG", "INFO", "WARNING", "ERROR"}, "INFO"),
    ],
)
def test_enumerated_settings_come_from_constrained_parameters(
    env: dict[str, Any], template: dict[str, Any], variable: str, allowed: set[str], default: str
) -> None:
    parameter = template["Parameters"][ref(env[variable])]
    assert set(parameter["AllowedValues"]) == allowed
    assert parameter["Default"] == default


@pytest.mark.parametrize("variable", ["FACEBOOK_API_VERSION", "UPLOAD_TAG", "TEST_EVENT_CODE", "EVENT_NAME_OVERRIDES"])
def test_optional_settings_are_omitted_when_empty(env: dict[str, Any], template: dict[str, Any], variable: str):
    # An empty string would reach the code as a (probably invalid) value; absent means "use the default".
    condition, value, otherwise = env[variable]["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Parameters"][ref(value)]["Default"] == ""
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [value, ""]}]}


def test_function_log_group_has_retention(resources: dict[str, Any]) -> None:
    groups = [
        g["Properties"]
        for g in of_type(resources, "AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{FUNCTION_ID}}}"}
    ]
    assert len(groups) == 1
    assert "RetentionInDays" in groups[0]


# --- IAM: least privilege ------------------------------------------------------------------------------------


def test_function_may_only_read_its_secret_and_park_in_its_queue(function: dict[str, Any]) -> None:
    actions = sorted(a for s in function_statements(function) for a in s["Action"])
    assert actions == ["secretsmanager:GetSecretValue", "sqs:SendMessage*"]
    assert all(s["Effect"] == "Allow" and "NotResource" not in s for s in function_statements(function))


def test_get_secret_value_is_scoped_to_the_stack_secret(
    function: dict[str, Any], resources: dict[str, Any], template: dict[str, Any], env: dict[str, Any]
) -> None:
    (statement,) = [s for s in function_statements(function) if "secretsmanager:GetSecretValue" in s["Action"]]
    pattern, variables = resolve_sub(statement["Resource"])
    assert pattern == "${secretArn}"
    secret_arn = variables["secretArn"]
    # The code reads the secret it is allowed to read, and the operator is told which one that is.
    assert env["SECRET_ID"] == secret_arn
    assert template["Outputs"]["SecretArn"]["Value"] == secret_arn
    for alternative in alternatives(secret_arn):
        name = ref(alternative)
        assert name is not None, f"secret ARN must be a Ref, not {alternative}"
        if name in resources:
            assert resources[name]["Type"] == "AWS::SecretsManager::Secret"
        else:
            assert name == "ExistingSecretArn"
            assert template["Parameters"][name]["AllowedPattern"].startswith("^(arn:aws")
    # The stack's own secret exists exactly when the If picks it.
    condition, created, _ = secret_arn["Fn::If"]
    assert resources[ref(created)]["Condition"] == condition


def test_created_secret_has_both_keys(resources: dict[str, Any]) -> None:
    (secret,) = of_type(resources, "AWS::SecretsManager::Secret").values()
    generate = secret["Properties"]["GenerateSecretString"]
    keys = set(json.loads(generate["SecretStringTemplate"])) | {generate["GenerateStringKey"]}
    assert keys == {"access_token", "webhook_authorization"}


def test_send_message_is_scoped_to_the_parking_queue(
    function: dict[str, Any], resources: dict[str, Any], env: dict[str, Any]
) -> None:
    (statement,) = [s for s in function_statements(function) if "sqs:SendMessage*" in s["Action"]]
    pattern, variables = resolve_sub(statement["Resource"])
    assert pattern.endswith(":${queueName}")
    queue_id, attribute = getatt(variables["queueName"])
    assert attribute == "QueueName"
    assert resources[queue_id]["Type"] == "AWS::SQS::Queue"
    assert ref(env["PARKING_QUEUE_URL"]) == queue_id


def test_no_other_iam_grants_reach_the_function(resources: dict[str, Any]) -> None:
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        assert not of_type(resources, type_), type_
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        principals = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
        assert "lambda.amazonaws.com" not in principals, name


def test_parking_queue_is_encrypted_and_keeps_messages_14_days(resources: dict[str, Any]) -> None:
    (queue,) = of_type(resources, "AWS::SQS::Queue").values()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 1209600


# --- API ------------------------------------------------------------------------------------------------------


def test_api_has_exactly_post_events(resources: dict[str, Any], function: dict[str, Any]) -> None:
    (api_id,) = of_type(resources, "AWS::Serverless::Api")
    api = resources[api_id]["Properties"]
    assert "DefinitionBody" not in api and "DefinitionUri" not in api, "routes must come from function events"
    assert not of_type(resources, "AWS::Serverless::HttpApi")
    assert not [
        r for r in resources.values() if r["Type"].startswith(("AWS::ApiGateway::Method", "AWS::ApiGateway::Res"))
    ]
    routes = []
    for res in of_type(resources, "AWS::Serverless::Function").values():
        for event in res["Properties"].get("Events", {}).values():
            assert event["Type"] == "Api", event
            routes.append((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
            assert ref(event["Properties"]["RestApiId"]) == api_id, "no implicit ServerlessRestApi"
    assert routes == [("POST", "/events")]
    assert [e["Type"] for e in function["Properties"]["Events"].values()] == ["Api"]


def test_api_stage_is_throttled_logged_and_traced(resources: dict[str, Any]) -> None:
    (api,) = of_type(resources, "AWS::Serverless::Api").values()
    props = api["Properties"]
    assert props["TracingEnabled"] is True
    (setting,) = props["MethodSettings"]
    assert setting["ResourcePath"] == "/*" and setting["HttpMethod"] == "*"
    assert "ThrottlingRateLimit" in setting and "ThrottlingBurstLimit" in setting
    group_id, attribute = getatt(props["AccessLogSetting"]["DestinationArn"])
    assert attribute == "Arn"
    assert resources[group_id]["Type"] == "AWS::Logs::LogGroup"
    assert "RetentionInDays" in resources[group_id]["Properties"]
    log_format = props["AccessLogSetting"]["Format"]
    assert "$context.requestId" in log_format
    assert "Authorization" not in log_format and "$input.body" not in log_format


# --- alarms -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alarms(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v["Properties"] for k, v in of_type(resources, "AWS::CloudWatch::Alarm").items()}


def alarm_for(alarms: dict[str, Any], namespace: str, metric: str) -> dict[str, Any]:
    found = [a for a in alarms.values() if a.get("Namespace") == namespace and a.get("MetricName") == metric]
    assert len(found) == 1, f"expected one alarm on {namespace}/{metric}, found {len(found)}"
    return found[0]


def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_every_alarm_notifies_the_topic(alarms: dict[str, Any], resources: dict[str, Any], template: dict[str, Any]):
    (topic_id,) = of_type(resources, "AWS::SNS::Topic")
    assert ref(template["Outputs"]["AlarmTopicArn"]["Value"]) == topic_id
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name
        assert alarm.get("TreatMissingData") == "notBreaching", name


def test_alarm_email_subscription_is_optional(resources: dict[str, Any], template: dict[str, Any]) -> None:
    (subscription,) = of_type(resources, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert ref(subscription["Properties"]["Endpoint"]) in template["Parameters"]
    assert subscription["Condition"] in template["Conditions"]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_lambda_failure_alarms(alarms: dict[str, Any], metric: str) -> None:
    alarm = alarm_for(alarms, "AWS/Lambda", metric)
    assert dimensions(alarm) == {"FunctionName": {"Ref": FUNCTION_ID}}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_duration_alarm_fires_before_the_timeout(alarms: dict[str, Any], function: dict[str, Any]) -> None:
    alarm = alarm_for(alarms, "AWS/Lambda", "Duration")
    assert dimensions(alarm) == {"FunctionName": {"Ref": FUNCTION_ID}}
    timeout_ms = function["Properties"]["Timeout"] * 1000
    assert 0.5 * timeout_ms <= alarm["Threshold"] < timeout_ms
    assert alarm["ExtendedStatistic"] in {"p95", "p99", "p99.9"}


def test_api_5xx_alarm_watches_our_stage(alarms: dict[str, Any], resources: dict[str, Any]) -> None:
    (api,) = of_type(resources, "AWS::Serverless::Api").values()
    alarm = alarm_for(alarms, "AWS/ApiGateway", "5XXError")
    assert dimensions(alarm) == {"ApiName": api["Properties"]["Name"], "Stage": api["Properties"]["StageName"]}
    assert alarm["Statistic"] == "Sum"


@pytest.mark.parametrize("metric", sorted(CUSTOM_ALARM_METRICS))
def test_custom_metric_alarms_match_the_code_namespace(alarms: dict[str, Any], env: dict[str, Any], metric: str):
    alarm = alarm_for(alarms, env[METRICS_NAMESPACE_ENV], metric)
    assert dimensions(alarm) == {"service": env[SERVICE_ENV]}
    assert alarm["Statistic"] == "Sum"
    if metric == "EventsSkipped":
        assert ref(alarm["Threshold"]) == "EventsSkippedThreshold"
    else:
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_parked_batches_waiting_raise_an_alarm(alarms: dict[str, Any], env: dict[str, Any]) -> None:
    alarm = alarm_for(alarms, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dimensions(alarm) == {"QueueName": {"Fn::GetAtt": [ref(env["PARKING_QUEUE_URL"]), "QueueName"]}}
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def dashboard_metrics(body: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, metric) pairs a dashboard body plots, from metric rows and SEARCH expressions."""
    found = set()
    for widget in body["widgets"]:
        previous: list[str] = []
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expression = row[0]["expression"]
                namespace = re.search(r"\{([^,}]+)", expression).group(1)
                found |= {(namespace, m) for m in re.findall(r'MetricName="(\w+)"', expression)}
                continue
            if row[0] == "...":
                row = previous
            elif row[0] == ".":
                row = [previous[0], row[1], *row[2:]]
            found.add((row[0], row[1]))
            previous = row
    return found


def test_dashboard_shows_the_design_notes_metrics(resources: dict[str, Any], env: dict[str, Any]) -> None:
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    text, variables = resolve_sub(dashboard["Properties"]["DashboardBody"])
    for name, value in variables.items():
        text = text.replace(f"${{{name}}}", value)
    body = json.loads(re.sub(r"\$\{[^}]+\}", "placeholder", text))
    namespace = env[METRICS_NAMESPACE_ENV]
    expected = [
        "EventsReceived",
        "EventsForwarded",
        "EventsSkipped",
        "EventsSkippedByReason",
        "FacebookRequests",
        "FacebookErrors",
        "FacebookErrorsByClass",
        "FacebookLatency",
        "FacebookRetries",
        "DeliveryFailures",
        "EventsParked",
        "ParkingFailures",
        "ColdStart",
    ]
    assert {(namespace, m) for m in expected} <= dashboard_metrics(body)


# --- outputs ------------------------------------------------------------------------------------------------------


def test_outputs_tell_the_operator_what_to_configure(template: dict[str, Any], resources: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"WebhookUrl", "SecretArn", "AlarmTopicArn", "ParkingQueueUrl"} <= outputs.keys()
    (api_id,) = of_type(resources, "AWS::Serverless::Api")
    stage = resources[api_id]["Properties"]["StageName"]
    url = outputs["WebhookUrl"]["Value"]["Fn::Sub"]
    assert re.fullmatch(
        rf"https://\${{{api_id}}}\.execute-api\.\${{AWS::Region}}\.\${{AWS::URLSuffix}}/{stage}/events", url
    )
    assert ref(outputs["ParkingQueueUrl"]["Value"]) in of_type(resources, "AWS::SQS::Queue")
