"""Measurement 1: a 2000-event batch through the whole handler, against its floor (docs/performance.md).

The floor is the work a plain implementation cannot avoid, done on the same body in the same run:
stdlib `json.loads` of the body, one SHA-256 per distinct match-key value, stdlib `json.dumps` of
the payload the handler sends (the rendered events) and one POST of it with requests to the same
server. The handler's number includes Powertools' resolver, logger and metrics decorators.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import requests

from bench import workload
from bench.harness import Function, Row, interleaved, median_ms
from bench.responder import success_body
from forwarder.batch import read_batch
from forwarder.mapping import map_batch
from forwarder.render import render_events
from forwarder.settings import load_settings
from localdev.aws import ACCESS_TOKEN

EVENTS = 2000
TARGET = 0.8


def sent_payload(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and body the handler POSTs for this event (single request), built by the forwarder."""
    settings = load_settings()
    mapped = map_batch(read_batch(json.loads(event["body"])), settings, time.time())
    events, _ = render_events(mapped, settings)
    [destination] = settings.destinations("Purchase")
    url = settings.graph_url + destination.events_path
    return url, {"access_token": ACCESS_TOKEN, **destination.request_fields(), "data": events}


class Floor:
    """The plain implementation's unavoidable work, with a keep-alive session like ours."""

    def __init__(self, event: dict[str, Any], batch: dict[str, Any]) -> None:
        self.body = event["body"]
        self.keys = workload.match_key_values(batch)
        self.url, self.payload = sent_payload(event)
        self.session = requests.Session()

    def __call__(self) -> None:
        json.loads(self.body)
        for value in self.keys:
            hashlib.sha256(value.encode()).hexdigest()
        response = self.session.post(
            self.url, data=json.dumps(self.payload).encode(), headers={"Content-Type": "application/json"}, timeout=10
        )
        response.raise_for_status()


def answer(api: str, events: int = EVENTS) -> bytes:
    """The responder's fixed answer: Facebook's count for a full request of this batch."""
    return success_body(min(events, 2000 if api == "offline_conversions" else 1000))


def measure(function: Function, graph_url: str, api: str, repeat: int, events: int = EVENTS) -> dict[str, float]:
    """Median milliseconds of the handler and of the floor, interleaved, against `graph_url`."""
    batch = workload.batch(events)
    event = workload.api_event(batch)
    function.configure(graph_url, api)
    floor = Floor(event, batch)
    function.invoke(event)  # warm: secret cached, connection open
    floor()
    times = interleaved({"handler": lambda: function.invoke(event), "floor": floor}, repeat)
    return {
        "handler_ms": median_ms(times["handler"]),
        "handler_best_ms": min(times["handler"]) * 1000,
        "floor_ms": median_ms(times["floor"]),
        "floor_best_ms": min(times["floor"]) * 1000,
        "events": events,
    }


def row(result: dict[str, float]) -> Row:
    events = result["events"]
    ratio = result["handler_ms"] / result["floor_ms"]
    return Row(
        metric=f"1. Throughput, {events:.0f}-event batch, full handler (Offline Conversions)",
        measured=f"{result['handler_ms']:.1f} ms = {events / result['handler_ms'] * 1000:,.0f} events/s "
        f"(best {result['handler_best_ms']:.1f} ms)",
        reference=f"floor {result['floor_ms']:.1f} ms = {events / result['floor_ms'] * 1000:,.0f} events/s "
        f"(best {result['floor_best_ms']:.1f} ms)",
        ratio=f"{ratio:.2f}x floor time",
        target=f"<= {TARGET}x",
        met=ratio <= TARGET,
    )
