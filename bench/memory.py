"""Measurement 4: peak memory of a fresh process serving the worst bodies inside the limits.

Each body pushes one of the handler's limits (README, "Skipped events") as far as it is accepted,
within the 6 MiB body limit, on both APIs: the most tiny products a batch may hold, the most events,
the most custom attributes, the longest texts, and bodies full of what the forwarder ignores (empty
objects, nested arrays, one-character strings), besides the largest batch of sample events. Bodies
are measured up to the handler's own limit even where Lambda's 6 MB invoke payload (the body escaped
inside the API Gateway event) would refuse them first: the handler must not rely on it.

The child reads the API Gateway event like the runtime does (bytes, then a dict, both kept alive
during the call), invokes the handler and reports VmHWM from /proc/self/status, which is what
Lambda's "Max Memory Used" measures. The servers run in this (parent) process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import workload
from bench.harness import QUIET_ENV, Row, function_env
from bench.responder import Responder
from forwarder.batch import (
    CONTAINERS_COUNTED_ABOVE_BYTES,
    MAX_CONTAINERS,
    MAX_EVENTS_PER_BATCH,
    MAX_PRODUCTS_PER_BATCH,
)
from forwarder.limits import MAX_ATTRIBUTES_PER_EVENT, MAX_PRODUCTS_PER_EVENT, MAX_TEXT_LENGTH
from handler.app import MAX_BODY_BYTES

FUNCTION_MB = 256  # template.yaml, FunctionMemorySize
TARGET_MB = 0.8 * FUNCTION_MB  # at least a fifth of the function's memory left for what varies
ROOT = Path(__file__).resolve().parent.parent
APIS = ("offline_conversions", "conversions_api")

CHILD = """
import json, sys

def status():
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")}

from handler.app import lambda_handler

class Context:
    function_name = "ForwarderFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ForwarderFunction"
    aws_request_id = "memory"

    def get_remaining_time_in_millis(self):
        return 25000

after_import = status()
with open(sys.argv[1], "rb") as file:
    payload = file.read()
event = json.loads(payload)
response = lambda_handler(event, Context())
assert response["statusCode"] == 200, response["body"][:500]
print(json.dumps({"after_import": after_import, "after_request": status(), "body": json.loads(response["body"])}))
"""


@dataclass(frozen=True)
class Body:
    """One worst body: its name, what it holds, and its API Gateway event."""

    name: str
    holds: str
    event: Callable[[], dict[str, Any]]


def _batch(events: list[str], extra: str = "") -> str:
    """A compact batch for the sample's user; events and any extra top-level fields are JSON text."""
    fields = workload.batch(0)
    del fields["events"]
    head = json.dumps(fields, separators=(",", ":"))[:-1]
    return f'{head}{extra},"events":[{",".join(events)}]}}'


def _event(products: Sequence[str] = (), attributes: Sequence[str] = (), order_id: str = "") -> str:
    """An add_to_cart commerce event (dated by its batch), products and attributes as JSON text."""
    action = f'"action":"add_to_cart","products":[{",".join(products)}]'
    if order_id:
        action += f',"transaction_id":"{order_id}"'
    data = f'"product_action":{{{action}}}'
    if attributes:
        data += f',"custom_attributes":{{{",".join(attributes)}}}'
    return f'{{"event_type":"commerce_event","data":{{{data}}}}}'


