"""Property-based fuzzing of the whole handler: hostile API Gateway events in, documented answers out.

The real `lambda_handler` runs against moto and a Graph stand-in that accepts anything well formed,
so fuzzed batches that are valid go all the way through. Whatever the body, headers, base64 flag,
method or path: no exception escapes, the status is one the README documents, an authenticated
request with a broken body is a 400 (or a 200 when it is still a batch), never a 500, and each
example stays within a bound of CPU time (what a costly input shows in, however busy the machine) and
of memory.
"""

from __future__ import annotations

import base64
import json
import re
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from handler.app import MAX_BODY_BYTES, lambda_handler
from localdev.aws import WEBHOOK_AUTHORIZATION
from localdev.graph_stub import GraphStub
from localdev.lambda_context import LocalContext
from tests.faulty_servers import FaultyGraph
from tests.support import NOW_MS, api_event, commerce_event, make_batch

DOCUMENTED = {200, 400, 401, 404, 413, 422, 500, 502, 503}
SECONDS_PER_EXAMPLE = 3.0  # of this process's CPU time
PEAK_BYTES = 32 * 1024 * 1024  # bodies here stay under ~100 kB; the handler should need a few MB
FUZZ = settings(
    max_examples=150,
    deadline=None,  # bounded below with a clearer message; the first example pays for imports
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Strings that look like numbers, or almost: mParticle SDKs send numbers as strings too.
NUMBERISH = [
    *["NaN", "nan", "-Infinity", "Infinity", "inf", "1e999", "-1e999", "1e-400", "-0", "0x1F", "1_000"],
    *["\u0661\u0662\u0663", "\uff11\uff12", " 12 ", "", "null", "true", "9" * 400, "1e308", "-1", "0"],
]  # the escapes are Arabic-Indic and full-width digits, which Python's float() accepts
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.integers().map(lambda n: n * 10**30),  # beyond 64 bits: orjson reads them as floats
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(NUMBERISH),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)

# Where a batch can hold a wrong type: every field the forwarder reads, at every level.
_DATA = ("events", 0, "data")
_ACTION = (*_DATA, "product_action")
_PRODUCT = (*_ACTION, "products", 0)
FIELDS = [
    *[(name,) for name in ("events", "user_identities", "user_attributes", "device_info", "consent_state")],
    *[(name,) for name in ("batch_id", "source_request_id", "timestamp_unixtime_ms")],
    ("consent_state", "ccpa"),
    *[("user_attributes", name) for name in ("$firstname", "$country", "$gender", "$city", "$State")],
    *[("device_info", name) for name in ("ios_advertising_id", "android_advertising_id")],
    ("events", 0),
    ("events", 0, "event_type"),
    _DATA,
    *[(*_DATA, name) for name in ("timestamp_unixtime_ms", "source_message_id", "currency_code", "custom_attributes")],
    _ACTION,
    *[(*_ACTION, name) for name in ("action", "products", "total_amount", "transaction_id")],
    _PRODUCT,
    *[(*_PRODUCT, name) for name in ("id", "price", "quantity", "brand")],
]
ACTIONS = ["purchase", "add_to_cart", "checkout", "view_detail", "add_to_wishlist", "refund", "PURCHASE", "", "click"]


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def _put(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        if not _has(node, step):
            return
        node = node[step]
    if isinstance(node, dict) or _has(node, path[-1]):
        node[path[-1]] = value


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    """A real batch (either identity shape), then wrong types or odd values in some of its fields."""
    events = [
        commerce_event(draw(st.sampled_from(ACTIONS)), source_message_id=f"m-{index}")
        for index in range(draw(st.integers(0, 4)))
    ]
    batch = make_batch(events)
    if draw(st.booleans()):
        batch["user_identities"] = {"email": "jane@example.com", "customerid": draw(scalars)}
    for path, value in draw(st.lists(st.tuples(st.sampled_from(FIELDS), json_values), max_size=5)):
        _put(batch, path, value)
    return batch


def nested(depth: int, kind: str) -> str:
    inner = {"list": "[" * depth + "]" * depth, "object": '{"a":' * depth + "1" + "}" * depth}[kind]
    return inner if depth % 2 else f'{{"events": [{inner}]}}'


raw_bodies = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    st.builds(nested, st.integers(1, 3000), st.sampled_from(["list", "object"])),
    st.sampled_from(
        [
            "1e400",
            "-1e400",
            "[1e400]",
            '{"events": [], "batch_id": 1' + "0" * 500 + "}",
            "NaN",
            '{"events": NaN}',
            "\ufeff{}",
            "{}",
            "null",
            "[]",
            '""',
            "0",
            '{"events": null}',
            '{"events": "[]"}',
            '{"events": {}}',
            "{" * 10,
            '{"a": "\\ud800"}',
            "\x00",
            "   ",
        ]
    ),
    json_values.map(json.dumps),
)
json_bodies = st.one_of(
    batches().map(json.dumps),
    batches().map(lambda batch: json.dumps(batch, ensure_ascii=False)),
)


