"""Measurement 3: cold start, a fresh interpreter per run, timed from spawn to exit.

Ours imports `handler.app` and serves one request (secret from the local Secrets Manager, one POST
to the responder); the floor does the work any implementation must do for that request with the same
libraries: import boto3 and requests, read the secret once, POST once. Both run with the same
environment and warm bytecode caches.
A second pair runs with an empty bytecode cache, which is what a Lambda artifact built with
`pip install --no-compile` gets on every cold start (/var/task is read-only, nothing is cached).
The sample's user has phone numbers, so libphonenumber is imported in the measured request; the same
batch without them is measured too, and a probe checks in a fresh interpreter that it does not import
libphonenumber (README, "Match keys": it is loaded only for a batch with a phone).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import workload
from bench.harness import QUIET_ENV, Row, function_env
from bench.responder import Responder, success_body

TARGET = 1.3
ROOT = Path(__file__).resolve().parent.parent

OURS = """
import json, sys
from handler.app import lambda_handler

class Context:
    function_name = "ForwarderFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ForwarderFunction"
    aws_request_id = "cold-start"

    def get_remaining_time_in_millis(self):
        return 25000

with open(sys.argv[1]) as file:
    event = json.load(file)
response = lambda_handler(event, Context())
assert response["statusCode"] == 200, response
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as file:
        json.dump({"phone_library_imported": "phonenumbers" in sys.modules}, file)
"""
FLOOR = """
import json, os, boto3, requests
secret = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["SECRET_ID"])["SecretString"]
url = os.environ["FACEBOOK_GRAPH_URL"] + "/v26.0/" + os.environ["OFFLINE_EVENT_SET_ID"] + "/events"
body = {"access_token": json.loads(secret)["access_token"], "data": [{"event_name": "Purchase"}]}
requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=5).raise_for_status()
"""


def _run(code: str, env: dict[str, str], *args: str, pycache: str | None = None) -> float:
    flags = ["-X", f"pycache_prefix={pycache}"] if pycache else []
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *flags, "-c", code, *args],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def import_offenders(env: dict[str, str], top: int = 10) -> list[tuple[str, float]]:
    """`python -X importtime -c 'import handler.app'`: self time summed per top-level package, in ms."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import handler.app"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    packages: dict[str, float] = {}
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or not fields[0].strip().isdigit():
            continue
        package = fields[2].strip().split(".")[0]
        packages[package] = packages.get(package, 0.0) + int(fields[0]) / 1000
    return sorted(packages.items(), key=lambda item: item[1], reverse=True)[:top]


def _phone_library_imported(env: dict[str, str], event_file: Path, scratch: str) -> bool:
    """Whether serving this event in a fresh interpreter imported libphonenumber."""
    out = Path(scratch) / "modules.json"
    _run(OURS, env, str(event_file), str(out))
    return bool(json.loads(out.read_text())["phone_library_imported"])


def measure(aws_env: dict[str, str], runs: int) -> dict[str, object]:
    batch = workload.batch(1)
    event = workload.api_event(batch)
    with Responder(success_body(1)) as server, tempfile.TemporaryDirectory() as scratch:
        event_file = Path(scratch) / "event.json"
        event_file.write_text(json.dumps(event))
        no_phone_file = Path(scratch) / "event-without-phones.json"
        no_phone_file.write_text(json.dumps(workload.api_event(workload.without_phones(batch))))
        env = {**os.environ, **QUIET_ENV, **function_env(aws_env, server.url, "offline_conversions")}
        env["PYTHONPATH"] = str(ROOT)
        # The artifact ships our modules compiled (Makefile), as pip compiled the floor's libraries: a shell's
        # PYTHONDONTWRITEBYTECODE would have every run compile ours from source and the floor's not.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _run(OURS, env, str(event_file))  # fill the OS page cache and bytecode caches for both
        _run(FLOOR, env)
        imported = {
            "with phones": _phone_library_imported(env, event_file, scratch),
            "without phones": _phone_library_imported(env, no_phone_file, scratch),
        }
        ours, floor, no_phone = [], [], []
        for _ in range(runs):
            ours.append(_run(OURS, env, str(event_file)))
            floor.append(_run(FLOOR, env))
            no_phone.append(_run(OURS, env, str(no_phone_file)))
        uncached_ours, uncached_floor = [], []
        for index in range(max(1, runs // 3)):
            uncached_ours.append(_run(OURS, env, str(event_file), pycache=f"{scratch}/ours{index}"))
            uncached_floor.append(_run(FLOOR, env, pycache=f"{scratch}/floor{index}"))
        offenders = import_offenders(env)
    return {
        "ours_ms": statistics.median(ours) * 1000,
        "floor_ms": statistics.median(floor) * 1000,
        "uncached_ours_ms": statistics.median(uncached_ours) * 1000,
        "uncached_floor_ms": statistics.median(uncached_floor) * 1000,
        "offenders": offenders,
        "runs": runs,
        "without_phones_ms": statistics.median(no_phone) * 1000,
        "phone_library_imported": imported,
    }


def row(result: dict[str, object]) -> Row:
    ours, floor = float(result["ours_ms"]), float(result["floor_ms"])  # type: ignore[arg-type]
    ratio = ours / floor
    offenders = ", ".join(f"{name} {ms:.0f} ms" for name, ms in result["offenders"])  # type: ignore[attr-defined]
    uncached_ours, uncached_floor = float(result["uncached_ours_ms"]), float(result["uncached_floor_ms"])  # type: ignore[arg-type]
    no_phone = float(result["without_phones_ms"])  # type: ignore[arg-type]
    imported: dict[str, bool] = result["phone_library_imported"]  # type: ignore[assignment]
    return Row(
        metric="3. Cold start: fresh interpreter, import handler + one request",
        measured=f"{ours:.0f} ms (median of {result['runs']})",
        reference=f"import boto3 + requests, one secret read, one POST: {floor:.0f} ms",
        ratio=f"{ratio:.2f}x floor",
        target=f"<= {TARGET}x",
        met=ratio <= TARGET,
        notes=[
            f"`python -X importtime -c 'import handler.app'`, self time per package: {offenders}.",
            f"Without bytecode caches (every module compiled at import, as on Lambda for an artifact built "
            f"with `pip install --no-compile`, since /var/task is read-only): ours {uncached_ours:.0f} ms, floor "
            f"{uncached_floor:.0f} ms ({uncached_ours / uncached_floor:.2f}x); an upper bound, as here the "
            f"standard library is compiled too, which the Lambda runtime ships compiled.",
            f"libphonenumber imported for the sample batch (two phone numbers): "
            f"{'yes' if imported['with phones'] else 'no'}; for the same batch without phones: "
            f"{'yes' if imported['without phones'] else 'no'}. Cold start of the batch without phones: "
            f"{no_phone:.0f} ms ({no_phone / floor:.2f}x floor).",
        ],
    )
