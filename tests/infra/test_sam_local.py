"""The pieces of `make local-invoke`, `make local-api` and `make local-invoke-buffered` (localdev/sam_local.py,
localdev/sam_inputs.py), tested without Docker.

The stand-ins start and answer where the container is told to call, the env file sets only variables the
template declares (SAM ignores the others) and every one the functions need, the sample is dated now,
real AWS credentials never reach sam, SAM_ARGS reach `sam local` as given, and the function accepts plain
http:// to host.docker.internal only under `sam local`. Finally the whole command runs against a stand-in
for `sam local invoke` that does what SAM does with the env file, in a fresh interpreter that resolves
host.docker.internal to loopback: direct, and buffered (the webhook queues, then SenderFunction is given
the queued messages as an SQS event). Also here: the Graph stand-in's own fixes (no Nagle delay, custom
event names on the Conversions API).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from cfnlint.decode import decode_str

from forwarder.settings import SettingsError, load_settings
from localdev import sam_inputs, sam_local
from localdev.aws import WEBHOOK_AUTHORIZATION
from localdev.event_source import Invocation
from localdev.graph_stub import GraphStub

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode_str((ROOT / "template.yaml").read_text())
    assert not matches
    return json.loads(json.dumps(decoded))


@pytest.fixture(scope="module")
def declared(template: dict[str, Any]) -> dict[str, Any]:
    """The environment variables template.yaml declares for the function (all SAM can set)."""
    return template["Resources"][sam_inputs.FUNCTION_ID]["Properties"]["Environment"]["Variables"]


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["Ref"]} if set(node) == {"Ref"} else {r for value in node.values() for r in refs(value)}
    if isinstance(node, list):
        return {r for value in node for r in refs(value)}
    return set()


@pytest.fixture(scope="module")
def local() -> Any:
    with sam_inputs.stand_ins("127.0.0.1") as running:
        yield running


# --- where the stand-ins listen, and the names the container uses ----------------------------------------------


@pytest.mark.parametrize(
    ("system", "docker0", "expected"),
    [
        ("Linux", "172.17.0.1", ("172.17.0.1", True)),  # Docker engine on this machine: its bridge, name mapped
        ("Linux", None, ("127.0.0.1", False)),  # Docker Desktop for Linux: forwards the name to loopback
        ("Darwin", None, ("127.0.0.1", False)),
        ("Windows", None, ("127.0.0.1", False)),
    ],
)
def test_the_stand_ins_listen_where_the_container_can_reach_them(
    system: str, docker0: str | None, expected: tuple[str, bool]
) -> None:
    assert sam_inputs.bind_address(system, docker0) == expected


@pytest.mark.skipif(sys.platform != "linux", reason="reads a Linux network interface")
def test_an_interfaces_address_is_read_and_a_missing_one_is_none() -> None:
    assert sam_inputs.interface_ipv4("lo") == "127.0.0.1"
    assert sam_inputs.interface_ipv4("no-such-if0") is None


def test_the_stand_ins_answer_and_the_container_is_told_the_same_ports(local: Any) -> None:
    client = boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=local.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    secret = json.loads(client.get_secret_value(SecretId=local.secret_id)["SecretString"])
    assert secret["webhook_authorization"] == WEBHOOK_AUTHORIZATION  # what every sample sends
    assert requests.post(f"{local.graph.url}/v26.0/1/events", json={}, timeout=5).status_code == 400  # answers
    port = local.aws_endpoint.rsplit(":", 1)[1]
    assert local.container_aws_endpoint == f"http://host.docker.internal:{port}"
    assert local.container_graph_url == f"http://host.docker.internal:{local.graph.port}"
    assert local.container_queue_url.startswith(f"http://host.docker.internal:{port}/")
    assert local.container_queue_url.endswith("/mparticle-facebook-forwarder-parking")


# --- the files sam is given -----------------------------------------------------------------------------------------


def test_the_env_file_sets_only_declared_variables_and_all_the_function_needs(
    local: Any, template: dict[str, Any], declared: dict[str, Any], tmp_path: Path
) -> None:
    env_file, _ = sam_inputs.write_files(tmp_path, local, "conversions_api", "purchase")
    (function_id, values), *others = json.loads(env_file.read_text()).items()
    assert function_id == sam_inputs.FUNCTION_ID and not others
    assert values.keys() <= declared.keys(), sorted(values.keys() - declared.keys())  # SAM drops the rest
    # What sam cannot resolve locally (references to resources), the endpoints, and the parameter without
    # a default that the function reads.
    from_resources = {name for name, value in declared.items() if refs(value) & template["Resources"].keys()}
    assert from_resources == {"SECRET_ID", "PARKING_QUEUE_URL", "INGEST_QUEUE_URL", "SETTLED_EVENTS_TABLE"}
    # INGEST_QUEUE_URL names a queue in a buffered stack only; sam local runs the default, direct, where the
    # template sets it to "" (the code reads it as unset).
    assert declared["INGEST_QUEUE_URL"]["Fn::If"][2] == ""
    needed = from_resources - {"INGEST_QUEUE_URL"}
    assert values.keys() >= needed | {"AWS_ENDPOINT_URL", "FACEBOOK_GRAPH_URL", "OFFLINE_EVENT_SET_ID"}
    settings = load_settings({**values, "AWS_SAM_LOCAL": "true"})
    assert settings.graph_url == local.container_graph_url


def test_the_sample_is_dated_now(local: Any, tmp_path: Path) -> None:
    _, event_file = sam_inputs.write_files(tmp_path, local, "conversions_api", "purchase")
    event = json.loads(event_file.read_text())
    assert event["httpMethod"] == "POST" and event["path"] == "/events"
    batch = json.loads(event["body"])
    stamps = [e["data"]["timestamp_unixtime_ms"] for e in batch["events"]]
    now_ms = time.time() * 1000
    assert all(now_ms - 5 * 60_000 < stamp <= now_ms for stamp in stamps), stamps  # Facebook takes 62 days


def test_an_unknown_sample_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match=r"choose one of: .*purchase"):
        sam_inputs.sample_path("purchse")


def test_the_sam_command_names_the_files_and_every_parameter_without_a_default(tmp_path: Path) -> None:
    template, _ = decode_str((ROOT / "template.yaml").read_text())
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    env_file, event_file = tmp_path / "env.json", tmp_path / "event.json"
    invoke = sam_inputs.sam_command("invoke", env_file, "172.17.0.1", True, event_file)
    assert invoke[:4] == ["sam", "local", "invoke", sam_inputs.FUNCTION_ID]
    assert invoke[invoke.index("--event") + 1] == str(event_file)
    assert invoke[invoke.index("--env-vars") + 1] == str(env_file)
    assert invoke[invoke.index("--add-host") + 1] == "host.docker.internal:172.17.0.1"
    overrides = invoke[invoke.index("--parameter-overrides") + 1 : invoke.index("--add-host")]
    assert {token.split("=", 1)[0] for token in overrides} == required
    api = sam_inputs.sam_command("start-api", env_file, "127.0.0.1", False, port=3001)
    assert api[:5] == ["sam", "local", "start-api", "--port", "3001"] and "--add-host" not in api


def test_sam_runs_with_placeholder_credentials_only() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "DOCKER_HOST": "unix:///var/run/docker.sock",
        "AWS_PROFILE": "production",
        "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
        "AWS_SECRET_ACCESS_KEY": "real-secret",
        "AWS_SESSION_TOKEN": "real-token",
        "FACEBOOK_GRAPH_URL": "https://graph.facebook.com",
    }
    env = sam_inputs.sam_environment({"FACEBOOK_GRAPH_URL", "SECRET_ID"}, environ)
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert "AWS_PROFILE" not in env and "real" not in json.dumps(env) and "AKIA" not in json.dumps(env)
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert "FACEBOOK_GRAPH_URL" not in env  # a shell value of a declared variable would reach the function
    assert env["PATH"] == "/usr/bin" and env["DOCKER_HOST"] == environ["DOCKER_HOST"]


# --- the function's one allowance for sam local ----------------------------------------------------------------------

REQUIRED = {"SECRET_ID": "s", "OFFLINE_EVENT_SET_ID": "1", "PARKING_QUEUE_URL": "q"}


@pytest.mark.parametrize(
    ("url", "sam_local_flag", "allowed"),
    [
        ("http://host.docker.internal:8123", "true", True),
        ("http://host.docker.internal:8123/graph", "true", True),
        ("http://host.docker.internal:8123", None, False),  # deployed: never plain http to a non-loopback host
        ("http://host.docker.internal:8123", "1", False),  # SAM sets exactly "true"
        ("http://graph.example.com", "true", False),  # only that name, even under sam local
        ("http://172.17.0.1:8123", "true", False),
        ("http://127.0.0.1:8123", None, True),  # loopback as before
        ("https://graph.facebook.com", None, True),
    ],
)
def test_plain_http_to_host_docker_internal_only_under_sam_local(
    url: str, sam_local_flag: str | None, allowed: bool
) -> None:
    env = {**REQUIRED, "FACEBOOK_GRAPH_URL": url}
    if sam_local_flag is not None:
        env["AWS_SAM_LOCAL"] = sam_local_flag
    if allowed:
        assert load_settings(env).graph_url == url
    else:
        with pytest.raises(SettingsError, match="FACEBOOK_GRAPH_URL"):
            load_settings(env)


# --- SAM_ARGS, the Makefile's command lines, the local template ----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "own", "passed_on"),
    [
        (["invoke", "purchase"], ["invoke", "purchase"], []),
        (["invoke", "purchase", "--"], ["invoke", "purchase"], []),
        (["invoke", "--api", "x", "--", "--skip-pull-image"], ["invoke", "--api", "x"], ["--skip-pull-image"]),
        (["start-api", "--", "--debug", "--", "x"], ["start-api"], ["--debug", "--", "x"]),  # only the first splits
    ],
)  # fmt: skip
def test_what_follows_a_double_dash_is_passed_on_to_sam(argv: list[str], own: list[str], passed_on: list[str]) -> None:
    assert sam_local.split_sam_args(argv) == (own, passed_on)


def test_sam_args_come_last_as_given_after_the_template_and_the_host_mapping(tmp_path: Path) -> None:
    args = ["--skip-pull-image", "--invoke-image", "mirror.example/lambda/python:3.13-arm64", "--debug"]
    env_file, event_file, template = tmp_path / "env.json", tmp_path / "e.json", tmp_path / "template.yaml"
    invoke = sam_inputs.sam_command(
        "invoke", env_file, "172.17.0.1", True, event_file, function="SenderFunction", template=template, sam_args=args
    )
    assert invoke[:4] == ["sam", "local", "invoke", "SenderFunction"]
    assert invoke[-len(args) :] == args
    assert invoke[invoke.index("--template") + 1] == str(template)
    api = sam_inputs.sam_command("start-api", env_file, "127.0.0.1", False, sam_args=["--warm-containers", "EAGER"])
    assert api[-2:] == ["--warm-containers", "EAGER"] and "--template" not in api
    parameters = sam_inputs.BUFFERED_PARAMETERS
    buffered = sam_inputs.sam_command("invoke", env_file, "127.0.0.1", False, event_file, parameters=parameters)
    assert "DeliveryMode=buffered" in buffered


def make_dry_run(*arguments: str) -> list[str]:
    """The commands a make target would run (`make -n`), one per line."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(  # noqa: S603 - make, printing commands only
        [shutil.which("make") or "make", "-n", "-C", str(ROOT), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def run_by(lines: list[str], module: str) -> list[str]:
    [line] = [line for line in lines if f"-m {module} " in f"{line} "]
    words = shlex.split(line)
    return words[words.index(module) + 1 :]


@pytest.mark.parametrize(
    ("make_arguments", "build", "module_argv"),
    [
        (["local-invoke"], "sam build ForwarderFunction", ["invoke", "purchase", "--"]),
        (
            ["local-invoke", "NAME=add_to_cart", "ARGS=--api offline_conversions --timeout 120",
             "SAM_ARGS=--skip-pull-image --debug"],
            "sam build ForwarderFunction",
            ["invoke", "add_to_cart", "--api", "offline_conversions", "--timeout", "120",
             "--", "--skip-pull-image", "--debug"],
        ),
        (
            ["local-invoke", "SAM_ARGS=--invoke-image 'mirror.example/lambda python:3.13'"],
            "sam build ForwarderFunction",
            ["invoke", "purchase", "--", "--invoke-image", "mirror.example/lambda python:3.13"],
        ),
        (["local-api", "SAM_ARGS=--warm-containers EAGER"], "sam build ForwarderFunction",
         ["start-api", "--", "--warm-containers", "EAGER"]),
        (["local-invoke-buffered"], "sam build", ["invoke-buffered", "purchase", "add_to_cart", "--"]),
        (
            ["local-invoke-buffered", "NAME=purchase view_detail ldu_batch", "SAM_ARGS=--skip-pull-image"],
            "sam build",
            ["invoke-buffered", "purchase", "view_detail", "ldu_batch", "--", "--skip-pull-image"],
        ),
    ],
)  # fmt: skip
def test_the_makefile_builds_what_it_runs_and_passes_sam_args_to_sam(
    make_arguments: list[str], build: str, module_argv: list[str]
) -> None:
    lines = make_dry_run(*make_arguments)
    assert build in lines  # the direct targets build only the function they invoke, not SenderFunction
    argv = run_by(lines, "localdev.sam_local")
    assert argv == module_argv
    own, passed_on = sam_local.split_sam_args(argv)
    assert passed_on == module_argv[module_argv.index("--") + 1 :]
    assert "--skip-pull-image" not in own  # never refused by our own parser


def test_make_parked_lists_without_replaying() -> None:
    assert run_by(make_dry_run("parked"), "forwarder.replay") == ["--list"]
    with_args = run_by(make_dry_run("parked", "ARGS=--max-messages 10"), "forwarder.replay")
    assert with_args == ["--list", "--max-messages", "10"]


def test_the_local_template_raises_every_function_timeout_and_keeps_its_code(tmp_path: Path) -> None:
    # template.yaml's functions have the same layout as the template sam build writes (CodeUri: . there).
    built_dir = tmp_path / "build"
    text = sam_inputs.local_template((ROOT / "template.yaml").read_text(), built_dir, 120)
    before, _ = decode_str((ROOT / "template.yaml").read_text())
    after, matches = decode_str(text)
    assert not matches
    for name in (sam_inputs.FUNCTION_ID, sam_inputs.SENDER_ID):
        was, now = before["Resources"][name]["Properties"], after["Resources"][name]["Properties"]
        assert (was["Timeout"], now["Timeout"]) in {(25, 120), (60, 120)}
        assert now["CodeUri"] == str(built_dir.resolve())
        assert {k: v for k, v in now.items() if k not in ("Timeout", "CodeUri")} == {
            k: v for k, v in was.items() if k not in ("Timeout", "CodeUri")
        }
    assert json.dumps(after["Resources"]["IngestQueue"]) == json.dumps(before["Resources"]["IngestQueue"])
    with pytest.raises(SystemExit, match="no function Timeout"):
        sam_inputs.local_template("Resources: {}\n", built_dir, 120)


@pytest.mark.parametrize(
    ("answer", "failures"),
    [
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ["m2"]),
        ({"errorType": "Runtime.ImportModuleError", "errorMessage": "no module"}, ["m1", "m2"]),  # a crash
        ({"errorMessage": "Task timed out after 60.00 seconds"}, ["m1", "m2"]),
        (None, ["m1", "m2"]),  # sam printed no answer
    ],
)
def test_a_sender_that_fails_returns_every_message_as_lambda_does(answer: Any, failures: list[str]) -> None:
    event = {"Records": [{"messageId": "m1"}, {"messageId": "m2"}]}
    returned = sam_local.sqs_event_answer(answer, event)["batchItemFailures"]
    assert [item["itemIdentifier"] for item in returned] == failures


