"""template.yaml and samconfig.toml: lint-clean, least-privilege, alarmed, deployed safely per environment,
and wired to the code the way README ("Configuration", "HTTP contract") and docs/deploy.md say.

The template is read with cfn-lint's own decoder (short-form intrinsics become ``{"Ref": ...}`` dicts).
SAM policy templates are expanded here from their published definitions, so the IAM assertions are about
the statements CloudFormation will really create, not about the policy template names. Where the SAM CLI
is installed, the template is also built and transformed by SAM itself and the result checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint_file
from cfnlint.config import ManualArgs
from cfnlint.decode import decode_str
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from forwarder.action_source import SENDABLE_ACTION_SOURCES
from forwarder.places import ISO_ALPHA_2
from forwarder.settings import SettingsError, load_settings
from localdev import samconfig

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# API Gateway's integration timeout for REST APIs; the function must answer before it.
API_GATEWAY_TIMEOUT_S = 29
FUNCTION_ID = "ForwarderFunction"
# DeliveryMode buffered (README, "Delivery modes"): the function reading the ingest queue, and what only
# a buffered stack has.
SENDER_ID = "SenderFunction"
INGEST_QUEUE_ID = "IngestQueue"
BUFFERED = "Buffered"
BACKFILL = "HasBackfill"  # Backfill true (docs/deploy.md, "Backfill")

# README, "Configuration": what the deployed function must be given.
CONTRACT_ENV = {
    "SECRET_ID",
    "OFFLINE_EVENT_SET_ID",
    "SEND_CCPA_LIMITED_DATA_USE",
    "FACEBOOK_API",
    "FACEBOOK_API_VERSION",
    "UPLOAD_TAG",
    "EMAIL_IDENTITY_TYPES",
    "EXTERNAL_ID_IDENTITY_TYPE",
    "PARKING_QUEUE_URL",
    "FORWARD_UNMAPPED_CUSTOM_EVENTS",
    "CUSTOM_EVENT_VALUE_ATTRIBUTES",
    "CUSTOM_EVENT_CURRENCY_ATTRIBUTE",
    "DEFAULT_ACTION_SOURCE",
    "DEVELOPMENT_BATCHES",
    "DELIVERY_MODE",
    "INGEST_QUEUE_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# Declared only so that `sam local --env-vars` can set them (make local-invoke); a deployed stack must
# leave them empty, which the code and boto3 read as unset.
LOCAL_ONLY_ENV = {"FACEBOOK_GRAPH_URL", "AWS_ENDPOINT_URL"}
NEVER_DECLARED_ENV = {"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SQS", "AWS_SAM_LOCAL"}

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
    "SQSPollerPolicy": {
        "Statement": [
            {
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:ChangeMessageVisibilityBatch",
                    "sqs:DeleteMessage",
                    "sqs:DeleteMessageBatch",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
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
# Per stack: a staging and a production stack in one account must not share metrics, alarms or dashboards.
STACK_NAMESPACE = {"Fn::Sub": "MParticleFacebookForwarder/${AWS::StackName}"}
STACK_SERVICE = {"Ref": "AWS::StackName"}
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


@pytest.fixture(scope="module")
def sender(resources: dict[str, Any]) -> dict[str, Any]:
    assert resources[SENDER_ID]["Type"] == "AWS::Serverless::Function"
    return resources[SENDER_ID]


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


def function_policies(function: dict[str, Any]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """(condition or None, IAM statements) per entry of the function's Policies, policy templates expanded."""
    props = function["Properties"]
    assert "Role" not in props, "a custom Role bypasses the scoped policies below"
    found = []
    for policy in props.get("Policies", []):
        condition = None
        if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
            condition, policy, otherwise = policy["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}, "a conditional policy is granted or not, never swapped"
        assert isinstance(policy, dict) and len(policy) == 1, f"unexpected policy entry: {policy}"
        (name, params), *_ = policy.items()
        if name == "Statement":  # an inline policy document
            found.append((condition, params))
            continue
        assert name in POLICY_TEMPLATES, f"unexpected policy {name}: review its scope, then list it here"
        found.append((condition, substitute(POLICY_TEMPLATES[name]["Statement"], params)))
    return found


def function_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    """The IAM statements every stack puts in the function's role."""
    return [s for condition, statements in function_policies(function) if condition is None for s in statements]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


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
    python = _sam_python()
    if python is None:
        pytest.skip("SAM's translator is not installed")
    where = "import pathlib, samtranslator; print(pathlib.Path(samtranslator.__file__).parent)"
    package = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603
    path = Path(package) / "policy_templates_data" / "policy_templates.json"
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


def makefile_targets() -> set[str]:
    """The targets the Makefile's rules name (`a b: prerequisites` names a and b)."""
    makefile = (ROOT / "Makefile").read_text()
    return {name for line in re.findall(r"^([\w. -]+):(?!=)", makefile, re.MULTILINE) for name in line.split()}


def test_function_entry_point_is_built_by_the_makefile(function: dict[str, Any]) -> None:
    props = function["Properties"]
    assert props["CodeUri"] == "."
    assert props["Handler"] == "handler.app.lambda_handler"
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert f"build-{FUNCTION_ID}" in makefile_targets()
    module, _, _ = props["Handler"].rpartition(".")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()


def test_function_environment_covers_the_contract(env: dict[str, Any], template: dict[str, Any]) -> None:
    assert env.keys() >= CONTRACT_ENV, sorted(CONTRACT_ENV - env.keys())
    assert not env.keys() & NEVER_DECLARED_ENV
    params = template["Parameters"]
    assert ref(env["OFFLINE_EVENT_SET_ID"]) in params


def test_metrics_namespace_and_service_name_are_the_stacks(env: dict[str, Any]) -> None:
    assert env[METRICS_NAMESPACE_ENV] == STACK_NAMESPACE
    assert env[SERVICE_ENV] == STACK_SERVICE


def test_local_only_variables_are_declared_empty(env: dict[str, Any]) -> None:
    # Declared for `sam local --env-vars`; a deployed stack sets them to "" (never a URL).
    assert {name: env.get(name) for name in LOCAL_ONLY_ENV} == dict.fromkeys(LOCAL_ONLY_ENV, "")


def test_an_empty_endpoint_variable_is_the_same_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's ConfiguredEndpointProvider skips an empty AWS_ENDPOINT_URL; the code an empty Graph URL."""
    _no_aws_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    for service in ("secretsmanager", "sqs"):
        client = boto3.session.Session().client(service, region_name="eu-west-1")
        assert client.meta.endpoint_url == f"https://{service}.eu-west-1.amazonaws.com", service
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")  # the same variable with a value does count
    assert boto3.session.Session().client("sqs", region_name="eu-west-1").meta.endpoint_url == "http://127.0.0.1:5000"
    required = {"SECRET_ID": "s", "OFFLINE_EVENT_SET_ID": "1", "PARKING_QUEUE_URL": "q"}
    assert load_settings({**required, "FACEBOOK_GRAPH_URL": ""}).graph_url == "https://graph.facebook.com"


@pytest.mark.parametrize(
    ("variable", "allowed", "default"),
    [
        ("SEND_CCPA_LIMITED_DATA_USE", {"never", "always", "opted_out"}, "never"),
        ("FACEBOOK_API", {"offline_conversions", "conversions_api"}, "conversions_api"),
        (
            "EXTERNAL_ID_IDENTITY_TYPE",
            {"customer_id", "mpid", "other", *(f"other_id_{n}" for n in range(2, 11)), "none"},
            "customer_id",
        ),
        ("POWERTOOLS_LOG_LEVEL", {"DEBUG", "INFO", "WARNING", "ERROR"}, "INFO"),
        ("FORWARD_UNMAPPED_CUSTOM_EVENTS", {"true", "false"}, "false"),
        ("DEVELOPMENT_BATCHES", {"test", "send", "skip"}, "test"),
        # Meta's action sources but app, which the code refuses (Meta refuses app events without app_data).
        ("DEFAULT_ACTION_SOURCE", set(SENDABLE_ACTION_SOURCES), "physical_store"),
    ],
)
def test_enumerated_settings_come_from_constrained_parameters(
    env: dict[str, Any], template: dict[str, Any], variable: str, allowed: set[str], default: str
) -> None:
    parameter = template["Parameters"][ref(env[variable])]
    assert set(parameter["AllowedValues"]) == allowed
    assert parameter["Default"] == default


@pytest.mark.parametrize(
    "variable",
    [
        "FACEBOOK_API_VERSION",
        "UPLOAD_TAG",
        "TEST_EVENT_CODE",
        "EVENT_NAME_OVERRIDES",
        "DEFAULT_COUNTRY",
        "CUSTOM_EVENT_MAPPING",
        "DATE_OF_BIRTH_ATTRIBUTE",
        "REQUIRED_GDPR_PURPOSES",
    ],
)
def test_optional_settings_are_omitted_when_empty(env: dict[str, Any], template: dict[str, Any], variable: str):
    # An empty string would reach the code as a (probably invalid) value; absent means "use the default".
    condition, value, otherwise = env[variable]["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert template["Parameters"][ref(value)]["Default"] == ""
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [value, ""]}]}


