"""The deployable artifact works on its own, and events/ holds realistic API Gateway samples.

The slow test builds the artifact exactly as `sam build` does (the Makefile's `build-ForwarderFunction`,
host platform instead of arm64 so it can be imported here), then runs every sample through
`handler.app.lambda_handler` in a fresh interpreter whose sys.path is the artifact and the standard
library only, against a local Graph API stand-in and a moto server; and again in buffered delivery, the
webhook queueing them and `handler.sender.lambda_handler` sending them. A second build, from the Makefile's
dependency cache, must give the same bytes: `make deploy` names the version after them. Deselect with
`-m "not slow"`.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.aws import WEBHOOK_AUTHORIZATION, moto_server, provision
from localdev.graph_stub import GraphStub
from localdev.samples import EVENTS_DIR, load_api_event

ROOT = Path(__file__).resolve().parents[2]

# Scenario -> (status, whether at least one event must reach Facebook).
SCENARIOS: dict[str, tuple[int, bool]] = {
    "purchase.json": (200, True),
    "add_to_cart.json": (200, True),
    "view_detail.json": (200, True),
    "multi_event_batch.json": (200, True),
    "outbound_identities.json": (200, True),
    "inbound_identities.json": (200, True),
    "ldu_batch.json": (200, True),
    "base64_purchase.json": (200, True),
    "non_commerce_batch.json": (200, False),
    "empty_batch.json": (200, False),
    "malformed_body.json": (400, False),
}
# Never in the artifact: repository-only directories and development tools.
FORBIDDEN = {
    "tests", "events", "localdev", "bench", "docs", "template.yaml", "Makefile", "pyproject.toml",
    "pytest", "_pytest", "moto", "hypothesis", "ruff", "responses", "cfnlint", "cfn_lint", "samtranslator",
    "mparticle", "pip", "setuptools",
}  # fmt: skip
# Lambda's limit for an unzipped deployment package.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

# Runs in `python -I -S`: no site-packages, no PYTHONPATH, no current directory; only what we add.
DRIVER = r"""
import json, sys, sysconfig, time, uuid

artifact, events_file, results_file = sys.argv[1:4]
sys.path.insert(0, artifact)


class Context:
    function_name = "ForwarderFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ForwarderFunction"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 25

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


from handler.app import lambda_handler

answers = {}
for name, event in json.load(open(events_file)).items():
    response = lambda_handler(event, Context())
    answers[name] = {"status": response["statusCode"], "body": json.loads(response.get("body") or "{}")}

