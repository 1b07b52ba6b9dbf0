"""`make run ARGS=--backfill`: the backfill tried locally, as a new user would, in a process of its own (the
command starts its own moto server and Graph stand-in)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def sections(stdout: str) -> dict[str, Any]:
    """The command's `== title` blocks, each title's JSON."""
    found = {}
    for block in stdout.split("\n== ")[1:]:
        title, _, payload = block.partition("\n")
        found[title] = json.loads(payload)
    return found


def test_the_local_backfill_sends_the_sample_sales_and_reports_each_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "localdev.run", "--backfill"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = sections(done.stdout)
    summary = next(value for title, value in found.items() if title.startswith("python -m forwarder.backfill"))
    report = found["its report, a line per row"]
    events = next(value for title, value in found.items() if title.startswith("the Graph API stand-in received"))
    # Meta takes events up to 62 days old; a row with no key to match its customer by is worth nothing to Meta.
    assert summary["rows"] == 6 and summary["forwarded"] == 4
    assert summary["events"]["skipped"] == {"too_old": 1, "no_match_key": 1}
    assert [(line["row"], line["status"], line["reason"]) for line in report][4:] == [
        (6, "skipped", "too_old"),
        (7, "skipped", "no_match_key"),
    ]
    assert [event["event_name"] for event in events] == ["Purchase", "Purchase", "AddToCart", "Lead"]
    # Meta's rule for em: trimmed, lower case, then SHA-256 hex; nothing raw reaches the stand-in or the output.
    assert events[0]["user_data"]["em"] == hashlib.sha256(b"anna.muller@example.com").hexdigest()
    assert "example.com" not in done.stdout and "555-1212" not in done.stdout and "Müller" not in done.stdout
