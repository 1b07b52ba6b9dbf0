"""Measurement 10: the backfill (`python -m forwarder.backfill`) over CSV files of 100,000 and 1,000,000 rows
in the columns of Meta's offline event uploads, generated in a temporary directory.

Rows per second of the whole command (read, map, render, send in requests of 1000 to the local responder,
report, checkpoint) against the webhook's events per second on the same machine (measurement 1's method:
the full handler, a 2000-event batch, here on the Conversions API the backfill sends to); and the peak
memory (VmHWM) of each run, which must not grow with the file. Each run is a fresh interpreter; moto and the
responder stay in this process.

The webhook's batch holds one user, whose match keys are hashed once for all its events; every CSV row is a
customer of its own. The same per-customer work is measured too: the webhook's own mapping and rendering
(`webhook.prepare`) of one-event batches made of the same rows.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import QUIET_ENV, Row, function_env
from bench.responder import Responder, success_body

ROWS = 1_000_000
SMALL = 100_000
SAME_WORK_ROWS = 20_000
TARGET_RATIO = 0.8
MEMORY_SLACK_MB = 20.0
ROOT = Path(__file__).resolve().parent.parent
HEADER = ["event_name", "event_time", "value", "currency", "order_id", "email", "phone", "fn", "ln", "ct", "st",
          "zip", "country", "external_id"]  # fmt: skip
_NAMES = ("Purchase", "Purchase", "Purchase", "AddToCart", "Lead")
_CITIES = (("San Francisco", "CA", "94107"), ("Austin", "TX", "78701"), ("New York", "NY", "10001"))

CHILD = """
import json, sys, time

def peak_mb():
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file)
    return int(fields["VmHWM"].split()[0]) / 1024

import contextlib, io
from forwarder.backfill.__main__ import main

started = time.perf_counter()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main([sys.argv[1], "--report", sys.argv[2]])
seconds = time.perf_counter() - started
summary = json.loads(out.getvalue())
print(json.dumps({"status": status, "seconds": seconds, "peak_mb": peak_mb(), "summary": summary}))
"""

SAME_WORK = """
import csv, json, sys, time
from forwarder.batch import read_batch
from forwarder.settings import load_settings
from forwarder.webhook import prepare

settings = load_settings()
with open(sys.argv[1], newline="") as file:
    reader = csv.DictReader(file)
    rows = [row for _, row in zip(range(int(sys.argv[2])), reader)]
bodies = []
for row in rows:
    identities = [{"identity_type": "email", "identity": row["email"]},
                  {"identity_type": "mobile_number", "identity": row["phone"]},
                  {"identity_type": "customer_id", "identity": row["external_id"]}]
    attributes = {"$firstname": row["fn"], "$lastname": row["ln"], "$city": row["ct"], "$state": row["st"],
                  "$zip": row["zip"], "$country": row["country"]}
    data = {"timestamp_unixtime_ms": int(row["event_time"]) * 1000, "source_message_id": row["order_id"],
            "currency_code": row["currency"],
            "product_action": {"action": "purchase", "total_amount": row["value"], "transaction_id": row["order_id"]}}
    bodies.append({"user_identities": identities, "user_attributes": attributes,
                   "events": [{"event_type": "commerce_event", "data": data}]})
now = time.time()
started = time.perf_counter()
for body in bodies:
    prepare(read_batch(body), settings, now)
print(json.dumps({"seconds": time.perf_counter() - started, "events": len(bodies)}))
"""


def write_csv(path: Path, rows: int, now: int) -> None:
    """`rows` recent conversions of distinct customers, every key column filled as a store's export would."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for index in range(rows):
            city, state, zip_code = _CITIES[index % len(_CITIES)]
            phone = f"+1 415 {200 + index // 10_000 % 800:03d} {index % 10_000:04d}"
            writer.writerow([
                _NAMES[index % len(_NAMES)], now - 3600 - index % 86_400, f"{index % 200 + 1}.99", "USD",
                f"order-{index}", f"customer{index}@example.com", phone,
                f"First{index % 5000}", f"Last{index % 7000}", city, state, zip_code, "US", f"cust-{index}",
            ])  # fmt: skip