def test_the_templates_defaults_are_the_codes(env: dict[str, Any], template: dict[str, Any]) -> None:
    """The store event settings a stack gets without choosing are the ones README documents as defaults."""
    names = [
        "CUSTOM_EVENT_MAPPING",
        "FORWARD_UNMAPPED_CUSTOM_EVENTS",
        "CUSTOM_EVENT_VALUE_ATTRIBUTES",
        "CUSTOM_EVENT_CURRENCY_ATTRIBUTE",
        "DEFAULT_ACTION_SOURCE",
        "DEVELOPMENT_BATCHES",
    ]
    parameters = template["Parameters"]
    defaults = {
        name: parameters[parameter]["Default"]
        for name in names
        for parameter in (ref(value) for value in alternatives(env[name]))
        if parameter in parameters
    }
    assert defaults.keys() == set(names)
    assert load_settings({**REQUIRED_SETTINGS, **defaults}) == load_settings(REQUIRED_SETTINGS)


def test_function_log_group_has_retention(resources: dict[str, Any]) -> None:
    groups = [
        g["Properties"]
        for g in of_type(resources, "AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{FUNCTION_ID}}}"}
    ]
    assert len(groups) == 1
    assert "RetentionInDays" in groups[0]


# --- IAM: least privilege ------------------------------------------------------------------------------------

# forwarder/settled.py reads and writes the settled-events table in batches, nothing else.
SETTLED_EVENTS_ACTIONS = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]


@pytest.mark.parametrize("function_id", [FUNCTION_ID, "SenderFunction"])
def test_both_functions_may_use_only_the_settled_events_table(template: dict[str, Any], function_id: str) -> None:
    function = template["Resources"][function_id]
    statements = [s for s in function_statements(function) if any(a.startswith("dynamodb:") for a in actions(s))]
    assert [s["Resource"] for s in statements] == [{"Fn::GetAtt": ["SettledEventsTable", "Arn"]}]
    table = template["Resources"]["SettledEventsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST" and table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}  # settled.py
    assert table["KeySchema"] == [{"AttributeName": "event", "KeyType": "HASH"}]
    env = function["Properties"]["Environment"]["Variables"]
    assert env["SETTLED_EVENTS_TABLE"] == {"Ref": "SettledEventsTable"}


def test_function_may_only_read_its_secret_and_park_in_its_queue(function: dict[str, Any]) -> None:
    granted = sorted(a for s in function_statements(function) for a in actions(s))
    assert granted == [*SETTLED_EVENTS_ACTIONS, *["secretsmanager:GetSecretValue"] * 2, "sqs:SendMessage*"]
    everything = [s for _, statements in function_policies(function) for s in statements]
    assert all(s["Effect"] == "Allow" and not {"NotResource", "NotAction"} & s.keys() for s in everything)
    conditional = [(c, a) for c, statements in function_policies(function) if c for s in statements for a in actions(s)]
    assert conditional == [
        ("HasConnectionsParameter", "ssm:GetParameter"),
        (BUFFERED, "sqs:SendMessage*"),
        ("DecryptWithSecretKey", "kms:Decrypt"),
    ]


