"""`make -s event NAME=…`: the documented way to feed `sam local invoke` works on any date.

The files in events/ keep their recorded dates (November 2025); what `python -m localdev.samples` prints
must be dated now, so the real handler forwards its events instead of skipping them as `too_old`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import api_event

ROOT = Path(__file__).resolve().parents[2]
FORWARDABLE = ["purchase", "add_to_cart", "view_detail", "outbound_identities", "inbound_identities", "base64_purchase"]


def printed(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - this interpreter, our module
        [sys.executable, "-m", "localdev.samples", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def stamps(node: object) -> list[int]:
    if isinstance(node, dict):
        own = [value for key, value in node.items() if key == "timestamp_unixtime_ms"]
        return own + [stamp for value in node.values() for stamp in stamps(value)]
    if isinstance(node, list):
        return [stamp for value in node for stamp in stamps(value)]
    return []


@pytest.mark.parametrize("name", FORWARDABLE)
def test_a_printed_sample_is_dated_now_and_forwarded(name, aws, function_env, invoke, graph):
    function_env(FACEBOOK_API="conversions_api")
    raw = json.loads((ROOT / "events" / f"{name}.json").read_text())
    event = json.loads(printed(name))
    assert {key: value for key, value in event.items() if key != "body"} == {
        key: value for key, value in raw.items() if key != "body"
    }
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"]
    now_ms = time.time() * 1000
    events = json.loads(body)["events"]  # (identities keep their older creation dates, shifted alike)
    assert all(now_ms - 62 * 86_400_000 < stamp <= now_ms for stamp in stamps(events))
    answer = invoke(event)
    assert answer.status == 200
    assert answer.body["forwarded"] >= 1 and "too_old" not in answer.body["skipped"]


def test_the_body_alone_is_the_batch_for_curl(aws, function_env, invoke, graph):
    batch = json.loads(printed("base64_purchase", "--body"))
    assert isinstance(batch["events"], list)
    assert invoke(api_event(batch)).body["forwarded"] == 1


@pytest.mark.parametrize("name", ["purchase", "base64_purchase"])
def test_a_development_sample_reaches_test_events_only(name, aws, function_env, invoke, graph):
    """docs/deploy.md, step 5: what is sent to see an event arrive under Events Manager's Test events."""
    function_env(FACEBOOK_API="conversions_api", TEST_EVENT_CODE="TEST12345")
    batch = json.loads(printed(name, "--body", "--development"))
    assert batch["environment"] == "development"
    assert invoke(api_event(batch)).body["forwarded"] == 1
    assert graph.received[-1].body["test_event_code"] == "TEST12345"
    assert invoke(api_event(json.loads(printed(name, "--body")))).body["forwarded"] == 1
    assert "test_event_code" not in graph.received[-1].body  # the sample as recorded is production


def test_a_raw_sample_would_be_skipped_as_too_old(aws, function_env, invoke, graph):
    """Why the rebasing exists: the file as recorded is too old for Facebook."""
    answer = invoke(json.loads((ROOT / "events" / "purchase.json").read_text()))
    assert answer.status == 200 and answer.body["skipped"] == {"too_old": 1}


def test_an_unknown_sample_names_the_ones_there_are():
    done = subprocess.run(
        [sys.executable, "-m", "localdev.samples", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "purchase" in done.stderr