modules = {
    name: getattr(module, "__file__", None)
    for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None)
}
json.dump(
    {"sys_path": sys.path, "stdlib": sysconfig.get_paths()["stdlib"], "modules": modules, "answers": answers},
    open(results_file, "w"),
)
"""


def host_platform() -> str:
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
    return f"manylinux2014_{machine[platform.machine().lower()]}"


def shipped_files(directory: Path) -> set[Path]:
    return {
        p.relative_to(directory)
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def decoded_body(event: dict[str, Any]) -> str:
    body = event["body"]
    return base64.b64decode(body).decode() if event["isBase64Encoded"] else body


# --- the samples -------------------------------------------------------------------------------------------


def test_every_scenario_has_a_sample() -> None:
    assert {p.name for p in EVENTS_DIR.glob("*.json")} == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sample_is_an_api_gateway_post_to_events(name: str) -> None:
    event = json.loads((EVENTS_DIR / name).read_text())
    assert event["httpMethod"] == "POST"
    assert event["path"] == event["resource"] == "/events"
    context = event["requestContext"]
    assert context["httpMethod"] == "POST" and context["resourcePath"] == "/events" and context["requestId"]
    assert event["headers"]["Authorization"] == WEBHOOK_AUTHORIZATION
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    assert isinstance(event["body"], str)
    assert event["isBase64Encoded"] is (name == "base64_purchase.json")


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"malformed_body.json"}))
def test_sample_batch_carries_mparticle_ids_and_2025_timestamps(name: str) -> None:
    batch = json.loads(decoded_body(json.loads((EVENTS_DIR / name).read_text())))
    assert {"batch_id", "source_request_id", "mpid", "environment", "events"} <= batch.keys()
    assert abs(batch["timestamp_unixtime_ms"] - 1764300000000) < 86_400_000
    for event in batch["events"]:
        data = event["data"]
        assert {"source_message_id", "message_id", "event_id"} <= data.keys()
        assert abs(data["timestamp_unixtime_ms"] - 1764300000000) < 86_400_000


def test_malformed_sample_is_not_json() -> None:
    with pytest.raises(ValueError):
        json.loads(decoded_body(json.loads((EVENTS_DIR / "malformed_body.json").read_text())))


# --- the artifact ------------------------------------------------------------------------------------------


def build(target: Path, deps_cache: Path) -> Path:
    if sys.platform != "linux" or shutil.which("make") is None:
        pytest.skip("building the Linux artifact needs Linux and make")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = subprocess.run(  # noqa: S603 - our own Makefile target
        [
            shutil.which("make"),
            "--no-print-directory",
            "build-ForwarderFunction",
            f"ARTIFACTS_DIR={target}",
            f"DEPS_CACHE={deps_cache}",
            f"LAMBDA_PLATFORM={host_platform()}",
            f"LAMBDA_PYTHON={python}",
            f"PYTHON={sys.executable}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture(scope="module")
def deps_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deps-cache")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, deps_cache: Path) -> Path:
    return build(tmp_path_factory.mktemp("artifact") / "ForwarderFunction", deps_cache)


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_build_from_the_dependency_cache_is_the_same_bytes(
    artifact: Path, deps_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (entry,) = deps_cache.iterdir()  # the first build filled it
    again = build(tmp_path_factory.mktemp("again") / "ForwarderFunction", deps_cache)
    assert tree(again) == tree(artifact)
    assert list(deps_cache.iterdir()) == [entry]
    compiled = again / "forwarder" / "__pycache__"
    assert compiled.is_dir()  # tracebacks name Lambda's paths, not the build machine's
    assert b"/var/task/forwarder/settings.py" in next(compiled.glob("settings.*.pyc")).read_bytes()


@pytest.mark.slow
def test_artifact_holds_the_code_and_runtime_dependencies_only(artifact: Path) -> None:
    names = {p.name for p in artifact.iterdir()}
    dists = {p.name.split("-")[0].lower().replace("_", "-") for p in artifact.glob("*.dist-info")}
    assert {"handler", "forwarder"} <= names
    assert not names & FORBIDDEN, sorted(names & FORBIDDEN)
    assert not dists & {n.replace("_", "-") for n in FORBIDDEN}, sorted(dists)
    assert {"aws-lambda-powertools", "boto3", "requests", "orjson"} <= dists
    for package in ("handler", "forwarder"):
        assert shipped_files(artifact / package) == shipped_files(ROOT / package), package
    size = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())
    assert size < MAX_UNZIPPED_BYTES


@pytest.fixture(scope="module")
def samples_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sample (timestamps moved to now) plus a request with the wrong Authorization header."""
    events = {name: load_api_event(name) for name in SCENARIOS}
    intruder = json.loads(json.dumps(events["purchase.json"]))
    intruder["headers"]["Authorization"] = intruder["multiValueHeaders"]["Authorization"][0] = "Basic d3Jvbmc6d3Jvbmc="
    events["wrong_authorization"] = intruder
    path = tmp_path_factory.mktemp("samples") / "events.json"
    path.write_text(json.dumps(events))
    return path


@pytest.fixture
def aws_env() -> Iterator[dict[str, str]]:
    """localdev's moto server, emptied first: moto keeps its state per process, not per server."""
    with moto_server() as endpoint:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
        yield provision(endpoint)