def _largest(build: Callable[[int], str], high: int, limit: int = MAX_BODY_BYTES) -> str:
    """build(n) for the largest n <= high whose body fits `limit` bytes (bodies here are ASCII).

    Sizes grow about linearly with n, so two small builds bound the search before any big one."""
    one, two = len(build(1)), len(build(2))
    high = min(high, 2 * (limit - one) // max(1, two - one) + 2)
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(build(middle)) <= limit else (low, middle - 1)
    return build(low)


def _names(count: int, start: int = 0) -> list[str]:
    """Distinct short attribute names: orjson caches repeated keys, so distinct ones cost the most."""
    return [f'"{index:x}":1' for index in range(start, start + count)]


_TINY_PRODUCT = '{"id":"1"}'  # kept as a content: the most memory per body byte a product can take
_NESTED = "[" * 32 + "]" * 32  # the most memory per body byte: about 90 bytes for every 2
_SHORT_STRING = '"a"'  # the most memory per body byte of anything not an object or array


def _tiny_product_events() -> list[str]:
    """As many products as a batch may hold, a full event's worth per event."""
    return [_event([_TINY_PRODUCT] * MAX_PRODUCTS_PER_EVENT)] * (MAX_PRODUCTS_PER_BATCH // MAX_PRODUCTS_PER_EVENT)


def most_events() -> str:
    """The most events a batch may hold, each with as many distinct attributes as fit the body."""

    def build(per_event: int) -> str:
        return _batch([_event(attributes=_names(per_event, i * per_event)) for i in range(MAX_EVENTS_PER_BATCH)])

    return _largest(build, MAX_ATTRIBUTES_PER_EVENT)


def most_attributes() -> str:
    """Events with the most distinct custom attributes an event may hold, as many as fit."""
    per_event = MAX_ATTRIBUTES_PER_EVENT
    return _largest(
        lambda events: _batch([_event(attributes=_names(per_event, i * per_event)) for i in range(events)]),
        MAX_EVENTS_PER_BATCH,
    )


def long_texts(products_per_event: int, attributes_per_event: int) -> str:
    """Events whose every text is at the length limit (ids, brands, categories, order id, attributes)."""
    text = "x" * MAX_TEXT_LENGTH
    product = f'{{"id":"{text}","brand":"{text}","category":"{text}","price":1.5}}'

    def event(index: int) -> str:
        names = [f'"{index:x}-{i:x}{text[: MAX_TEXT_LENGTH - 12]}":"{text}"' for i in range(attributes_per_event)]
        return _event([product] * products_per_event, names, order_id=text)

    return _largest(lambda events: _batch([event(i) for i in range(events)]), MAX_EVENTS_PER_BATCH)


def uncounted(unit: str) -> str:
    """One forwardable event and an unknown field of `unit` filling the largest body whose objects and
    arrays are not counted (batch.CONTAINERS_COUNTED_ABOVE_BYTES)."""
    event = _event([_TINY_PRODUCT])
    return _largest(
        lambda count: _batch([event], f',"ignored":[{",".join([unit] * count)}]'),
        MAX_BODY_BYTES,
        CONTAINERS_COUNTED_ABOVE_BYTES,
    )


def counted(events: list[str]) -> str:
    """The events, then an unknown field of nested arrays up to MAX_CONTAINERS objects and arrays in
    all, then short strings up to the body limit."""
    base = _batch(events, ',"ignored":[]')
    nested = (MAX_CONTAINERS - base.count("{") - base.count("[")) // _NESTED.count("[")
    head = ",".join([_NESTED] * nested)
    return _largest(
        lambda count: _batch(events, f',"ignored":[{head},{",".join([_SHORT_STRING] * count)}]'),
        MAX_BODY_BYTES,
    )


def user_maps() -> str:
    """One event, and user identities and attributes of distinct short non-ASCII names filling the body
    (their entries past batch.MAX_USER_ENTRIES are parsed but never read)."""
    event = _event([_TINY_PRODUCT])

    def build(count: int) -> str:
        half = count // 2
        identities = ",".join(f'"\\u00e9{i:x}":"v"' for i in range(half))
        attributes = ",".join(f'"\\u00e8{i:x}":"v"' for i in range(count - half))
        return _batch([event], f',"user_identities":{{{identities}}},"user_attributes":{{{attributes}}}')

    return _largest(build, MAX_BODY_BYTES)


def _api_event(body: Callable[[], str]) -> Callable[[], dict[str, Any]]:
    return lambda: workload.api_event(body())


def worst_bodies() -> list[Body]:
    """The bodies measured, each at the limits the handler enforces today."""
    products = f"{MAX_PRODUCTS_PER_BATCH:,} one-field products ({MAX_PRODUCTS_PER_EVENT} per event)"
    containers = f'arrays nested 32 deep up to {MAX_CONTAINERS:,} objects and arrays, then `"a"` to the body limit'
    uncounted_mb = CONTAINERS_COUNTED_ABOVE_BYTES / 2**20
    return [
        Body("tiny products", products, _api_event(lambda: _batch(_tiny_product_events()))),
        Body(
            "most events",
            f"{MAX_EVENTS_PER_BATCH:,} events with distinct custom attributes filling the body",
            _api_event(most_events),
        ),
        Body(
            "most attributes",
            f"events of {MAX_ATTRIBUTES_PER_EVENT} distinct custom attributes filling the body",
            _api_event(most_attributes),
        ),
        Body(
            "long texts",
            f"events of 50 products and 20 attributes whose texts are all {MAX_TEXT_LENGTH} characters",
            _api_event(lambda: long_texts(50, 20)),
        ),
        Body(
            "empty objects",
            f"an unknown field of `{{}}` filling {uncounted_mb:g} MiB (not counted up to there)",
            _api_event(lambda: uncounted("{}")),
        ),
        Body(
            "nested arrays",
            f"an unknown field of arrays nested 32 deep filling {uncounted_mb:g} MiB",
            _api_event(lambda: uncounted(_NESTED)),
        ),
        Body(
            "nested arrays and strings",
            f"one event, an unknown field of {containers}",
            _api_event(lambda: counted([_event([_TINY_PRODUCT])])),
        ),
        Body(
            "user maps",
            "user identities and attributes of distinct short names filling the body",
            _api_event(user_maps),
        ),
        Body(
            "all at once",
            f"{products}, then an unknown field of {containers}",
            _api_event(lambda: counted(_tiny_product_events())),
        ),
        Body(
            "sample events",
            "the most sample events (workload.py) whose API Gateway event fits Lambda's 6 MB invoke payload",
            lambda: workload.largest_event()[0],
        ),
        Body(
            "sample events, base64",
            "the same, base64-encoded",
            lambda: workload.largest_event(base64_body=True)[0],
        ),
    ]


def _run_child(event_file: Path, env: dict[str, str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(event_file)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(aws_env: dict[str, str]) -> list[dict[str, Any]]:
    """VmHWM of a fresh process per body and API; raises if a body is not answered 200."""
    results = []
    with Responder() as server, tempfile.TemporaryDirectory() as scratch:
        for body in worst_bodies():
            event = body.event()
            event_file = Path(scratch) / "event.json"
            event_file.write_text(json.dumps(event))
            for api in APIS:
                env = {**os.environ, **QUIET_ENV, **function_env(aws_env, server.url, api), "PYTHONPATH": str(ROOT)}
                child = _run_child(event_file, env)
                answer = child["body"]
                results.append(
                    {
                        "name": body.name,
                        "holds": body.holds,
                        "api": api,
                        "body_mb": len(event["body"]) / 2**20,
                        "payload_mb": event_file.stat().st_size / 2**20,
                        "import_mb": child["after_import"]["VmHWM"],
                        "peak_mb": child["after_request"]["VmHWM"],
                        "received": answer["received"],
                        "forwarded": answer["forwarded"],
                        "skipped": answer["skipped"],
                    }
                )
    return results


def _notes(results: list[dict[str, Any]]) -> list[str]:
    """One line per body: what it holds, what became of its events, and its peak on each API."""
    notes = []
    for name in dict.fromkeys(result["name"] for result in results):
        runs = [result for result in results if result["name"] == name]
        first = runs[0]
        skipped = ", ".join(f"{count:,} {reason}" for reason, count in first["skipped"].items())
        peaks = ", ".join(f"{run['api']} {run['peak_mb']:.1f} MB" for run in runs)
        notes.append(
            f"{name}: {first['holds']}; body {first['body_mb']:.2f} MB ({first['payload_mb']:.2f} MB invoke "
            f"payload), {first['received']:,} events, {first['forwarded']:,} forwarded"
            f"{f', skipped {skipped}' if skipped else ''}; peak {peaks}."
        )
    imports = max(result["import_mb"] for result in results)
    notes.append(
        f"Peak memory includes {imports:.1f} MB after imports, and the invoke payload, the event and the body's "
        "bytes (three copies of the body) held during the call, as in Lambda. Bodies whose invoke payload is over "
        "6 MB could not reach the function through API Gateway; they are measured anyway, up to the handler's limit."
    )
    return notes


def row(results: list[dict[str, Any]]) -> Row:
    worst = max(results, key=lambda result: result["peak_mb"])
    peak = worst["peak_mb"]
    return Row(
        metric="4. Peak memory, worst bodies inside the limits (fresh process, both APIs)",
        measured=f"VmHWM {peak:.1f} MB, worst: {worst['name']} ({worst['api']}, body {worst['body_mb']:.2f} MB)",
        reference=f"function memory: {FUNCTION_MB} MB",
        ratio=f"{peak / FUNCTION_MB:.2f}x of {FUNCTION_MB} MB",
        target=f"< {TARGET_MB:.0f} MB (0.8x)",
        met=peak < TARGET_MB,
        notes=_notes(results),
    )
