"""Limits: a batch over them is refused with a 413 naming the limit; an event over them is skipped and counted.

Two kinds of fault are checked here, each on both APIs through the real handler:
- every event that is sent could be parked (one SQS message), and the ids that travel with every
  parked message and log line are bounded, so a rejected batch is never answered 503 for ever;
- the limits that bound the memory a body inside them can take (measured by `make bench`).
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import boto3
import orjson
import pytest

from forwarder import render
from forwarder.batch import (
    CONTAINERS_COUNTED_ABOVE_BYTES,
    MAX_CONTAINERS,
    MAX_EVENTS_PER_BATCH,
    MAX_ID_LENGTH,
    MAX_PRODUCTS_PER_BATCH,
    read_batch,
)
from forwarder.limits import MAX_ATTRIBUTES_PER_EVENT, MAX_PRODUCTS_PER_EVENT, MAX_TEXT_LENGTH
from forwarder.mapping import map_batch
from forwarder.render import MAX_EVENT_BYTES, render_events
from forwarder.settings import Settings, load_settings
from forwarder.telemetry import logger
from localdev.graph_stub import Fault
from tests.faulty_servers import parked_messages
from tests.support import NOW_MS, api_event, commerce_event, make_batch

SQS_MAX_MESSAGE_BYTES = 256 * 1024  # SQS's classic limit, which parking keeps under (UTF-8 bytes)
SMALL = 10_000  # bytes: more than any response or log line needs, far less than what a limit keeps out


def test_too_many_events_is_a_413_naming_the_limit(function_env, invoke, graph):
    events = [{"event_type": "custom_event"}] * (MAX_EVENTS_PER_BATCH + 1)
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 413
    assert str(MAX_EVENTS_PER_BATCH) in answer.body["error"]
    assert graph.received == []


def test_exactly_the_event_limit_is_accepted(function_env, invoke, graph):
    events = [{"event_type": "custom_event"}] * MAX_EVENTS_PER_BATCH
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == 200
    assert answer.body["skipped"] == {"unmapped_custom_event": MAX_EVENTS_PER_BATCH}


def products(count: int, **fields: object) -> list[dict]:
    return [{"id": f"sku-{i}", "price": 1.0, "quantity": 1, **fields} for i in range(count)]


def attributes(count: int, value: str = "x", name_length: int = 0) -> dict[str, str]:
    return {f"{i:04}".ljust(name_length, "n"): value for i in range(count)}


long_text = "x" * (MAX_TEXT_LENGTH + 1)
at_limit = "y" * MAX_TEXT_LENGTH


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (commerce_event("add_to_cart", products=products(MAX_PRODUCTS_PER_EVENT + 1)), "too_many_products"),
        (commerce_event("add_to_cart", products=[{"id": long_text, "price": 1.0}]), "value_too_long"),
        (commerce_event("add_to_cart", products=products(1, brand=long_text)), "value_too_long"),
        (commerce_event("add_to_cart", products=products(1, category=long_text)), "value_too_long"),
        (commerce_event("purchase", product_action={"transaction_id": long_text}), "value_too_long"),
        (commerce_event("add_to_cart", custom_attributes={"note": long_text}), "value_too_long"),
        (commerce_event("add_to_cart", custom_attributes={long_text: "x"}), "value_too_long"),
        (
            commerce_event("add_to_cart", custom_attributes=attributes(MAX_ATTRIBUTES_PER_EVENT + 1)),
            "too_many_attributes",
        ),
        # Every value within its own limit, together far more than one SQS message holds.
        (
            commerce_event("add_to_cart", products=[{"id": f"{i:04}" + at_limit[4:]} for i in range(1000)]),
            "event_too_large",
        ),
        (
            commerce_event("add_to_cart", custom_attributes=attributes(100, at_limit, MAX_TEXT_LENGTH)),
            "event_too_large",
        ),
    ],
    ids=[
        "products",
        "product id",
        "brand",
        "category",
        "order id",
        "attribute value",
        "attribute name",
        "attributes",
        "1000 products of 1000-character ids",
        "100 attributes of 1000-character names and values",
    ],
)
def test_an_event_over_a_limit_is_skipped_and_the_rest_forwarded(function_env, invoke, graph, api, event, reason):
    function_env(FACEBOOK_API=api)
    fine = commerce_event("view_detail", source_message_id="fine")
    answer = invoke(api_event(make_batch([event, fine])))
    assert answer.status == 200, answer.body
    assert answer.body["skipped"] == {reason: 1}
    assert answer.body["forwarded"] == 1
    assert len(graph.events) == 1


def commerce_of(event: dict[str, Any]) -> dict[str, Any]:
    """Where a sent event's value, contents and order id are: the event (Offline Conversions) or its custom_data."""
    return event if "match_keys" in event else event.get("custom_data", {})