# Hypothesis favours boundary values such as 0, so odd branches are drawn from weighted lists instead.
sometimes = st.sampled_from([False] * 4 + [True])
rarely = st.sampled_from([False] * 15 + [True])


@st.composite
def gateway_events(draw: st.DrawFn) -> dict[str, Any]:
    """An API Gateway event: body, base64 flag, headers (authorized or not), method and path."""
    text = draw(st.one_of(json_bodies, json_bodies, raw_bodies))
    encoding = draw(
        st.sampled_from(["plain"] * 4 + ["base64"] * 2 + ["flag without base64", "base64 without flag", "bytes"])
    )
    body: str | None = text
    flagged = False
    if encoding == "base64":
        body, flagged = base64.b64encode(text.encode()).decode(), True
    elif encoding == "flag without base64":
        flagged = True
    elif encoding == "base64 without flag":
        body = base64.b64encode(text.encode()).decode()
    elif encoding == "bytes":
        body, flagged = base64.b64encode(draw(st.binary(max_size=300))).decode(), True
    if draw(rarely):
        body = None
    wrong = st.one_of(
        st.none(),
        st.text(max_size=60),
        st.just(WEBHOOK_AUTHORIZATION[:-1]),
        st.just(WEBHOOK_AUTHORIZATION.upper()),
        st.integers(1, 5000).map(lambda n: WEBHOOK_AUTHORIZATION + "=" * n),
        st.just("Basic bXBhcnRpY2xlOmxvY2FsLXdlYmhvb2vDqQ==é€😀"),
    )
    # Most examples are authorized and routed, so the body is what gets fuzzed.
    authorization = draw(wrong) if draw(sometimes) else WEBHOOK_AUTHORIZATION
    header_name = draw(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION", "aUtHoRiZaTiOn"]))
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=200), max_size=4))
    headers: dict[str, str] | None = {
        **{key: value for key, value in extra.items() if key.lower() != "authorization"},
        **({header_name: authorization} if authorization is not None else {}),
    }
    if draw(rarely):
        headers = None
    method, path = "POST", "/events"
    if draw(sometimes):
        method = draw(st.sampled_from(["post", "GET", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "", "POST"]))
        path = draw(st.sampled_from(["/events/", "/", "", "/other", "/events/x", "/EVENTS", "/v1/events", "/events"]))
    event = api_event(raw="", method=method, path=path)
    event.update(body=body, isBase64Encoded=flagged, headers=headers)
    event["multiValueHeaders"] = {key: [value] for key, value in (headers or {}).items()}
    return event


def route(event: dict[str, Any]) -> str:
    """ "events" for POST /events; "variant" for what the resolver may also match (a lower-case method,
    trailing slashes; API Gateway only ever invokes the function for POST /events); else "other"."""
    if event["httpMethod"] == "POST" and event["path"] == "/events":
        return "events"
    if event["httpMethod"].upper() == "POST" and re.fullmatch(r"/events/*", event["path"]):
        return "variant"
    return "other"


def authorized(event: dict[str, Any]) -> bool:
    headers = event["headers"] or {}
    return any(key.lower() == "authorization" and value == WEBHOOK_AUTHORIZATION for key, value in headers.items())


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with FaultyGraph() as stub:  # the stand-in, stopped without waiting for its poll interval
        yield stub


@pytest.fixture
def accepting_graph(function_env, graph, api):
    """Facebook answers success to anything well formed, so valid fuzzed batches are delivered."""
    function_env(FACEBOOK_API=api)
    graph.validate = False
    return graph


def run(event: dict[str, Any]) -> tuple[dict[str, Any], float, int]:
    tracemalloc.start()
    started = time.process_time()
    try:
        response = lambda_handler(event, LocalContext(timeout_seconds=25))
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, elapsed, peak