@pytest.mark.parametrize("function_id", [FUNCTION_ID, SENDER_ID])
def test_kms_decrypt_is_for_an_existing_secrets_own_key_through_secrets_manager_only(
    resources: dict[str, Any], template: dict[str, Any], function_id: str
) -> None:
    function = resources[function_id]
    ((condition, statements),) = [(c, s) for c, s in function_policies(function) if c == "DecryptWithSecretKey"]
    (statement,) = statements
    assert statement["Resource"] == {"Ref": "ExistingSecretKmsKeyArn"}
    via = {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": via}}
    # Granted exactly when the stack reads an existing secret and its key is named.
    assert template["Conditions"][condition] == {
        "Fn::And": [
            {"Fn::Not": [{"Condition": "CreateSecret"}]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingSecretKmsKeyArn"}, ""]}]},
        ]
    }
    pattern = re.compile(template["Parameters"]["ExistingSecretKmsKeyArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert pattern.fullmatch("arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab")
    assert not pattern.fullmatch("arn:aws:kms:eu-west-1:123456789012:alias/secrets")  # IAM needs the key's ARN


def test_get_secret_value_is_scoped_to_the_stack_secret(
    function: dict[str, Any], resources: dict[str, Any], template: dict[str, Any], env: dict[str, Any]
) -> None:
    statement, _ = [s for s in function_statements(function) if "secretsmanager:GetSecretValue" in s["Action"]]
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


def test_the_account_wide_api_gateway_logging_role_is_an_explicit_choice(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["CreateApiGatewayLoggingRole"]
    assert "Default" not in parameter, "true replaces a setting every API of the account and region uses"
    assert set(parameter["AllowedValues"]) == {"true", "false"}
    assert "REPLACING" in parameter["Description"] and "account" in parameter["Description"]
    for name in ("ApiGatewayLoggingRole", "ApiGatewayAccount"):
        condition = resources[name]["Condition"]
        assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "CreateApiGatewayLoggingRole"}, "true"]}


def test_parking_queue_is_encrypted_and_keeps_messages_14_days(resources: dict[str, Any], env: dict[str, Any]) -> None:
    queue = resources[ref(env["PARKING_QUEUE_URL"])]
    assert queue["Type"] == "AWS::SQS::Queue" and "Condition" not in queue
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
    assert routes == [("POST", "/events"), ("POST", "/events/{connection}")]  # the default connection, a named one
    assert [e["Type"] for e in function["Properties"]["Events"].values()] == ["Api", "Api"]


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
def all_alarms(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v["Properties"] for k, v in of_type(resources, "AWS::CloudWatch::Alarm").items()}


@pytest.fixture(scope="module")
def alarms(resources: dict[str, Any], all_alarms: dict[str, Any]) -> dict[str, Any]:
    """The alarms every stack has (the webhook's and the parking queue's)."""
    return {k: v for k, v in all_alarms.items() if "Condition" not in resources[k]}


@pytest.fixture(scope="module")
def buffered_alarms(resources: dict[str, Any], all_alarms: dict[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in all_alarms.items() if resources[k].get("Condition") == BUFFERED}
    assert {resources[k].get("Condition") for k in all_alarms} == {None, BUFFERED, BACKFILL}
    return found


def alarm_for(alarms: dict[str, Any], namespace: str, metric: str) -> dict[str, Any]:
    found = [a for a in alarms.values() if a.get("Namespace") == namespace and a.get("MetricName") == metric]
    assert len(found) == 1, f"expected one alarm on {namespace}/{metric}, found {len(found)}"
    return found[0]


def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_every_alarm_notifies_the_topic(
    all_alarms: dict[str, Any], resources: dict[str, Any], template: dict[str, Any]
) -> None:
    (topic_id,) = of_type(resources, "AWS::SNS::Topic")
    assert ref(template["Outputs"]["AlarmTopicArn"]["Value"]) == topic_id
    assert all_alarms
    for name, alarm in all_alarms.items():
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


def dashboard_rows(body: dict[str, Any]) -> set[tuple[str, ...]]:
    """(namespace, metric, dimension name, value, ...) of every metric row, with "." and "..." expanded."""
    found = set()
    for widget in body["widgets"]:
        previous: list[str] = []
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                continue
            names = [part for part in row if not isinstance(part, dict)]
            if names == ["..."]:
                names = previous
            else:
                names = [previous[i] if part == "." else part for i, part in enumerate(names)]
            found.add(tuple(names))
            previous = names
    return found


def dashboard_metrics(body: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, metric) pairs a dashboard body plots, from metric rows and SEARCH expressions."""
    found = {(row[0], row[1]) for row in dashboard_rows(body)}
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expression = row[0]["expression"]
                namespace = re.search(r"\{([^,}]+)", expression).group(1)
                found |= {(namespace, m) for m in re.findall(r'MetricName="(\w+)"', expression)}
    return found


NAMESPACE = "THIS-STACKS-NAMESPACE"
# What the dashboard's ${...} stand for, as recognisable names.
DASHBOARD_NAMES = {
    "${Ns}": NAMESPACE,
    "${Svc}": "this-stack",
    f"${{{FUNCTION_ID}}}": "WEBHOOK-FUNCTION",
    f"${{{SENDER_ID}}}": "SENDER-FUNCTION",
    f"${{{INGEST_QUEUE_ID}.QueueName}}": "INGEST-QUEUE",
    "${ParkingQueue.QueueName}": "PARKING-QUEUE",
    "${AgeThreshold}": "900",
}


def dashboard_body(resources: dict[str, Any], env: dict[str, Any], *, buffered: bool) -> dict[str, Any]:
    """The dashboard of a direct or a buffered stack, as CloudWatch would read it."""
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    assert "Condition" not in dashboard
    text, variables = resolve_sub(dashboard["Properties"]["DashboardBody"])
    variables = dict(variables)  # the fixture's, not to be changed
    stack_variables = {"Ns": env[METRICS_NAMESPACE_ENV], "Svc": env[SERVICE_ENV]}
    condition, widgets, otherwise = variables.pop("BufferedWidgets")["Fn::If"]
    assert variables == stack_variables
    assert (condition, otherwise) == (BUFFERED, "")
    widgets_text, widget_variables = resolve_sub(widgets)
    assert widget_variables == {**stack_variables, "AgeThreshold": {"Ref": "IngestOldestMessageAlarmSeconds"}}
    text = text.replace("${BufferedWidgets}", widgets_text if buffered else "")
    for placeholder, name in DASHBOARD_NAMES.items():
        text = text.replace(placeholder, name)
    return json.loads(re.sub(r"\$\{[^}]+\}", "placeholder", text))


@pytest.mark.parametrize("buffered", [False, True])
def test_dashboard_shows_the_custom_metrics_of_this_stack(
    resources: dict[str, Any], env: dict[str, Any], buffered: bool
) -> None:
    body = dashboard_body(resources, env, buffered=buffered)
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
        "EventsWithMatchKey",
    ]
    assert {(NAMESPACE, m) for m in expected} <= dashboard_metrics(body)
    plotted = json.dumps(body)
    assert ("SENDER-FUNCTION" in plotted, "INGEST-QUEUE" in plotted) == (buffered, buffered)


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
    assert outputs["MetricsNamespace"]["Value"] == STACK_NAMESPACE


# The variables `make replay` needs to send where the function sends (README, "Parking and replay").
REPLAY_VARIABLES = {
    "AWS_DEFAULT_REGION",
    "CONNECTIONS",
    "CONNECTIONS_PARAMETER",
    "SECRET_ID",
    "PARKING_QUEUE_URL",
    "OFFLINE_EVENT_SET_ID",
    "FACEBOOK_API",
    "FACEBOOK_API_VERSION",
    "UPLOAD_TAG",
    "TEST_EVENT_CODE",
}


def test_replay_environment_output_is_the_functions_destination_quoted_for_a_shell(
    template: dict[str, Any], env: dict[str, Any]
) -> None:
    text, variables = template["Outputs"]["ReplayEnvironment"]["Value"]["Fn::Sub"]
    assert variables == {"Secret": env["SECRET_ID"]}
    assignments = dict(re.findall(r"([A-Z_]+)='\$\{([^}]+)\}'", text))
    assert assignments.keys() == REPLAY_VARIABLES
    # Each value is the one the function is given: the same parameter, resource or secret.
    for name, placeholder in assignments.items():
        if name == "AWS_DEFAULT_REGION":
            assert placeholder == "AWS::Region"
        elif placeholder == "Secret":
            assert name == "SECRET_ID"
        else:
            assert {"Ref": placeholder} in alternatives(env[name]), name
    # Free text cannot break out of the single quotes.
    for name in ("UploadTag", "TestEventCode", "Connections", "ConnectionsParameterName"):
        assert not re.fullmatch(template["Parameters"][name]["AllowedPattern"], "a'b"), name
    values = {
        "AWS::Region": "eu-west-1",
        "Secret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:forwarder-AbCdEf",
        "ParkingQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/parking",
        "OfflineEventSetId": "1234567890",
        "FacebookApi": "conversions_api",
        "FacebookApiVersion": "",
        "UploadTag": 'store uploads $HOME `id` "q" ; echo',
        "TestEventCode": "TEST12345",
        "Connections": '{"stores": {"offline_event_set_id": ["1", "2"], "upload_tag": "$HOME `id`"}}',
        "ConnectionsParameterName": "",
    }
    line = re.sub(r"\$\{([^}]+)\}", lambda match: values[match.group(1)], text)
    shell = subprocess.run(  # noqa: S603 - sh, evaluating the output as docs/deploy.md does
        ["/bin/sh", "-c", 'eval "$1" && env', "sh", line],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        check=True,
    )
    exported = dict(entry.split("=", 1) for entry in shell.stdout.splitlines() if "=" in entry)
    assert exported["UPLOAD_TAG"] == values["UploadTag"] and exported["CONNECTIONS"] == values["Connections"]
    settings_now = load_settings(exported)
    assert (settings_now.datasets, settings_now.test_event_code) == (("1234567890",), "TEST12345")
    assert settings_now.parking_queue_url == values["ParkingQueue"] and settings_now.secret_id == values["Secret"]


# --- template parameters that a typo must not get past ------------------------------------------------------------


@pytest.fixture(scope="module")
def event_name_pattern(template: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(template["Parameters"]["EventNameOverrides"]["AllowedPattern"])


REQUIRED_SETTINGS = {"SECRET_ID": "s", "OFFLINE_EVENT_SET_ID": "1", "PARKING_QUEUE_URL": "q"}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_event_name_override_the_template_accepts_the_code_accepts(
    event_name_pattern: re.Pattern[str], data: st.DataObject
) -> None:
    value = data.draw(st.from_regex(event_name_pattern, fullmatch=True))
    load_settings({**REQUIRED_SETTINGS, "EVENT_NAME_OVERRIDES": value})


@pytest.mark.parametrize(
    "value", ["", "checkout=Checkout,add_to_wishlist=AddToWishList", " checkout = Check Out , purchase=Buy_1 "]
)
def test_event_name_overrides_in_use_are_accepted(event_name_pattern: re.Pattern[str], value: str) -> None:
    assert event_name_pattern.fullmatch(value)


@pytest.mark.parametrize(
    "value",
    [
        "chekout=Checkout",
        "refund=Refund",
        "checkout:Checkout",
        "checkout=",
        "checkout=Check/Out",
        "checkout=Checkout;purchase=Buy",
        "checkout=Checkout purchase=Buy",
        "checkout=" + "A" * 101,
        "checkout=Café",
    ],
)
def test_an_event_name_override_the_code_refuses_is_refused_before_deploying(
    event_name_pattern: re.Pattern[str], value: str
) -> None:
    with pytest.raises(SettingsError, match="EVENT_NAME_OVERRIDES"):
        load_settings({**REQUIRED_SETTINGS, "EVENT_NAME_OVERRIDES": value})
    assert not event_name_pattern.fullmatch(value)


def test_the_default_countries_the_template_offers_are_the_ones_the_code_accepts(template: dict[str, Any]) -> None:
    offered = template["Parameters"]["DefaultCountry"]["AllowedValues"]
    assert set(offered) == {"", *(code.upper() for code in ISO_ALPHA_2)}
    for code in offered:
        assert load_settings({**REQUIRED_SETTINGS, "DEFAULT_COUNTRY": code}).key_settings.default_country == (
            code.lower() or None
        )


@pytest.fixture(scope="module")
def email_types_pattern(template: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(template["Parameters"]["EmailIdentityTypes"]["AllowedPattern"])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_email_identity_types_value_the_template_accepts_the_code_accepts(
    email_types_pattern: re.Pattern[str], data: st.DataObject
) -> None:
    value = data.draw(st.from_regex(email_types_pattern, fullmatch=True))
    load_settings({**REQUIRED_SETTINGS, "EMAIL_IDENTITY_TYPES": value})


@pytest.mark.parametrize("value", ["email", "email,other", " other_id_10 , email ", "", "phone_number_2"])
def test_email_identity_types_in_use_are_accepted(email_types_pattern: re.Pattern[str], value: str) -> None:
    assert email_types_pattern.fullmatch(value)


@pytest.mark.parametrize(
    "value", ["emails", "email;other", "email other", "customerid", "mpid", "other_id_11", "Émail"]
)
def test_an_email_identity_type_the_code_refuses_is_refused_before_deploying(
    email_types_pattern: re.Pattern[str], value: str
) -> None:
    with pytest.raises(SettingsError, match="EMAIL_IDENTITY_TYPES"):
        load_settings({**REQUIRED_SETTINGS, "EMAIL_IDENTITY_TYPES": value})
    assert not email_types_pattern.fullmatch(value)


@pytest.mark.parametrize(
    ("parameter", "variable"),
    [
        ("EmailIdentityTypes", "EMAIL_IDENTITY_TYPES"),
        ("ExternalIdIdentityType", "EXTERNAL_ID_IDENTITY_TYPE"),
        ("DefaultCountry", "DEFAULT_COUNTRY"),
    ],
)
def test_the_match_key_parameters_default_to_the_codes_defaults(
    template: dict[str, Any], env: dict[str, Any], parameter: str, variable: str
) -> None:
    assert parameter in json.dumps(env[variable])  # the variable is set from that parameter
    default = template["Parameters"][parameter]["Default"]
    assert load_settings({**REQUIRED_SETTINGS, variable: default}) == load_settings(REQUIRED_SETTINGS)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_custom_event_mapping_the_template_accepts_the_code_accepts(
    template: dict[str, Any], data: st.DataObject
) -> None:
    pattern = template["Parameters"]["CustomEventMapping"]["AllowedPattern"]
    value = data.draw(st.from_regex(pattern, fullmatch=True))
    # One mParticle name given twice (case-insensitively) is refused by the code; no pattern can see it.
    names = [entry.partition("=")[0].strip().casefold() for entry in value.split(",") if entry.strip()]
    assume(len(names) == len(set(names)))
    load_settings({**REQUIRED_SETTINGS, "CUSTOM_EVENT_MAPPING": value})


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_custom_event_attribute_name_the_template_accepts_the_code_accepts(
    template: dict[str, Any], data: st.DataObject
) -> None:
    for parameter, variable in [
        ("CustomEventValueAttributes", "CUSTOM_EVENT_VALUE_ATTRIBUTES"),
        ("CustomEventCurrencyAttribute", "CUSTOM_EVENT_CURRENCY_ATTRIBUTE"),
    ]:
        value = data.draw(st.from_regex(template["Parameters"][parameter]["AllowedPattern"], fullmatch=True))
        load_settings({**REQUIRED_SETTINGS, variable: value})


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("CustomEventMapping", "", True),
        ("CustomEventMapping", "Appointment Booked=Schedule,Store Visit=FindLocation", True),
        ("CustomEventMapping", " Sign-up (web) = Lead , Café=Cafe Visit ", True),
        ("CustomEventMapping", "Appointment Booked:Schedule", False),
        ("CustomEventMapping", "Appointment Booked=Sched/ule", False),
        ("CustomEventMapping", "Visit=" + "A" * 51, False),
        ("CustomEventMapping", "=Schedule", False),
        ("CustomEventMapping", "Visit=Schedule,", False),
        ("CustomEventValueAttributes", "value,revenue", True),
        ("CustomEventValueAttributes", "amount", True),
        ("CustomEventValueAttributes", "", False),
        ("CustomEventCurrencyAttribute", "currency", True),
        ("CustomEventCurrencyAttribute", "currency,curr", False),
    ],
)
def test_store_event_parameters_refuse_what_the_code_refuses(
    template: dict[str, Any], parameter: str, value: str, accepted: bool
) -> None:
    assert bool(re.fullmatch(template["Parameters"][parameter]["AllowedPattern"], value)) is accepted


@pytest.mark.parametrize(
    ("parameter", "variable"),
    [("RequiredGdprPurposes", "REQUIRED_GDPR_PURPOSES"), ("DateOfBirthAttribute", "DATE_OF_BIRTH_ATTRIBUTE")],
)
def test_the_consent_and_birth_date_parameters_take_what_the_code_takes(
    template: dict[str, Any], parameter: str, variable: str
) -> None:
    longest = template["Parameters"][parameter]["MaxLength"]
    for value in ("", "marketing", " Birthday ", "a" * longest):  # every value CloudFormation lets through
        load_settings({**REQUIRED_SETTINGS, variable: value})
    with pytest.raises(SettingsError, match=variable):  # past the bound, which CloudFormation refuses first
        load_settings({**REQUIRED_SETTINGS, variable: "a" * (longest + 1)})


# --- safe deploys: an alias, CodeDeploy, alarms ----------------------------------------------------------------------

# SAM's predefined CodeDeploy configurations (AWS::Serverless::Function DeploymentPreference.Type).
SAM_DEPLOYMENT_TYPES = {
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
}
# docs/deploy.md, "Safe deploys and rollback": what a bad version shows within minutes. Not the duration
# alarm (three periods, and mostly Facebook's latency), throttles (capacity), skipped events (15 minutes,
# the traffic's mix) or the parking backlog (in ALARM until parked batches are replayed: every deploy
# meanwhile would roll back).
ROLLBACK_ALARMS = {"FunctionErrorsAlarm", "Api5xxAlarm", "DeliveryFailuresAlarm", "ParkingFailuresAlarm"}


def test_requests_reach_an_alias_that_codedeploy_moves_and_alarms_roll_back(
    function: dict[str, Any], template: dict[str, Any], resources: dict[str, Any]
) -> None:
    props = function["Properties"]
    assert props["AutoPublishAlias"] == "live"
    preference = props["DeploymentPreference"]
    assert preference.get("Enabled", True) is True
    parameter = template["Parameters"][ref(preference["Type"])]
    assert set(parameter["AllowedValues"]) <= SAM_DEPLOYMENT_TYPES
    assert parameter["Default"].startswith("Canary")
    assert {ref(alarm) for alarm in preference["Alarms"]} == ROLLBACK_ALARMS
    assert all(resources[name]["Type"] == "AWS::CloudWatch::Alarm" for name in ROLLBACK_ALARMS)


def test_rollback_alarms_can_fire_while_the_default_canary_runs(
    function: dict[str, Any], template: dict[str, Any], alarms: dict[str, Any]
) -> None:
    default = template["Parameters"][ref(function["Properties"]["DeploymentPreference"]["Type"])]["Default"]
    bake_seconds = int(re.fullmatch(r"Canary10Percent(\d+)Minutes", default).group(1)) * 60
    for name in ROLLBACK_ALARMS:
        alarm = alarms[name]
        window = alarm["Period"] * alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])
        assert 2 * window <= bake_seconds, f"{name} needs {window} s of data; the canary waits {bake_seconds} s"
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold", name


def test_a_configuration_change_publishes_a_version_for_the_alias(
    function: dict[str, Any], template: dict[str, Any]
) -> None:
    # SAM names the version after the code only; a parameter change would reach $LATEST but not "live".
    assert ref(function["Properties"]["AutoPublishCodeSha256"]) == samconfig.DIGEST_PARAMETER
    parameter = template["Parameters"][samconfig.DIGEST_PARAMETER]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "0123456789abcdef"[: samconfig.DIGEST_LENGTH])


def test_deploy_tooling_knows_the_parameters_without_a_default(template: dict[str, Any]) -> None:
    without_default = {name for name, parameter in template["Parameters"].items() if "Default" not in parameter}
    assert set(samconfig.REQUIRED_PARAMETERS) == without_default


# --- buffered delivery: an ingest queue and a sender function (DeliveryMode buffered) ------------------------------

# Everything only a buffered stack has.
BUFFERED_RESOURCES = {
    SENDER_ID,
    "SenderEventSourceMapping",
    "SenderLogGroup",
    INGEST_QUEUE_ID,
    "IngestQueueOldestMessageAlarm",
    "SenderErrorsAlarm",
    "IngestMessagesRetriedAlarm",
    "IngestMessagesParkedAlarm",
}
# What rolls a sender deploy back: a crash, or messages going back to the queue (its DeliveryFailures).
# Not the queue's age (it measures the backlog, not the version) nor parked events (the data's fault).
SENDER_ROLLBACK_ALARMS = {"SenderErrorsAlarm", "IngestMessagesRetriedAlarm"}
# AWS Lambda's rules for SQS event sources (Lambda developer guide, "Creating and configuring an Amazon SQS
# event source mapping"; CreateEventSourceMapping): batch size 1-10 without a batching window and up to
# 10,000 with one of at least 1 s; windows up to 300 s; maximum concurrency 2-1000; the queue's visibility
# timeout at least six times the function's timeout.
SQS_BATCH_SIZE_WITHOUT_WINDOW = 10
SQS_MAX_BATCH_SIZE = 10_000
SQS_MAX_BATCHING_WINDOW_S = 300
SQS_MAX_CONCURRENCY_RANGE = (2, 1000)
VISIBILITY_TIMEOUTS_PER_FUNCTION_TIMEOUT = 6
# Meta: send events "ideally within an hour" (Conversions API, "Using the API"); one Graph request of the
# Conversions API carries up to 1000 events.
META_FRESHNESS_S = 3600
CONVERSIONS_API_EVENTS_PER_REQUEST = 1000
FOUR_DAYS_S = 4 * 24 * 3600
NO_VALUE = {"Ref": "AWS::NoValue"}
# Parameters without a default, as a deploy would give them.
REQUIRED_VALUES = {"OfflineEventSetId": "1234567890", "CreateApiGatewayLoggingRole": "false"}


def evaluate(expr: Any, values: dict[str, Any], template: dict[str, Any]) -> Any:
    """A condition (or a rule's condition or assertion) for the given parameter values."""
    if not isinstance(expr, dict):
        return expr
    ((function, argument),) = expr.items()
    if function == "Ref":
        return values[argument]
    if function == "Condition":
        return evaluate(template["Conditions"][argument], values, template)
    if function == "Fn::Equals":
        left, right = (evaluate(side, values, template) for side in argument)
        return left == right
    if function == "Fn::Not":
        return not evaluate(argument[0], values, template)
    if function == "Fn::And":
        return all(evaluate(part, values, template) for part in argument)
    if function == "Fn::Or":
        return any(evaluate(part, values, template) for part in argument)
    raise AssertionError(f"not evaluated here: {function}")


def parameter_values(template: dict[str, Any], **given: str) -> dict[str, Any]:
    defaults = {name: p["Default"] for name, p in template["Parameters"].items() if "Default" in p}
    return {**defaults, **REQUIRED_VALUES, **given}


def choose(node: Any, conditions: dict[str, bool]) -> Any:
    """The node with each Fn::If replaced by the branch the conditions choose, AWS::NoValue dropped."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return choose(yes if conditions[name] else no, conditions)
        return {k: c for k, v in node.items() if (c := choose(v, conditions)) != NO_VALUE}
    if isinstance(node, list):
        return [c for v in node if (c := choose(v, conditions)) != NO_VALUE]
    return node


def deployed(template: dict[str, Any], **given: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resources, outputs) of a stack deployed with these parameter values."""
    values = parameter_values(template, **given)
    conditions = {name: evaluate(expr, values, template) for name, expr in template["Conditions"].items()}

    def kept(entries: dict[str, Any]) -> dict[str, Any]:
        return {k: choose(v, conditions) for k, v in entries.items() if conditions.get(v.get("Condition"), True)}

    return kept(template["Resources"]), kept(template["Outputs"])


def references(node: Any) -> set[str]:
    """The resources and parameters a node refers to (Ref, Fn::GetAtt, Fn::Sub; SAM's Function.Alias)."""
    if isinstance(node, list):
        return {name for value in node for name in references(value)}
    if not isinstance(node, dict):
        return set()
    if set(node) == {"Ref"}:
        return {node["Ref"].split(".")[0]}
    if set(node) == {"Fn::GetAtt"}:
        return {getatt(node)[0]}
    if set(node) == {"Fn::Sub"}:
        text, variables = resolve_sub(node)
        named = {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)} - variables.keys()
        return named | references(variables)
    return {name for value in node.values() for name in references(value)}


def dangling(template: dict[str, Any], resources: dict[str, Any], outputs: dict[str, Any]) -> set[str]:
    """What a deployed stack's resources and outputs refer to that it does not have."""
    known = resources.keys() | template["Parameters"].keys()
    found = references(list(resources.values())) | references(list(outputs.values()))
    for resource in resources.values():
        depends = resource.get("DependsOn", [])
        found |= {depends} if isinstance(depends, str) else set(depends)
    return {name for name in found if not name.startswith("AWS::")} - known


def rules_pass(template: dict[str, Any], values: dict[str, Any]) -> bool:
    for rule in template["Rules"].values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], values, template):
            continue
        if not all(evaluate(assertion["Assert"], values, template) for assertion in rule["Assertions"]):
            return False
    return True


def sqs_grants(function: dict[str, Any], conditions: dict[str, bool]) -> dict[str, set[str]]:
    """{queue resource: SQS actions} a function's role gets in a stack with these conditions."""
    grants: dict[str, set[str]] = {}
    for condition, statements in function_policies(function):
        if condition is not None and not conditions[condition]:
            continue
        for statement in statements:
            sqs_actions = {a for a in actions(statement) if a.startswith("sqs:")}
            if not sqs_actions:
                continue
            pattern, variables = resolve_sub(statement["Resource"])
            assert pattern == "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}"
            queue_id, attribute = getatt(variables["queueName"])
            assert attribute == "QueueName"
            grants.setdefault(queue_id, set()).update(sqs_actions)
    return grants


def stack_conditions(template: dict[str, Any], mode: str) -> dict[str, bool]:
    values = parameter_values(template, DeliveryMode=mode)
    return {name: evaluate(expr, values, template) for name, expr in template["Conditions"].items()}


def test_delivery_mode_is_a_parameter_direct_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["DeliveryMode"]
    assert parameter["AllowedValues"] == ["direct", "buffered"] and parameter["Default"] == "direct"
    assert template["Conditions"][BUFFERED] == {"Fn::Equals": [{"Ref": "DeliveryMode"}, "buffered"]}
    (group,) = [
        g
        for g in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        if "DeliveryMode" in g["Parameters"]
    ]
    assert group["Label"]["default"] == "Delivery"
    esm = template["Resources"]["SenderEventSourceMapping"]["Properties"]
    tuning = {ref(esm["BatchSize"]), ref(esm["MaximumBatchingWindowInSeconds"])}
    tuning |= {ref(esm["ScalingConfig"]["MaximumConcurrency"])}
    tuning |= {ref(template["Resources"][INGEST_QUEUE_ID]["Properties"]["RedrivePolicy"]["maxReceiveCount"])}
    tuning |= {ref(template["Resources"]["IngestQueueOldestMessageAlarm"]["Properties"]["Threshold"])}
    assert set(group["Parameters"]) == {"DeliveryMode"} | tuning


def test_every_parameter_is_in_one_parameter_group(template: dict[str, Any]) -> None:
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])


