"""Measurement 4: peak memory of a fresh process serving the largest batch Lambda can deliver.

The API Gateway event is sized so that its JSON (the body escaped inside it) just fits Lambda's
6 MB invoke payload. The child reads it like the runtime does (bytes, then a dict, both kept
alive during the call), invokes the handler and reports VmHWM from /proc/self/status, which is
what Lambda's "Max Memory Used" measures. The servers run in this (parent) process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import workload
from bench.harness import QUIET_ENV, Row, function_env
from bench.responder import Responder

LIMIT_MB = 128
ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys

def status():
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")}

from handler.app import lambda_handler

class Context:
    function_name = "ForwarderFunction"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ForwarderFunction"
    aws_request_id = "memory"

    def get_remaining_time_in_millis(self):
        return 25000

after_import = status()
with open(sys.argv[1], "rb") as file:
    payload = file.read()
event = json.loads(payload)
response = lambda_handler(event, Context())
assert response["statusCode"] == 200, response["body"]
print(json.dumps({"after_import": after_import, "after_request": status(), "body": json.loads(response["body"])}))
"""

CASES = (
    ("JSON body", False, "offline_conversions"),
    ("JSON body", False, "conversions_api"),
    ("base64 body", True, "offline_conversions"),
)


def measure(aws_env: dict[str, str]) -> list[dict[str, object]]:
    results = []
    with Responder() as server, tempfile.TemporaryDirectory() as scratch:
        for label, base64_body, api in CASES:
            event, events = workload.largest_event(base64_body)
            event_file = Path(scratch) / "event.json"
            event_file.write_text(json.dumps(event))
            env = {**os.environ, **QUIET_ENV, **function_env(aws_env, server.url, api), "PYTHONPATH": str(ROOT)}
            before = server.requests
            output = subprocess.run(
                [sys.executable, "-c", CHILD, str(event_file)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            child = json.loads(output.strip().splitlines()[-1])
            results.append(
                {
                    "label": label,
                    "api": api,
                    "events": events,
                    "payload_mb": event_file.stat().st_size / 2**20,
                    "body_mb": len(event["body"]) / 2**20,
                    "import_mb": child["after_import"]["VmHWM"],
                    "peak_mb": child["after_request"]["VmHWM"],
                    "forwarded": child["body"]["forwarded"],
                    "requests": server.requests - before,
                }
            )
    return results


def row(results: list[dict[str, object]]) -> Row:
    worst = max(results, key=lambda result: float(result["peak_mb"]))  # type: ignore[arg-type]
    peak = float(worst["peak_mb"])  # type: ignore[arg-type]
    notes = [
        f"{r['label']}, {r['api']}: {r['events']} events, body {float(r['body_mb']):.2f} MB in a "  # type: ignore[arg-type]
        f"{float(r['payload_mb']):.2f} MB invoke payload; peak {float(r['peak_mb']):.1f} MB "  # type: ignore[arg-type]
        f"({float(r['import_mb']):.1f} MB after imports), {r['forwarded']} forwarded in {r['requests']} requests."  # type: ignore[arg-type]
        for r in results
    ]
    return Row(
        metric="4. Peak memory, largest batch (6 MB invoke payload), fresh process",
        measured=f"VmHWM {peak:.1f} MB ({worst['label']}, {worst['api']}, {worst['events']} events)",
        reference=f"smallest Lambda: {LIMIT_MB} MB",
        ratio=f"{peak / LIMIT_MB:.2f}x of {LIMIT_MB} MB",
        target=f"< {LIMIT_MB} MB",
        met=peak < LIMIT_MB,
        notes=notes,
    )