def test_values_at_the_limits_are_forwarded(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    many = commerce_event("add_to_cart", products=products(MAX_PRODUCTS_PER_EVENT), source_message_id="many")
    longest = commerce_event(
        "purchase",
        products=products(10, brand=at_limit, category=at_limit),
        product_action={"transaction_id": at_limit},
        custom_attributes=attributes(MAX_ATTRIBUTES_PER_EVENT - 1) | {"n" * MAX_TEXT_LENGTH: at_limit},
        source_message_id="m" * MAX_TEXT_LENGTH,
    )
    answer = invoke(api_event(make_batch([many, longest])))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == 2
    sent_many, sent_longest = graph.events
    assert len(commerce_of(sent_many)["contents"]) == MAX_PRODUCTS_PER_EVENT
    assert commerce_of(sent_longest)["order_id"] == at_limit
    assert sent_longest["custom_data"]["n" * MAX_TEXT_LENGTH] == at_limit


# ---- kind 6: every event sent could be parked ---------------------------------------------------


def configured(api: str, **env: str) -> Settings:
    return load_settings(
        {"OFFLINE_EVENT_SET_ID": "1", "SECRET_ID": "s", "PARKING_QUEUE_URL": "https://q", "FACEBOOK_API": api, **env}
    )


ESCAPED = "\x01" * MAX_TEXT_LENGTH  # six bytes of JSON per character: the most a text can take
LARGEST_NUMBERS = [-1.7976931348623157e308, -(2**63), 2**31 - 1, False]


@pytest.mark.parametrize(
    "event",
    [
        commerce_event(
            "add_to_cart",
            products=[
                {
                    "id": ESCAPED,
                    "name": ESCAPED,
                    "brand": ESCAPED,
                    "category": ESCAPED,
                    "price": -1.7976931348623157e308,
                }
            ]
            * 3,
            product_action={"transaction_id": ESCAPED},
            source_message_id=ESCAPED,
        ),
        commerce_event("add_to_cart", products=[{"id": "1", "price": 1e-300, "quantity": 2**31 - 1}] * 1000),
        commerce_event(
            "add_to_cart",
            custom_attributes={f"{i:03}" + ESCAPED[3:]: ESCAPED for i in range(MAX_ATTRIBUTES_PER_EVENT)},
        ),
        commerce_event(
            "add_to_cart",
            custom_attributes={f"{i:03}": LARGEST_NUMBERS[i % 4] for i in range(MAX_ATTRIBUTES_PER_EVENT)},
        ),
        # One product: its name and category again as content_name and content_category, the id in
        # content_ids, num_items and delivery_category (Conversions API).
        commerce_event(
            "purchase",
            products=[{"id": ESCAPED, "name": ESCAPED, "brand": ESCAPED, "category": ESCAPED, "quantity": 2**31 - 1}],
            product_action={"transaction_id": ESCAPED, "total_amount": -1.7976931348623157e308 * -1},
            source_message_id=ESCAPED,
        ),
    ],
    ids=["escaped texts", "largest quantities", "escaped attributes", "longest numbers", "one escaped product"],
)
def test_the_cheap_size_bound_is_never_below_the_exact_size(monkeypatch, api, event):
    # The longest event name, every LDU field: what the bound counts as the fixed part at its largest.
    settings = configured(api, EVENT_NAME_OVERRIDES="add_to_cart=" + "A" * 100, SEND_CCPA_LIMITED_DATA_USE="always")
    with monkeypatch.context() as patch:
        patch.setattr(render, "MAX_EVENT_BYTES", sys.maxsize)
        mapped = map_batch(read_batch(make_batch([event])), settings, NOW_MS / 1000)
        [conversion] = mapped.conversions
        [rendered], _ = render_events(mapped, settings)
    keys = rendered["match_keys"] if api == "offline_conversions" else rendered["user_data"]
    exact = len(orjson.dumps(rendered)) - len(orjson.dumps(keys))  # keys are measured exactly, once per batch
    assert conversion.size + render._OTHER_BYTES >= exact


def rendered_bytes(event: dict[str, Any], api: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """The size of the event's JSON as the forwarder renders it for `api`, measured without the limit."""
    settings = configured(api)
    with monkeypatch.context() as patch:
        patch.setattr(render, "MAX_EVENT_BYTES", sys.maxsize)
        mapped = map_batch(read_batch(make_batch([event])), settings, NOW_MS / 1000)
        [rendered], _ = render_events(mapped, settings)
    return len(orjson.dumps(rendered))


def event_of(size: int, api: str, char: str, monkeypatch: pytest.MonkeyPatch, name: str = "big") -> dict[str, Any]:
    """An add_to_cart event whose rendering is exactly `size` bytes, its bulk in product ids of `char`.

    Each product renders to `,{"id":"…","quantity":1}`, and on the Conversions API its id again in
    `content_ids`: full ones first, then one whose id takes the bytes left (fewer than a full product's, so
    its id stays within limits), then the few bytes still missing as ASCII in a custom attribute.
    """
    per_char = len(orjson.dumps(char)) - 2  # bytes of one character inside a JSON string: 1 to 6
    copies = 2 if api == "conversions_api" else 1  # content_ids repeats every id
    tail = len(',{"id":"","quantity":1}') + (copies - 1) * len(',""')
    full = [{"id": char * MAX_TEXT_LENGTH} for _ in range(size // (copies * per_char * MAX_TEXT_LENGTH + tail))]
    event = commerce_event("add_to_cart", products=full, source_message_id=name)
    gap = size - rendered_bytes(event, api, monkeypatch) - tail
    if gap < 0:
        full.pop()
        gap = size - rendered_bytes(event, api, monkeypatch) - tail
    full.append({"id": char * max(1, gap // (copies * per_char))})
    event["data"]["custom_attributes"]["store"] += "s" * (size - rendered_bytes(event, api, monkeypatch))
    assert rendered_bytes(event, api, monkeypatch) == size
    return event


@pytest.mark.parametrize(
    ("extra", "char", "forwarded"),
    [
        (0, "\x01", True),  # escaped as \u0001: six bytes per character, the bound is exact
        (0, "x", True),  # the bound says six times too much: serialised to measure it
        (0, "€", True),  # three bytes of UTF-8
        (1, "\x01", False),
        (1, "x", False),
        (1, "€", False),
    ],
)
def test_an_event_is_sent_up_to_the_largest_that_could_be_parked(
    function_env, invoke, graph, api, monkeypatch, extra, char, forwarded
):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch([event_of(MAX_EVENT_BYTES + extra, api, char, monkeypatch)])))
    assert answer.status == 200, answer.body
    assert answer.body["forwarded"] == int(forwarded)
    assert answer.body["skipped"] == ({} if forwarded else {"event_too_large": 1})


@pytest.fixture
def classic_queue(aws: dict[str, str]) -> dict[str, str]:
    """The parking queue refusing messages over 256 KiB, SQS's limit before 2025 and what parking keeps
    under: moto's queues, like the template's, take 1 MiB, where a message too large would pass unseen."""
    sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1")
    attributes = {"MaximumMessageSize": str(SQS_MAX_MESSAGE_BYTES)}
    sqs.set_queue_attributes(QueueUrl=aws["PARKING_QUEUE_URL"], Attributes=attributes)
    return aws


def test_every_event_sent_could_be_parked(classic_queue, function_env, invoke, graph, monkeypatch, api):
    # The largest envelope too: ids at their limit and Meta's message (trimmed to 300 characters)
    # both made of characters JSON escapes in six bytes, and the longest upload tag.
    function_env(FACEBOOK_API=api, UPLOAD_TAG="\x01" * 256)
    graph.script(Fault.graph_error(100, error_subcode=33, message="\x01" * 1000))
    largest = [event_of(MAX_EVENT_BYTES, api, "\x01", monkeypatch, name=f"big-{i}") for i in range(3)]
    too_large = commerce_event("add_to_cart", products=[{"id": f"{i:04}" + at_limit[4:]} for i in range(1000)])
    ids = {"batch_id": "\x02" * MAX_ID_LENGTH, "source_request_id": "\x03" * MAX_ID_LENGTH}
    answer = invoke(api_event(make_batch([*largest, too_large, commerce_event()], **ids)))
    assert answer.status == 422, answer.body
    assert answer.body["skipped"] == {"event_too_large": 1}
    assert answer.body["parked"] == 4
    messages = parked_messages(classic_queue)
    parked = sorted(orjson.dumps(event) for message in messages for event in message["events"])
    assert parked == sorted(orjson.dumps(event) for event in graph.received[0].data)
    assert all(message["batch_id"] == ids["batch_id"] for message in messages)
    assert max(len(orjson.dumps(message)) for message in messages) <= SQS_MAX_MESSAGE_BYTES


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch):
    """The Powertools JSON log lines (its handler keeps the stdout it was created with, so capture it there)."""
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    return lambda: stream.getvalue().splitlines()


@pytest.mark.parametrize("field", ["batch_id", "source_request_id"])
@pytest.mark.parametrize(("length", "kept"), [(MAX_ID_LENGTH, True), (MAX_ID_LENGTH + 1, False), (1_100_000, False)])
def test_ids_that_travel_with_every_log_line_and_parked_message_are_bounded(
    classic_queue, function_env, invoke, graph, log_lines, api, field, length, kept
):
    function_env(FACEBOOK_API=api)
    graph.script(Fault.graph_error(100, error_subcode=33))
    value = "7" * length
    answer = invoke(api_event(make_batch(**{field: value})))
    assert answer.status == 422, answer.body
    assert answer.body["parked"] == 1
    assert len(json.dumps(answer.body)) < SMALL
    [message] = parked_messages(classic_queue)
    assert message[field] == (value if kept else None)
    lines = log_lines()
    assert max(len(line) for line in lines) < SMALL
    dropped = [json.loads(line) for line in lines if '"id too long, dropped"' in line]
    assert [(line["field"], line["length"]) for line in dropped] == ([] if kept else [(field, length)])


@pytest.mark.parametrize(("length", "kept"), [(MAX_ID_LENGTH, True), (MAX_ID_LENGTH + 1, False), (1_100_000, False)])
def test_an_overlong_advertising_id_is_dropped_not_sent_in_every_event(function_env, invoke, graph, api, length, kept):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch(device_info={"ios_advertising_id": "a" * length})))
    assert answer.status == 200, answer.body
    [event] = graph.events
    keys = event["match_keys"] if api == "offline_conversions" else event["user_data"]
    assert ("madid" in keys) is kept
    assert keys["em" if api == "conversions_api" else "email"]  # the other keys still match the user


def test_an_overlong_event_id_is_skipped_only_where_it_is_sent(function_env, invoke, graph, api):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch([commerce_event(source_message_id="m" * (MAX_TEXT_LENGTH + 1))])))
    assert answer.status == 200
    expected = {"value_too_long": 1} if api == "conversions_api" else {}  # only the Conversions API sends it
    assert answer.body["skipped"] == expected