@pytest.mark.parametrize("function_id", [FUNCTION_ID, SENDER_ID])
def test_both_functions_are_told_the_mode_and_the_ingest_queue(resources: dict[str, Any], function_id: str) -> None:
    variables = resources[function_id]["Properties"]["Environment"]["Variables"]
    assert variables["DELIVERY_MODE"] == {"Ref": "DeliveryMode"}
    # The queue's URL when buffered; "" when direct (the code reads empty as unset).
    assert variables["INGEST_QUEUE_URL"] == {"Fn::If": [BUFFERED, {"Ref": INGEST_QUEUE_ID}, ""]}


def test_the_sender_gets_the_webhooks_environment(env: dict[str, Any], sender: dict[str, Any]) -> None:
    assert sender["Properties"]["Environment"]["Variables"] == env


def test_buffered_delivery_with_the_offline_conversions_api_is_refused_before_deploying(
    template: dict[str, Any],
) -> None:
    # The code refuses it too (a queue delivers at least once; only the Conversions API de-duplicates).
    modes = template["Parameters"]["DeliveryMode"]["AllowedValues"]
    apis = template["Parameters"]["FacebookApi"]["AllowedValues"]
    for mode in modes:
        for api in apis:
            values = parameter_values(template, DeliveryMode=mode, FacebookApi=api)
            assert rules_pass(template, values) == (not (mode == "buffered" and api == "offline_conversions")), (
                mode,
                api,
            )