def _child(script: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(aws_env: dict[str, str], webhook: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Both runs; the webhook's reference (`webhook()`: measurement 1's child on the Conversions API, returning
    handler_ms and events) and the same-work mapping, each taken just before and just after the long run, so
    that drift in the machine's load hits the two sides alike."""
    now = int(time.time())
    results: dict[str, Any] = {"webhook": [], "same_work": []}
    with tempfile.TemporaryDirectory() as scratch, Responder(success_body(1000)) as server:
        env = {**function_env(aws_env, server.url, "conversions_api"), **QUIET_ENV}
        small = Path(scratch) / f"sales-{SMALL}.csv"
        write_csv(small, SMALL, now)

        def references() -> None:
            results["same_work"].append(_child(SAME_WORK, [str(small), str(SAME_WORK_ROWS)], env))
            results["webhook"].append(webhook())

        for rows in (SMALL, ROWS):
            source = Path(scratch) / f"sales-{rows}.csv"
            if not source.exists():
                write_csv(source, rows, now)
            if rows == ROWS:
                references()
            run = _child(CHILD, [str(source), str(Path(scratch) / f"report-{rows}.jsonl")], env)
            run["bytes"] = source.stat().st_size
            results[str(rows)] = run
        references()
        results["requests"] = server.requests
    return results


def _rate(runs: list[dict[str, Any]], events: str, seconds: str, scale: float = 1.0) -> float:
    """The mean rate of the runs before and after the long one."""
    return sum(run[events] / run[seconds] * scale for run in runs) / len(runs)


def row(result: dict[str, Any]) -> Row:
    big, small = result[str(ROWS)], result[str(SMALL)]
    rate = big["summary"]["rows"] / big["seconds"]
    reference = _rate(result["webhook"], "events", "handler_ms", 1000)
    same_rate = _rate(result["same_work"], "events", "seconds")
    ratio, same_ratio = rate / reference, rate / same_rate
    growth = big["peak_mb"] - small["peak_mb"]
    row = Row(
        metric=f"10. Backfill: a {ROWS:,}-row CSV (Meta's offline upload columns, every key, a customer per row), "
        f"the whole command; peak memory at {SMALL:,} and {ROWS:,} rows",
        measured=f"{rate:,.0f} rows/s ({big['seconds']:.0f} s); peak {small['peak_mb']:.1f} MB and "
        f"{big['peak_mb']:.1f} MB",
        reference=f"webhook {reference:,.0f} events/s (2000-event batch of one user, Conversions API); its mapping "
        f"of one-event batches of the same customers {same_rate:,.0f} events/s",
        ratio=f"{ratio:.2f}x the webhook ({same_ratio:.2f}x its mapping of the same customers); memory "
        f"{growth:+.1f} MB",
        target=f">= {TARGET_RATIO}x; memory +<= {MEMORY_SLACK_MB:.0f} MB",
        met=ratio >= TARGET_RATIO and growth <= MEMORY_SLACK_MB,
    )
    row.notes += [
        f"Row 10: {big['summary']['forwarded']:,} of {big['summary']['rows']:,} rows forwarded; "
        f"{result['requests']:,} requests of up to 1000 events over both runs (the responder answers at once); "
        f"the file was {big['bytes'] / 1e6:.0f} MB; {small['summary']['rows'] / small['seconds']:,.0f} rows/s at "
        f"{SMALL:,} rows. The references are the means of runs just before and just after the long one.",
        "Row 10: a webhook batch holds one user, whose match keys (a phone number parsed by libphonenumber, each "
        "value normalised and SHA-256 hashed) cost once for all its 2000 events; every CSV row is a customer of its "
        "own, so most of a row's time is its keys. The second reference is that same work done by the webhook's "
        f"own mapping and rendering (`webhook.prepare` of {SAME_WORK_ROWS:,} one-event batches made of the same "
        "rows, without their HTTP round trips).",
    ]
    return row