# ---- kind 8: memory stays within the function's for every body inside the limits ---------------


def product_events(count: int) -> list[dict[str, Any]]:
    """Add-to-cart events holding `count` one-field products, a full event's worth per event."""
    sizes = [MAX_PRODUCTS_PER_EVENT] * (count // MAX_PRODUCTS_PER_EVENT) + [count % MAX_PRODUCTS_PER_EVENT]
    return [
        commerce_event("add_to_cart", products=[{"id": "1"}] * size, source_message_id=f"m-{index}")
        for index, size in enumerate(sizes)
        if size
    ]


@pytest.mark.parametrize(
    ("events", "status"),
    [
        (product_events(MAX_PRODUCTS_PER_BATCH), 200),
        (product_events(MAX_PRODUCTS_PER_BATCH + 1), 413),
        # Products are counted as they become contents: an unsupported event's, or those without an id, are not.
        ([*product_events(MAX_PRODUCTS_PER_BATCH), commerce_event("refund", products=[{"id": "1"}] * 1000)], 200),
        ([*product_events(MAX_PRODUCTS_PER_BATCH), commerce_event("add_to_cart", products=[{"sku": "1"}])], 200),
    ],
    ids=["at the limit", "one over", "over, in an unsupported event", "over, without ids"],
)
def test_products_per_batch_over_the_limit_are_a_413_naming_it(function_env, invoke, graph, api, events, status):
    function_env(FACEBOOK_API=api)
    answer = invoke(api_event(make_batch(events)))
    assert answer.status == status, answer.body
    if status == 413:
        assert str(MAX_PRODUCTS_PER_BATCH) in answer.body["error"]
        assert graph.received == []
    else:
        assert sum(len(commerce_of(event).get("contents", [])) for event in graph.events) == MAX_PRODUCTS_PER_BATCH


def padded_body(units: str, count: int, size: int = 0) -> str:
    """A one-event batch with an unknown field of `units` repeated `count` times, padded with spaces
    (which are not counted) to `size` bytes."""
    head = json.dumps(make_batch())[:-1]
    body = f'{head}, "ignored": [{",".join([units] * count)}]}}'
    return body + " " * (size - len(body))


def containers_in(body: str) -> int:
    return body.count("{") + body.count("[")


BASE = containers_in(padded_body("", 0))
OVER_THE_COUNTED_SIZE = CONTAINERS_COUNTED_ABOVE_BYTES + 1


@pytest.mark.parametrize(
    ("body", "base64_body", "status"),
    [
        # 6 MB of `{}` would take about 250 MB to parse.
        (padded_body("{}", 2_000_000), False, 413),
        (padded_body("{}", MAX_CONTAINERS - BASE, OVER_THE_COUNTED_SIZE), False, 200),
        (padded_body("{}", MAX_CONTAINERS - BASE + 1, OVER_THE_COUNTED_SIZE), False, 413),
        (padded_body("[[]]", (MAX_CONTAINERS - BASE + 2) // 2, OVER_THE_COUNTED_SIZE), False, 413),
        (padded_body("[" * 64 + "]" * 64, 45_000), False, 413),
        (padded_body("{}", MAX_CONTAINERS - BASE + 1, OVER_THE_COUNTED_SIZE), True, 413),  # the decoded body counts
        # Up to the size that is not counted any structure is accepted: it parses within the budget.
        (padded_body("{}", (CONTAINERS_COUNTED_ABOVE_BYTES - 3000) // 3, CONTAINERS_COUNTED_ABOVE_BYTES), False, 200),
    ],
    ids=["2 million {}", "at the limit", "one over", "one over in [[]]", "nested 64 deep", "base64", "2 MiB of {}"],
)
def test_a_large_body_of_many_objects_and_arrays_is_a_413_naming_the_limit(
    function_env, invoke, graph, body, base64_body, status
):
    answer = invoke(api_event(raw=body, base64_body=base64_body))
    assert answer.status == status, answer.body
    if status == 413:
        assert str(MAX_CONTAINERS) in answer.body["error"]
        assert graph.received == []
    else:
        assert answer.body["forwarded"] == 1