def test_only_a_buffered_stack_has_the_queue_the_sender_and_their_alarms(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    conditional = {name for name, resource in resources.items() if resource.get("Condition") == BUFFERED}
    assert conditional == BUFFERED_RESOURCES
    direct_resources, direct_outputs = deployed(template, DeliveryMode="direct")
    buffered_resources, buffered_outputs = deployed(template, DeliveryMode="buffered")
    assert not BUFFERED_RESOURCES & direct_resources.keys()
    assert buffered_resources.keys() - direct_resources.keys() == BUFFERED_RESOURCES
    assert [k for k, v in direct_resources.items() if v["Type"] == "AWS::Serverless::Function"] == [FUNCTION_ID]
    assert [k for k, v in direct_resources.items() if v["Type"] == "AWS::SQS::Queue"] == ["ParkingQueue"]
    assert not [v for v in direct_resources.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    # Nothing a direct stack keeps refers to what it does not have (CloudFormation would refuse the template).
    assert dangling(template, direct_resources, direct_outputs) == set()
    assert dangling(template, buffered_resources, buffered_outputs) == set()
    webhook = direct_resources[FUNCTION_ID]["Properties"]
    assert webhook["Environment"]["Variables"]["INGEST_QUEUE_URL"] == ""
    assert INGEST_QUEUE_ID not in json.dumps(webhook)
    assert buffered_outputs.keys() - direct_outputs.keys() == {"IngestQueueUrl", "SenderFunctionName"}


def test_the_sender_is_built_and_run_like_the_webhook(function: dict[str, Any], sender: dict[str, Any]) -> None:
    webhook, props = function["Properties"], sender["Properties"]
    same = ("CodeUri", "Runtime", "Architectures", "MemorySize", "Tracing", "AutoPublishAlias", "AutoPublishCodeSha256")
    assert {key: props[key] for key in same} == {key: webhook[key] for key in same}
    assert sender["Metadata"] == function["Metadata"] == {"BuildMethod": "makefile"}
    assert f"build-{SENDER_ID}" in makefile_targets(), "sam build runs make build-<LogicalId> for each function"
    assert props["Handler"] == "handler.sender.lambda_handler"
    assert isinstance(props["Timeout"], int) and 30 <= props["Timeout"] <= 900
    # No Events: SAM would give an SQS event's function AWSLambdaSQSQueueExecutionRole, i.e. receive and
    # delete on every queue of the account; the event source mapping is declared on its own instead.
    assert "Events" not in props and "Role" not in props


def test_the_sender_deploys_through_its_alias_and_rolls_back_on_its_own_alarms(
    function: dict[str, Any], sender: dict[str, Any], template: dict[str, Any], buffered_alarms: dict[str, Any]
) -> None:
    preference = sender["Properties"]["DeploymentPreference"]
    assert preference["Type"] == function["Properties"]["DeploymentPreference"]["Type"]
    assert preference["PassthroughCondition"] is True, "else SAM's deployment group outlives the Condition"
    assert {ref(alarm) for alarm in preference["Alarms"]} == SENDER_ROLLBACK_ALARMS
    default = template["Parameters"][ref(preference["Type"])]["Default"]
    bake_seconds = int(re.fullmatch(r"Canary10Percent(\d+)Minutes", default).group(1)) * 60
    for name in SENDER_ROLLBACK_ALARMS:
        alarm = buffered_alarms[name]
        window = alarm["Period"] * alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])
        assert 2 * window <= bake_seconds, name
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold", name