@pytest.mark.parametrize(
    ("statuses", "failures", "code"),
    [
        ([200], [], 0),
        ([422], [], 0),  # mParticle would not retry it, but the function did what it should
        ([503], [], 1),
        ([None], [], 1),  # no answer
        ([200, 200], [[]], 0),
        ([200, 200], [["m1"]], 1),
        ([200, 500], [[]], 1),
    ],
)
def test_the_exit_code_is_0_only_when_every_answer_is_below_500_and_nothing_is_returned(
    statuses: list[int | None], failures: list[list[str]], code: int
) -> None:
    answers = [{"statusCode": status} if status else None for status in statuses]
    invocations = [Invocation(records=1, failures=names) for names in failures]
    assert sam_local.exit_code(answers, invocations) == code


def test_the_buffered_env_file_sets_both_functions_declared_variables(
    local: Any, template: dict[str, Any], tmp_path: Path
) -> None:
    env_file, _ = sam_inputs.write_files(tmp_path, local, "conversions_api", "purchase", buffered=True)
    sections = json.loads(env_file.read_text())
    assert set(sections) == {sam_inputs.FUNCTION_ID, sam_inputs.SENDER_ID}
    for function, values in sections.items():
        declared = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert values.keys() <= declared.keys(), (function, sorted(values.keys() - declared.keys()))
        settings = load_settings({**values, "AWS_SAM_LOCAL": "true"})
        assert settings.delivery_mode.value == "buffered"
        assert values["INGEST_QUEUE_URL"] == local.container_ingest_queue_url
    assert local.container_ingest_queue_url.endswith("/mparticle-facebook-forwarder-ingest")