def run_driver(driver: str, args: list[Path], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`driver` in a fresh `python -I -S` with only `env` (and what every run needs); it must exit 0."""
    run = subprocess.run(  # noqa: S603 - this interpreter, our driver
        [sys.executable, "-I", "-S", "-c", driver, *map(str, args)],
        cwd=cwd,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "OFFLINE_EVENT_SET_ID": "1234567890",
            "POWERTOOLS_SERVICE_NAME": "facebook-offline-forwarder",
            "POWERTOOLS_METRICS_NAMESPACE": "MParticleFacebookForwarder",
            "POWERTOOLS_TRACE_DISABLED": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("api", ["conversions_api", "offline_conversions"])
def test_artifact_handles_every_sample_in_a_fresh_interpreter(
    artifact: Path, samples_file: Path, aws_env: dict[str, str], tmp_path: Path, api: str
) -> None:
    results_file = tmp_path / "results.json"
    with GraphStub() as graph:
        env = {
            **aws_env,
            "FACEBOOK_API": api,
            "FACEBOOK_GRAPH_URL": graph.url,
            "SEND_CCPA_LIMITED_DATA_USE": "opted_out",
        }
        run = run_driver(DRIVER, [artifact, samples_file, results_file], env, tmp_path)
        forwarded_to_graph = len(graph.events)
    results = json.loads(results_file.read_text())

    # Only the artifact and the standard library were importable, and only they were imported.
    stdlib = Path(results["stdlib"])
    assert results["sys_path"][0] == str(artifact)
    for entry in results["sys_path"][1:]:
        assert "site-packages" not in entry and Path(entry).parent in {stdlib.parent, stdlib}, entry
    for module, file in results["modules"].items():
        path = Path(file)
        from_stdlib = path.is_relative_to(stdlib) and "site-packages" not in path.parts
        assert path.is_relative_to(artifact) or from_stdlib, (module, file)

    answers = results["answers"]
    assert answers["wrong_authorization"]["status"] == 401
    forwarded_total = 0
    for name, (status, forwards) in SCENARIOS.items():
        answer = answers[name]
        assert answer["status"] == status, (name, answer)
        if status != 200:
            assert answer["body"]["error"], name
            continue
        summary = answer["body"]
        assert summary["forwarded"] + sum(summary["skipped"].values()) == summary["received"], (name, summary)
        assert (summary["forwarded"] > 0) is forwards, (name, summary)
        forwarded_total += summary["forwarded"]
    assert answers["multi_event_batch.json"]["body"]["skipped"], "the refund and the custom event are skipped"
    assert forwarded_to_graph == forwarded_total

    # Logs and metrics are on stdout (JSON lines, EMF); no secret or personal data may be in them.
    output = run.stdout + run.stderr
    for secret in ("local-access-token", WEBHOOK_AUTHORIZATION, "jane.doe@example.com", "5550134", "C-100234"):
        assert secret.lower() not in output.lower(), f"{secret!r} leaked into the logs"
    emf = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{") and '"_aws"' in line]
    namespaces = {m["Namespace"] for blob in emf for m in blob["_aws"]["CloudWatchMetrics"]}
    assert namespaces == {"MParticleFacebookForwarder"}


# Buffered delivery in the artifact alone: the webhook handler queues every sample, then the sender handler
# gets them as Lambda's SQS event source would (the records' shape of aws-lambda-developer-guide, with-sqs).
SENDER_DRIVER = r"""
import json, sys, time, uuid

artifact, events_file, results_file = sys.argv[1:4]
sys.path.insert(0, artifact)


class Context:
    memory_limit_in_mb = 256

    def __init__(self, name, seconds):
        self.function_name = name
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


import os
import boto3
from handler.app import lambda_handler as webhook
from handler.sender import lambda_handler as sender

answers = {}
for name, event in json.load(open(events_file)).items():
    response = webhook(event, Context("ForwarderFunction", 25))
    answers[name] = {"status": response["statusCode"], "body": json.loads(response.get("body") or "{}")}

sqs = boto3.client("sqs")
queue = os.environ["INGEST_QUEUE_URL"]
messages = []
while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
    messages += batch
records = [
    {
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
    }
    for m in messages
]
answer = sender({"Records": records}, Context("SenderFunction", 60))
json.dump({"answers": answers, "messages": len(records), "sender": answer}, open(results_file, "w"))
"""


@pytest.mark.slow
def test_artifact_serves_both_handlers_of_buffered_delivery(
    artifact: Path, samples_file: Path, aws_env: dict[str, str], tmp_path: Path
) -> None:
    results_file = tmp_path / "results.json"
    with GraphStub() as graph:
        env = {
            **aws_env,
            "FACEBOOK_API": "conversions_api",
            "DELIVERY_MODE": "buffered",
            "FACEBOOK_GRAPH_URL": graph.url,
        }
        run = run_driver(SENDER_DRIVER, [artifact, samples_file, results_file], env, tmp_path)
        requests = list(graph.received)
    results = json.loads(results_file.read_text())

    queued = 0
    for name, (status, forwards) in SCENARIOS.items():
        answer = results["answers"][name]
        assert answer["status"] == status, (name, answer)
        if status == 200:
            assert (answer["body"]["queued"] > 0) is forwards, (name, answer)
            queued += answer["body"]["queued"]
    assert results["answers"]["wrong_authorization"]["status"] == 401
    assert results["messages"] >= 8 and results["sender"] == {"batchItemFailures": []}
    # Every queued event reached Facebook once, in one Graph request (they were all for one dataset).
    assert len(requests) == 1 and requests[0].status == 200
    event_ids = [event["event_id"] for event in requests[0].data]
    assert len(event_ids) == queued == len(set(event_ids))
    output = run.stdout + run.stderr
    for secret in ("local-access-token", WEBHOOK_AUTHORIZATION, "jane.doe@example.com", "5550134", "C-100234"):
        assert secret.lower() not in output.lower(), f"{secret!r} leaked into the logs"