def test_the_ingest_queue_triggers_the_senders_alias_in_batches_with_partial_failures(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    (mapping_id,) = of_type(resources, "AWS::Lambda::EventSourceMapping")
    mapping = resources[mapping_id]
    assert mapping["Condition"] == BUFFERED
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Ref": f"{SENDER_ID}.Alias"}, "the live alias, which CodeDeploy moves"
    assert getatt(props["EventSourceArn"]) == [INGEST_QUEUE_ID, "Arn"]
    assert props.get("Enabled", True) is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    parameters = template["Parameters"]
    batch = parameters[ref(props["BatchSize"])]
    window = parameters[ref(props["MaximumBatchingWindowInSeconds"])]
    concurrency = parameters[ref(props["ScalingConfig"]["MaximumConcurrency"])]
    assert {batch["Type"], window["Type"], concurrency["Type"]} == {"Number"}
    assert batch["MinValue"] >= 1 and batch["MaxValue"] <= SQS_MAX_BATCH_SIZE
    if batch["MaxValue"] > SQS_BATCH_SIZE_WITHOUT_WINDOW:
        assert window["MinValue"] >= 1, "a batch size above 10 needs a batching window of at least 1 s"
    assert window["MaxValue"] <= SQS_MAX_BATCHING_WINDOW_S
    # The defaults fill a Graph request (each message holds at least one event) within about a minute.
    assert batch["Default"] >= CONVERSIONS_API_EVENTS_PER_REQUEST and window["Default"] <= 60
    # Meta rate-limits per dataset: few senders at once unless the operator raises it.
    low, high = SQS_MAX_CONCURRENCY_RANGE
    assert concurrency["MinValue"] >= low and concurrency["MaxValue"] <= high
    assert concurrency["Default"] == low


def test_the_ingest_queue_outlasts_the_sender_and_redrives_to_the_parking_queue(
    resources: dict[str, Any], template: dict[str, Any], sender: dict[str, Any], env: dict[str, Any]
) -> None:
    queue = resources[INGEST_QUEUE_ID]
    assert queue["Type"] == "AWS::SQS::Queue" and queue["Condition"] == BUFFERED
    # Removing it (back to direct, or deleting the stack) keeps it and the messages not yet sent.
    assert queue["DeletionPolicy"] == queue["UpdateReplacePolicy"] == "Retain"
    props = queue["Properties"]
    parking_id = ref(env["PARKING_QUEUE_URL"])
    parking = resources[parking_id]["Properties"]
    assert not props.get("FifoQueue") and props["SqsManagedSseEnabled"] is True
    # Lambda: at least 6 x the function's timeout; the batching window too, since messages gathered for a
    # batch are already in flight.
    mapping = resources["SenderEventSourceMapping"]["Properties"]
    longest_window = template["Parameters"][ref(mapping["MaximumBatchingWindowInSeconds"])]["MaxValue"]
    timeout = sender["Properties"]["Timeout"]
    assert props["VisibilityTimeout"] >= VISIBILITY_TIMEOUTS_PER_FUNCTION_TIMEOUT * timeout + longest_window
    # A redriven message keeps its first enqueue time, so the parking queue must keep messages longer.
    assert FOUR_DAYS_S <= props["MessageRetentionPeriod"] < parking["MessageRetentionPeriod"]
    assert props["MaximumMessageSize"] <= parking["MaximumMessageSize"]
    redrive = props["RedrivePolicy"]
    assert getatt(redrive["deadLetterTargetArn"]) == [parking_id, "Arn"]
    receives = template["Parameters"][ref(redrive["maxReceiveCount"])]
    assert receives["Default"] == 5 and receives["MinValue"] >= 1 and receives["MaxValue"] <= 1000
    # SQS's default RedriveAllowPolicy (allowAll) lets any queue of the account use the parking queue as
    # its dead-letter queue; byQueue would have to name the ingest queue (a circular reference), denyAll
    # would refuse it.
    assert "RedriveAllowPolicy" not in parking
    # make replay reads the parking queue, redriven messages included.
    text, _ = template["Outputs"]["ReplayEnvironment"]["Value"]["Fn::Sub"]
    assert f"PARKING_QUEUE_URL='${{{parking_id}}}'" in text and INGEST_QUEUE_ID not in json.dumps(
        template["Outputs"]["ReplayEnvironment"]
    )


def test_the_sender_has_its_own_log_group(resources: dict[str, Any]) -> None:
    group = resources["SenderLogGroup"]
    assert group["Condition"] == BUFFERED
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{SENDER_ID}}}"}
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


@pytest.mark.parametrize("mode", ["direct", "buffered"])
def test_the_webhook_may_only_send_to_the_ingest_queue_never_read_it(
    function: dict[str, Any], template: dict[str, Any], mode: str
) -> None:
    grants = sqs_grants(function, stack_conditions(template, mode))
    expected = {"ParkingQueue": {"sqs:SendMessage*"}}
    if mode == "buffered":
        expected[INGEST_QUEUE_ID] = {"sqs:SendMessage*"}
    assert grants == expected


def test_the_sender_may_only_consume_the_ingest_queue_and_park(
    sender: dict[str, Any], template: dict[str, Any]
) -> None:
    conditions = stack_conditions(template, "buffered")
    poller = set(POLICY_TEMPLATES["SQSPollerPolicy"]["Statement"][0]["Action"])
    assert not any(a.startswith("sqs:Send") or "*" in a.removeprefix("sqs:") for a in poller)
    assert sqs_grants(sender, conditions) == {"ParkingQueue": {"sqs:SendMessage*"}, INGEST_QUEUE_ID: poller}
    granted = sorted(a for s in function_statements(sender) for a in actions(s) if not a.startswith("sqs:"))
    assert granted == [*SETTLED_EVENTS_ACTIONS, *["secretsmanager:GetSecretValue"] * 2]
    conditional = [(c, a) for c, statements in function_policies(sender) if c for s in statements for a in actions(s)]
    assert conditional == [("HasConnectionsParameter", "ssm:GetParameter"), ("DecryptWithSecretKey", "kms:Decrypt")]
    everything = [s for _, statements in function_policies(sender) for s in statements]
    assert all(s["Effect"] == "Allow" and not {"NotResource", "NotAction"} & s.keys() for s in everything)


def test_the_sender_reads_the_webhooks_secret(function: dict[str, Any], sender: dict[str, Any]) -> None:
    def secret_resources(f: dict[str, Any]) -> list[Any]:
        return [s["Resource"] for s in function_statements(f) if "secretsmanager:GetSecretValue" in actions(s)]

    assert secret_resources(sender) == secret_resources(function)