# --- the whole command, with a stand-in for sam -------------------------------------------------------------------

# What `sam local invoke FUNCTION --event E --env-vars F ...` does with the environment
# (samcli/local/lambdafn/env_vars.py): AWS variables from its own session; then each variable the template
# declares, with the template's value (an unresolved intrinsic becomes ""), the shell's value, or the env
# file's, in rising priority; variables the template does not declare are ignored. Then the function's
# handler runs (here in this interpreter, in a fresh process, with host.docker.internal resolving to loopback
# as the container's hosts file would), its output to stderr and the response as the last line of stdout.
# Each call is recorded beside the env file (calls.jsonl: its arguments and the environment it gave).
FAKE_SAM = r"""#!{python}
import json, os, socket, sys
sys.path.insert(0, {root!r})
args = sys.argv[1:]
assert args[:2] == ["local", "invoke"], args
function = args[2]
handlers = {{"ForwarderFunction": "handler.app", "SenderFunction": "handler.sender"}}
event = json.load(open(args[args.index("--event") + 1]))
env_file = args[args.index("--env-vars") + 1]
overrides = json.load(open(env_file)).get(function, {{}})
declared = json.loads({declared!r})[function]
env = {{
    "AWS_SAM_LOCAL": "true",
    "AWS_LAMBDA_FUNCTION_NAME": function,
    "AWS_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "defaultkey"),
    "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "defaultsecret"),
}}
for name, value in declared.items():
    value = value if isinstance(value, str) else ""
    value = os.environ.get(name, value)
    env[name] = str(overrides.get(name, value))
with open(os.path.join(os.path.dirname(env_file), "calls.jsonl"), "a") as calls:
    calls.write(json.dumps({{"args": args, "env": env}}) + "\n")
if os.environ.get("FAKE_SAM_CRASH") == function:  # what sam prints when the function's runtime exits
    print(json.dumps({{"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited with error"}}))
    sys.exit(0)
os.environ.clear()
os.environ.update(env, PATH="/usr/bin:/bin", POWERTOOLS_METRICS_DISABLED="true")
real_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *rest, **kwargs):
    return real_getaddrinfo("127.0.0.1" if host == "host.docker.internal" else host, *rest, **kwargs)
socket.getaddrinfo = getaddrinfo
from localdev.lambda_context import LocalContext
stdout, sys.stdout = sys.stdout, sys.stderr
import importlib
lambda_handler = importlib.import_module(handlers[function]).lambda_handler
response = lambda_handler(event, LocalContext(function_name=function))
sys.stdout = stdout
print(json.dumps(response))
"""