@FUZZ
@given(gateway_event=gateway_events())
def test_any_request_gets_a_documented_answer_in_bounded_time_and_memory(accepting_graph, gateway_event):
    accepting_graph.received.clear()
    response, elapsed, peak = run(gateway_event)  # an exception escaping the handler fails here

    status = response["statusCode"]
    event(f"status {status}")
    assert status in DOCUMENTED
    assert status != 500, response["body"]  # the configuration is valid: a 500 is an unhandled error
    assert elapsed < SECONDS_PER_EXAMPLE
    assert peak < PEAK_BYTES, f"{peak / 1e6:.1f} MB"
    body = json.loads(response["body"])
    assert isinstance(body, dict)
    assert ("error" in body) == (status != 200)
    if route(gateway_event) == "other":
        assert status == 404
    elif status == 404:
        assert route(gateway_event) == "variant"
    elif not authorized(gateway_event):
        assert status == 401
    else:
        assert status in (200, 400), body  # authenticated garbage is the sender's problem, never a 500
    if status == 200:
        event("forwarded something" if body["forwarded"] else "forwarded nothing")
        assert body["received"] == body["forwarded"] + body["parked"] + sum(body["skipped"].values())
        assert body["forwarded"] == len(accepting_graph.events)


@FUZZ
@given(batch=batches(), base64_body=st.booleans())
def test_any_batch_shaped_body_is_a_200_that_counts_every_event(accepting_graph, batch, base64_body):
    """A body that is a JSON object with an `events` array (or none) is a batch, whatever its fields hold."""
    accepting_graph.received.clear()
    response, elapsed, peak = run(api_event(batch, base64_body=base64_body))
    body = json.loads(response["body"])
    events = batch.get("events", [])
    if events is not None and not isinstance(events, list):
        assert response["statusCode"] == 400
        assert "'events' must be an array" in body["error"]
        return
    assert response["statusCode"] == 200, body
    event("forwarded something" if body["forwarded"] else "forwarded nothing")
    assert body["received"] == len(events or [])
    assert body["received"] == body["forwarded"] + sum(body["skipped"].values())
    assert body["forwarded"] == len(accepting_graph.events)
    assert elapsed < SECONDS_PER_EXAMPLE
    assert peak < PEAK_BYTES


@pytest.mark.parametrize("base64_body", [False, True])
@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)])
def test_the_size_limit_is_exact_for_plain_and_base64_bodies(function_env, graph, base64_body, extra, status):
    """6 MiB decoded is accepted, one byte more is a 413; padding is JSON whitespace inside a real batch."""
    batch = json.dumps({"events": [], "timestamp_unixtime_ms": NOW_MS})
    text = batch[:-1] + " " * (MAX_BODY_BYTES + extra - len(batch)) + "}"
    assert len(text.encode()) == MAX_BODY_BYTES + extra
    response = lambda_handler(api_event(raw=text, base64_body=base64_body), LocalContext())
    assert response["statusCode"] == status, response["body"]
    if status == 413:
        assert "larger than" in json.loads(response["body"])["error"]


@pytest.mark.parametrize("body", ["é", "e30=é", "\u00ff\u00fe", "e30=\u2028", "😀"])
def test_a_base64_flagged_body_with_non_ascii_characters_is_a_400(function_env, graph, body):
    """Found by the fuzzer: base64.b64decode raises a plain ValueError (not binascii.Error) for non-ASCII text."""
    response = lambda_handler(api_event(raw=body) | {"isBase64Encoded": True}, LocalContext())
    assert response["statusCode"] == 400, response["body"]
    assert "base64" in json.loads(response["body"])["error"]


@pytest.mark.parametrize("quantity", [1e20, 1e30, "1e25"])
def test_a_huge_product_quantity_is_not_a_500(function_env, graph, quantity):
    """Found by the fuzzer (the batch-shaped property); a 500 here is retried by mParticle and fails again."""
    batch = make_batch([commerce_event("add_to_cart", products=[{"id": "sku-1", "price": 1.0, "quantity": quantity}])])
    response = lambda_handler(api_event(batch), LocalContext())
    assert response["statusCode"] == 200, response["body"]
    body = json.loads(response["body"])
    assert body["received"] == body["forwarded"] + sum(body["skipped"].values())