def test_an_old_ingest_message_raises_an_alarm_well_within_metas_hour(
    buffered_alarms: dict[str, Any], template: dict[str, Any]
) -> None:
    alarm = alarm_for(buffered_alarms, "AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert dimensions(alarm) == {"QueueName": {"Fn::GetAtt": [INGEST_QUEUE_ID, "QueueName"]}}
    assert alarm["Statistic"] == "Maximum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    threshold = template["Parameters"][ref(alarm["Threshold"])]
    assert threshold["Default"] == 900
    assert threshold["Default"] + alarm["Period"] * alarm["EvaluationPeriods"] <= META_FRESHNESS_S / 2


def test_sender_crashes_raise_an_alarm(buffered_alarms: dict[str, Any]) -> None:
    alarm = alarm_for(buffered_alarms, "AWS/Lambda", "Errors")
    assert dimensions(alarm) == {"FunctionName": {"Ref": SENDER_ID}}
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0


@pytest.mark.parametrize("metric", ["IngestMessagesRetried", "IngestMessagesParked"])
def test_sender_retries_and_parked_messages_raise_alarms_in_the_code_namespace(
    buffered_alarms: dict[str, Any], env: dict[str, Any], metric: str
) -> None:
    alarm = alarm_for(buffered_alarms, env[METRICS_NAMESPACE_ENV], metric)
    assert dimensions(alarm) == {"service": env[SERVICE_ENV]}
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_buffered_dashboard_shows_the_ingest_queue_and_the_sender(
    resources: dict[str, Any], env: dict[str, Any]
) -> None:
    rows = dashboard_rows(dashboard_body(resources, env, buffered=True))
    queue = [
        ("AWS/SQS", metric, "QueueName", "INGEST-QUEUE")
        for metric in (
            "ApproximateNumberOfMessagesVisible",
            "ApproximateAgeOfOldestMessage",
            "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        )
    ]
    function = [
        ("AWS/Lambda", metric, "FunctionName", "SENDER-FUNCTION")
        for metric in ("Duration", "Errors", "Throttles", "ConcurrentExecutions")
    ]
    custom = [
        (NAMESPACE, metric, "service", "this-stack") for metric in ("IngestMessagesRetried", "IngestMessagesParked")
    ]
    assert set(queue + function + custom) <= rows
    direct = json.dumps(dashboard_body(resources, env, buffered=False))
    assert "SENDER-FUNCTION" not in direct and "INGEST-QUEUE" not in direct


def test_a_buffered_stack_names_its_ingest_queue(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["IngestQueueUrl"] == {**outputs["IngestQueueUrl"], "Condition": BUFFERED}
    assert outputs["IngestQueueUrl"]["Value"] == {"Ref": INGEST_QUEUE_ID}
    assert outputs["SenderFunctionName"]["Condition"] == BUFFERED
    assert "Condition" not in outputs["ReplayEnvironment"]


# --- samconfig.toml and make deploy ------------------------------------------------------------------------------

ENVIRONMENTS = ("staging", "prod")


@pytest.fixture(scope="module")
def sam_config() -> dict[str, Any]:
    return samconfig.load(ROOT / "samconfig.toml")


def test_every_build_runs_in_the_source_tree(sam_config: dict[str, Any]) -> None:
    for env_name in ("default", *ENVIRONMENTS):
        assert sam_config[env_name]["build"]["parameters"]["build_in_source"] is True, env_name


def test_staging_and_prod_are_separate_stacks_deployed_their_own_way(
    sam_config: dict[str, Any], template: dict[str, Any]
) -> None:
    sections = {name: samconfig.deploy_parameters(sam_config, name) for name in ENVIRONMENTS}
    assert len({section["stack_name"] for section in sections.values()}) == len(ENVIRONMENTS)
    allowed_types = set(template["Parameters"]["DeploymentType"]["AllowedValues"])
    for name, section in sections.items():
        assert section["capabilities"] == "CAPABILITY_IAM" and section["resolve_s3"] is True, name
        (deployment_type,) = re.findall(r'DeploymentType="(\w+)"', section["parameter_overrides"])
        assert deployment_type in allowed_types, name
        assert 'ConfigurationDigest=""' in section["parameter_overrides"], "a plain sam deploy must not keep an old one"
    assert "AllAtOnce" not in sections["prod"]["parameter_overrides"]
    assert sections["prod"]["confirm_changeset"] is True


def test_samconfig_is_committed_not_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "samconfig.toml" not in ignored


def built(tmp_path: Path, code: str = "print('v1')") -> Path:
    build_dir = tmp_path / "build"
    (build_dir / "ForwarderFunction" / "handler").mkdir(parents=True, exist_ok=True)
    (build_dir / "template.yaml").write_text("Resources: {}\n")
    (build_dir / "ForwarderFunction" / "handler" / "app.py").write_text(code)
    return build_dir


def test_the_first_deploy_of_an_environment_is_guided(sam_config: dict[str, Any], tmp_path: Path) -> None:
    command = samconfig.deploy_command(sam_config, "staging", [], built(tmp_path), interactive=True)
    assert command == ["sam", "deploy", "--guided", "--config-env", "staging"]
    with pytest.raises(samconfig.DeployError, match=r"does not set CreateApiGatewayLoggingRole, OfflineEventSetId"):
        samconfig.deploy_command(sam_config, "staging", [], built(tmp_path), interactive=False)
    with pytest.raises(samconfig.DeployError, match=r"no \[qa.deploy.parameters\]"):
        samconfig.deploy_command(sam_config, "qa", [], built(tmp_path), interactive=True)


def test_later_deploys_ask_nothing_and_publish_a_version_for_any_change(
    sam_config: dict[str, Any], tmp_path: Path
) -> None:
    saved = 'OfflineEventSetId="123" CreateApiGatewayLoggingRole="false" ConfigurationDigest=""'
    config = json.loads(json.dumps(sam_config))
    config["prod"]["deploy"]["parameters"]["parameter_overrides"] = saved
    build_dir = built(tmp_path)

    def command(extra: list[str]) -> list[str]:
        return samconfig.deploy_command(config, "prod", extra, build_dir, interactive=False)

    first = command(["TestEventCode=TEST1"])
    assert first[:5] == ["sam", "deploy", "--config-env", "prod", "--parameter-overrides"]
    assert "--guided" not in first and first[-1] == "--no-confirm-changeset"
    assert first[5:7] == [saved, "TestEventCode=TEST1"]
    name, _, value = first[7].partition("=")
    assert name == samconfig.DIGEST_PARAMETER and re.fullmatch(r"[0-9a-f]{16}", value)
    assert command(["TestEventCode=TEST1"]) == first, "nothing changed: the same version"
    assert command(["TestEventCode=TEST2"])[7] != first[7], "a parameter changed"
    built(tmp_path, code="print('v2')")
    assert command(["TestEventCode=TEST1"])[7] != first[7], "the code changed"


@pytest.mark.parametrize(
    ("code_uris", "unbuilt"),
    [
        (["ForwarderFunction", "SenderFunction"], []),  # `sam build`: every function from the build
        (["ForwarderFunction", "../.."], ["../.."]),  # `sam build ForwarderFunction` (make local-invoke)
        (["ForwarderFunction", "/elsewhere/src"], ["/elsewhere/src"]),
    ],
)
def test_a_deploy_refuses_a_build_that_would_package_the_source_tree(
    sam_config: dict[str, Any], tmp_path: Path, code_uris: list[str], unbuilt: list[str]
) -> None:
    config = json.loads(json.dumps(sam_config))
    config["prod"]["deploy"]["parameters"]["parameter_overrides"] = (
        'OfflineEventSetId="1" CreateApiGatewayLoggingRole="false"'
    )
    build_dir = built(tmp_path)
    (build_dir / "SenderFunction").mkdir()
    functions = "".join(f"  F{i}:\n    Properties:\n      CodeUri: {uri}\n" for i, uri in enumerate(code_uris))
    (build_dir / "template.yaml").write_text(f"Resources:\n{functions}")
    if not unbuilt:
        assert samconfig.deploy_command(config, "prod", [], build_dir, interactive=False)[:2] == ["sam", "deploy"]
        return
    with pytest.raises(samconfig.DeployError, match=rf"did not build \(CodeUri {re.escape(unbuilt[0])};"):
        samconfig.deploy_command(config, "prod", [], build_dir, interactive=False)


# --- the CI/CD pipeline example ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())


def test_pipeline_tests_builds_once_and_deploys_staging_then_prod_with_approval(pipeline: dict[str, Any]) -> None:
    jobs = pipeline["jobs"]
    assert set(jobs) == {"test", "build", "deploy-staging", "deploy-prod"}
    assert "make test" in json.dumps(jobs["test"])
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy-staging"]["needs"] == "build"
    assert jobs["deploy-prod"]["needs"] == "deploy-staging"
    assert jobs["deploy-prod"]["environment"]["name"] == "production", "required reviewers approve prod"
    for name in ("deploy-staging", "deploy-prod"):
        job = json.dumps(jobs[name])
        assert jobs[name]["permissions"]["id-token"] == "write", f"{name}: OIDC, no stored AWS keys"
        assert "aws-actions/configure-aws-credentials" in job and "role-to-assume" in job
        assert "aws-access-key-id" not in job and "secrets.AWS" not in job
        assert f"make deploy-built ENV={name.removeprefix('deploy-')}" in job
        assert "download-artifact" in job, "deploys the build the pipeline tested"


# --- the SAM CLI itself, where installed ------------------------------------------------------------------------------


def _sam_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {
        "SAM_CLI_TELEMETRY": "0",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


def _sam_python() -> str | None:
    """An interpreter with SAM's translator: this one, or the one the SAM CLI runs on (pip installs)."""
    if importlib.util.find_spec("samtranslator") is not None:
        return sys.executable
    if SAM is None:
        return None
    first = Path(SAM).read_bytes()[:200].split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        return None
    python = first[2:].decode().strip().split()[0]
    probe = subprocess.run([python, "-c", "import samtranslator"], capture_output=True, check=False)  # noqa: S603
    return python if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SAM is None:
        pytest.skip("SAM CLI not installed (optional, not in CI)")
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    result = subprocess.run(  # noqa: S603 - the installed SAM CLI on our template, with samconfig.toml
        [SAM, "build", "--build-dir", str(build_dir)],
        cwd=ROOT,
        env=_sam_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir


@pytest.mark.slow
def test_sam_builds_the_function_with_the_makefile_in_the_source_tree(sam_build: Path) -> None:
    artifact = sam_build / FUNCTION_ID
    assert (artifact / "handler" / "app.py").is_file() and (artifact / "forwarder" / "settings.py").is_file()
    assert (artifact / "boto3").is_dir() and (artifact / "aws_lambda_powertools").is_dir()
    assert not {".venv", "tests", "localdev", "bench", "events", "template.yaml"} & {p.name for p in artifact.iterdir()}
    assert "build_in_source" in (ROOT / "samconfig.toml").read_text()


TRANSLATE = r"""
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":  # as sam validate does: a packaged location
        resource["Properties"]["CodeUri"] = "s3://bucket/key"


class NoManagedPolicies:
    def load(self):
        return {}


print(json.dumps(transform(template, json.loads(sys.argv[2]), NoManagedPolicies())))
"""
SAM_PARAMETERS = {
    "OfflineEventSetId": "1234567890",
    "CreateApiGatewayLoggingRole": "false",
    "ExistingSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:forwarder-AbCdEf",
    "ExistingSecretKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "ConfigurationDigest": "0123456789abcdef",
}


@pytest.fixture(scope="module")
def transformed_template(sam_build: Path) -> dict[str, Any]:
    python = _sam_python()
    if python is None:
        pytest.skip("the SAM CLI's own Python (with samtranslator) is not reachable from its launcher")
    result = subprocess.run(  # noqa: S603 - SAM's translator, on the template sam build wrote
        [python, "-c", TRANSLATE, str(sam_build / "template.yaml"), json.dumps(SAM_PARAMETERS)],
        env=_sam_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def transformed(transformed_template: dict[str, Any]) -> dict[str, Any]:
    return transformed_template["Resources"]


def of_function(transformed: dict[str, Any], type_: str, function_id: str) -> list[str]:
    return [
        k
        for k, v in transformed.items()
        if v["Type"] == type_ and v["Properties"]["FunctionName"] == {"Ref": function_id}
    ]


@pytest.mark.slow
def test_sam_publishes_the_live_alias_and_lets_codedeploy_move_it(transformed: dict[str, Any]) -> None:
    (alias_id,) = of_function(transformed, "AWS::Lambda::Alias", FUNCTION_ID)
    alias = transformed[alias_id]
    assert alias["Properties"]["Name"] == "live"
    (version_id,) = of_function(transformed, "AWS::Lambda::Version", FUNCTION_ID)
    assert version_id == f"{FUNCTION_ID}Version{SAM_PARAMETERS['ConfigurationDigest'][:10]}", "named by the digest"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    group = transformed[ref(update["DeploymentGroupName"])]["Properties"]
    assert {ref(alarm["Name"]) for alarm in group["AlarmConfiguration"]["Alarms"]} == ROLLBACK_ALARMS
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert group["DeploymentConfigName"] == {
        "Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": "Canary10Percent10Minutes"}]
    }
    # API Gateway invokes the alias, never $LATEST.
    (api,) = [v for v in transformed.values() if v["Type"] == "AWS::ApiGateway::RestApi"]
    uri = api["Properties"]["Body"]["paths"]["/events"]["post"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert f"${{{alias_id}}}" in uri
    permissions = [v for v in transformed.values() if v["Type"] == "AWS::Lambda::Permission"]
    assert [p["Properties"]["FunctionName"] for p in permissions] == [{"Ref": alias_id}]


@pytest.mark.slow
def test_sam_gives_the_function_role_exactly_the_expected_statements(transformed: dict[str, Any]) -> None:
    role = transformed[f"{FUNCTION_ID}Role"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    found = []
    for policy in role["Policies"]:
        condition = None
        if "Fn::If" in policy:
            condition, policy, _ = policy["Fn::If"]
        found += [(condition, action, s) for s in policy["PolicyDocument"]["Statement"] for action in actions(s)]
    assert sorted((c or "", a) for c, a, _ in found) == [
        ("", "secretsmanager:GetSecretValue"),
        ("", "sqs:SendMessage*"),
        (BUFFERED, "sqs:SendMessage*"),
        ("DecryptWithSecretKey", "kms:Decrypt"),
    ]
    ((_, _, decrypt),) = [entry for entry in found if entry[1] == "kms:Decrypt"]
    assert decrypt["Resource"] == {"Ref": "ExistingSecretKmsKeyArn"}
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]


@pytest.mark.slow
def test_sam_keeps_the_per_stack_namespace_and_empty_local_variables(transformed: dict[str, Any]) -> None:
    variables = transformed[FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    assert variables[METRICS_NAMESPACE_ENV] == STACK_NAMESPACE and variables[SERVICE_ENV] == STACK_SERVICE
    assert {name: variables[name] for name in LOCAL_ONLY_ENV} == dict.fromkeys(LOCAL_ONLY_ENV, "")
    for name in ROLLBACK_ALARMS & {"DeliveryFailuresAlarm", "ParkingFailuresAlarm"}:
        assert transformed[name]["Properties"]["Namespace"] == STACK_NAMESPACE


@pytest.mark.slow
def test_sam_gives_the_sender_its_alias_a_conditional_deployment_group_and_only_its_own_grants(
    transformed_template: dict[str, Any], transformed: dict[str, Any], template: dict[str, Any]
) -> None:
    (alias_id,) = of_function(transformed, "AWS::Lambda::Alias", SENDER_ID)
    alias = transformed[alias_id]
    assert alias["Condition"] == BUFFERED and alias["Properties"]["Name"] == "live"
    (mapping,) = [v for v in transformed.values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["Condition"] == BUFFERED and mapping["Properties"]["FunctionName"] == {"Ref": alias_id}
    # PassthroughCondition: without it SAM creates the deployment group in a direct stack too, naming
    # alarms that stack does not have.
    group = transformed[ref(alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"])]
    assert group["Condition"] == BUFFERED
    assert {
        ref(alarm["Name"]) for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]
    } == SENDER_ROLLBACK_ALARMS
    # The webhook's deployment group, application and CodeDeploy role stay unconditional.
    (webhook_alias_id,) = of_function(transformed, "AWS::Lambda::Alias", FUNCTION_ID)
    webhook_group = ref(
        transformed[webhook_alias_id]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]
    )
    for name in (webhook_group, "ServerlessDeploymentApplication", "CodeDeployServiceRole"):
        assert "Condition" not in transformed[name], name
    role = transformed[f"{SENDER_ID}Role"]
    assert role["Condition"] == BUFFERED
    # No AWSLambdaSQSQueueExecutionRole (receive and delete on every queue): SAM adds it for an SQS event.
    managed = {arn if isinstance(arn, str) else json.dumps(arn) for arn in role["Properties"]["ManagedPolicyArns"]}
    assert {arn.rsplit("/", 1)[-1] for arn in managed} == {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}
    found = []
    for policy in role["Properties"]["Policies"]:
        condition = None
        if "Fn::If" in policy:
            condition, policy, _ = policy["Fn::If"]
        found += [
            (condition or "", a, s["Resource"]) for s in policy["PolicyDocument"]["Statement"] for a in actions(s)
        ]
    poller = POLICY_TEMPLATES["SQSPollerPolicy"]["Statement"][0]["Action"]
    assert sorted((c, a) for c, a, _ in found) == sorted(
        [("", "secretsmanager:GetSecretValue"), ("", "sqs:SendMessage*"), ("DecryptWithSecretKey", "kms:Decrypt")]
        + [("", action) for action in poller]
    )
    queues = {a: getatt(resolve_sub(r)[1]["queueName"])[0] for c, a, r in found if a.startswith("sqs:")}
    assert queues == {"sqs:SendMessage*": "ParkingQueue"} | dict.fromkeys(poller, INGEST_QUEUE_ID)
    # CloudFormation checks the rule before it changes anything; SAM's transform keeps it.
    assert transformed_template["Rules"] == template["Rules"]


def test_sam_reads_make_deploys_parameter_overrides_as_meant(sam_config: dict[str, Any], tmp_path: Path) -> None:
    python = _sam_python()
    if python is None:
        pytest.skip("SAM CLI (with its Python) not installed")
    config = json.loads(json.dumps(sam_config))
    config["staging"]["deploy"]["parameters"]["parameter_overrides"] = (
        'OfflineEventSetId="123" CreateApiGatewayLoggingRole="false" ConfigurationDigest="" '
        'EventNameOverrides="checkout=Check Out,purchase=Buy"'
    )
    command = samconfig.deploy_command(config, "staging", ["TestEventCode=T1"], built(tmp_path), interactive=False)
    tokens = command[command.index("--parameter-overrides") + 1 : command.index("--no-confirm-changeset")]
    code = (
        "import json, sys; from samcli.cli.types import CfnParameterOverridesType; "
        "print(json.dumps(CfnParameterOverridesType().convert(tuple(json.loads(sys.argv[1])), None, None)))"
    )
    result = subprocess.run(  # noqa: S603 - SAM's own parser of --parameter-overrides
        [python, "-c", code, json.dumps(tokens)], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "OfflineEventSetId": "123",
        "CreateApiGatewayLoggingRole": "false",
        "EventNameOverrides": "checkout=Check Out,purchase=Buy",
        "TestEventCode": "T1",
        "ConfigurationDigest": tokens[-1].partition("=")[2],
    }


@pytest.mark.parametrize("function_id", [FUNCTION_ID, SENDER_ID])
def test_connections_secrets_are_read_by_their_prefix_and_the_parameter_by_its_name(
    resources: dict[str, Any], template: dict[str, Any], function_id: str
) -> None:
    function = resources[function_id]
    _, by_prefix = [s for s in function_statements(function) if "secretsmanager:GetSecretValue" in s["Action"]]
    arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${ConnectionSecretsPrefix}*"
    assert by_prefix["Resource"] == {"Fn::Sub": arn}
    ((condition, (parameter,)),) = [(c, s) for c, s in function_policies(function) if c == "HasConnectionsParameter"]
    assert parameter["Action"] == "ssm:GetParameter"
    arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ConnectionsParameterName}"
    assert parameter["Resource"] == {"Fn::Sub": arn}
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ConnectionsParameterName"}, ""]}]}
    env = function["Properties"]["Environment"]["Variables"]
    assert env["CONNECTIONS"] == {"Ref": "Connections"}
    assert env["CONNECTIONS_PARAMETER"] == {"Ref": "ConnectionsParameterName"}
    names = re.compile(template["Parameters"]["ConnectionsParameterName"]["AllowedPattern"])
    assert names.fullmatch("/forwarder/connections") and names.fullmatch("")
    assert not names.fullmatch("forwarder") and not names.fullmatch("/a b")  # the ARN needs the leading /