@pytest.fixture
def fake_sam(template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sam` on PATH is the stand-in above; returns the work directory the command is given."""
    declared = {
        name: template["Resources"][name]["Properties"]["Environment"]["Variables"]
        for name in (sam_inputs.FUNCTION_ID, sam_inputs.SENDER_ID)
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sam"
    fake.write_text(FAKE_SAM.format(python=sys.executable, root=str(ROOT), declared=json.dumps(declared)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")  # the operator's own: must not reach sam
    monkeypatch.setenv("FACEBOOK_GRAPH_URL", "https://graph.facebook.com")  # nor a shell value of a declared one
    return tmp_path / "local"


def printed(out: str, title: str) -> Any:
    """The JSON the command printed under `== <title>`."""
    return json.loads(out.split(f"== {title}\n", 1)[1].split("\n\n", 1)[0])


def calls(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (workdir / "calls.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("api", ["conversions_api", "offline_conversions"])
def test_local_invoke_end_to_end_with_a_stand_in_for_sam(
    fake_sam: Path, capsys: pytest.CaptureFixture[str], api: str
) -> None:
    sam_args = ["--skip-pull-image", "--invoke-image", "mirror.example/lambda/python:3.13-arm64"]
    argv = ["invoke", "purchase", "--api", api, "--bind", "127.0.0.1", "--workdir", str(fake_sam), "--", *sam_args]

    status = sam_local.main(argv)

    out = capsys.readouterr().out
    assert status == 0, out
    [call] = calls(fake_sam)
    assert call["args"][-len(sam_args) :] == sam_args  # SAM_ARGS reach sam as given
    seen = call["env"]
    assert seen["AWS_ACCESS_KEY_ID"] == "testing"
    assert seen["FACEBOOK_GRAPH_URL"].startswith("http://host.docker.internal:")
    assert seen["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")
    response = printed(out, "event-purchase.json: what mParticle gets back")
    assert response["statusCode"] == 200, response
    assert response["body"]["forwarded"] == 1 and response["body"]["api"] == api
    assert "as the Graph API stand-in received it (answered 200)" in out
    assert '"event_name": "Purchase"' in out


def test_local_invoke_buffered_queues_then_gives_the_sender_the_messages_as_an_sqs_event(
    fake_sam: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["invoke-buffered", "purchase", "add_to_cart", "--bind", "127.0.0.1", "--workdir", str(fake_sam)]

    status = sam_local.main([*argv, "--", "--skip-pull-image"])

    out = capsys.readouterr().out
    assert status == 0, out
    webhook_1, webhook_2, sender = calls(fake_sam)
    functions = [call["args"][2] for call in (webhook_1, webhook_2, sender)]
    assert functions == ["ForwarderFunction", "ForwarderFunction", "SenderFunction"]
    assert all(call["args"][-1] == "--skip-pull-image" for call in (webhook_1, webhook_2, sender))
    assert all("DeliveryMode=buffered" in call["args"] for call in (webhook_1, webhook_2, sender))
    assert webhook_1["env"]["DELIVERY_MODE"] == sender["env"]["DELIVERY_MODE"] == "buffered"
    # The webhook answered 200 with the events queued, one message per batch.
    for title in ("event-purchase.json", "event-add_to_cart.json"):
        response = printed(out, f"{title}: what mParticle gets back")
        assert response["statusCode"] == 200 and response["body"]["queued"] == 1, response
    # SenderFunction got both messages in one standard SQS event, and returned none of them.
    event = json.loads((fake_sam / "sqs-event-1.json").read_text())
    assert [record["eventSource"] for record in event["Records"]] == ["aws:sqs", "aws:sqs"]
    assert {"messageId", "receiptHandle", "body", "attributes", "eventSourceARN"} <= event["Records"][0].keys()
    assert printed(out, "sqs-event-1.json (2 messages): what SenderFunction answers") == {"batchItemFailures": []}
    # One Graph request with both batches' events, and the ingest queue empty afterwards.
    assert out.count("as the Graph API stand-in received it (answered 200)") == 1
    assert '"event_name": "Purchase"' in out and '"event_name": "AddToCart"' in out
    assert "the ingest queue is empty" not in out


def test_a_sender_that_crashes_under_sam_fails_the_command_and_sends_nothing(
    fake_sam: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SAM_CRASH", "SenderFunction")
    argv = ["invoke-buffered", "purchase", "--bind", "127.0.0.1", "--workdir", str(fake_sam)]

    status = sam_local.main(argv)

    out = capsys.readouterr().out
    assert status == 1, out
    assert [call["args"][2] for call in calls(fake_sam)] == ["ForwarderFunction", "SenderFunction"]
    assert "Runtime.ExitError" in out and "the Graph API stand-in received nothing" in out


def test_a_sample_the_webhook_queues_nothing_for_leaves_the_sender_alone(
    fake_sam: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["invoke-buffered", "non_commerce_batch", "--bind", "127.0.0.1", "--workdir", str(fake_sam)]
    status = sam_local.main(argv)

    out = capsys.readouterr().out
    assert status == 0, out
    assert [call["args"][2] for call in calls(fake_sam)] == ["ForwarderFunction"]
    assert "the ingest queue is empty: nothing for SenderFunction" in out


# --- the Graph stand-in ---------------------------------------------------------------------------------------------


def test_the_graph_stand_in_adds_no_delay_to_keep_alive_requests() -> None:
    """Its headers and body are two writes; with Nagle's algorithm the second waited ~40 ms for an ACK."""
    with GraphStub() as graph, requests.Session() as session:
        timings = []
        for _ in range(12):
            started = time.perf_counter()
            session.post(f"{graph.url}/v26.0/1/events", json={"access_token": "x"}, timeout=5)
            timings.append(time.perf_counter() - started)
        assert graph.connections == 1  # one keep-alive connection, where the delay showed
    assert statistics.median(timings[1:]) < 0.02, timings


def test_the_graph_stand_in_listens_where_it_is_told() -> None:
    with GraphStub(host="127.0.0.1") as graph, socket.create_connection(("127.0.0.1", graph.port), timeout=5):
        assert graph.url == f"http://127.0.0.1:{graph.port}"


def _event(name: str) -> dict[str, Any]:
    return {
        "event_name": name,
        "event_time": int(time.time()) - 60,
        "action_source": "physical_store",
        "user_data": {"em": "a" * 64},
    }


def test_the_graph_stand_in_takes_custom_event_names_on_the_conversions_api_as_meta_does() -> None:
    with GraphStub() as graph, requests.Session() as session:
        url = f"{graph.url}/v26.0/1/events"
        for name in ("Checkout", "AddToWishList", "store visit"):
            answer = session.post(url, json={"access_token": graph.access_token, "data": [_event(name)]}, timeout=5)
            assert answer.status_code == 200, (name, answer.text)
        for name in ("", None, 7):
            answer = session.post(url, json={"access_token": graph.access_token, "data": [_event(name)]}, timeout=5)
            assert answer.status_code == 400, name
        # The Offline Conversions API took Meta's standard names only.
        offline = {**_event("Checkout"), "match_keys": {"email": "a" * 64}}
        body = {"access_token": graph.access_token, "upload_tag": "t", "data": [offline]}
        answer = session.post(f"{graph.url}/v16.0/1/events", json=body, timeout=5)
        assert answer.status_code == 400 and "not a standard event" in answer.text


# --- the same rules, by SAM itself where it is installed ------------------------------------------------------------

SAM_RESOLVES = r"""
import json, sys
from samcli.lib.providers.provider import Stack
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables
from samcli.yamlhelper import yaml_parse

template_file, overrides_file, parameters, name = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
stack = Stack("", "", template_file, parameters, yaml_parse(open(template_file).read()))
function = SamFunctionProvider([stack]).get(name)
overrides = json.load(open(overrides_file))[name]
variables = EnvironmentVariables(
    function.name, function.memory, function.timeout, function.handler,
    variables=function.environment["Variables"], shell_env_values={}, override_values=overrides,
    aws_creds={"key": "testing", "secret": "testing", "region": "us-east-1"},
)
print(json.dumps(variables.resolve()))
"""


@pytest.mark.parametrize(
    ("function", "buffered"),
    [("ForwarderFunction", False), ("ForwarderFunction", True), ("SenderFunction", True)],
)
def test_sam_gives_the_container_the_env_files_values(
    local: Any, tmp_path: Path, function: str, buffered: bool
) -> None:
    sam = shutil.which("sam")
    python = None
    if sam:
        first = Path(sam).read_bytes()[:200].split(b"\n", 1)[0]
        python = first[2:].decode().strip().split()[0] if first.startswith(b"#!") else None
    if python is None or subprocess.run([python, "-c", "import samcli"], check=False).returncode:  # noqa: S603
        pytest.skip("the SAM CLI (with its Python) is not installed")
    env_file, _ = sam_inputs.write_files(tmp_path, local, "conversions_api", "purchase", buffered)
    parameters = sam_inputs.BUFFERED_PARAMETERS if buffered else sam_inputs.PARAMETER_OVERRIDES
    result = subprocess.run(  # noqa: S603 - SAM's own code resolving the function's environment
        [
            python,
            "-c",
            SAM_RESOLVES,
            str(ROOT / "template.yaml"),
            str(env_file),
            json.dumps(parameters),
            function,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    container = json.loads(result.stdout)
    given = json.loads(env_file.read_text())[function]
    assert {name: container.get(name) for name in given} == given
    assert container["AWS_SAM_LOCAL"] == "true" and container["AWS_ACCESS_KEY_ID"] == "testing"
    load_settings(container)  # the function accepts what it is given there
