"""The benchmark's inputs: mParticle batches of any size built from the repository's own sample.

Every event is a supported commerce event (view_detail, add_to_cart, checkout, purchase, as in
events/multi_event_batch.json) with one to three products and distinct ids, timestamped in the last
hour, so every event received is an event forwarded and request counts are easy to check.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

from localdev.samples import EVENTS_DIR

SAMPLE = EVENTS_DIR / "multi_event_batch.json"
# Lambda's invoke payload limit (synchronous): the whole API Gateway event, body escaped inside it.
INVOKE_PAYLOAD_LIMIT = 6 * 1024 * 1024
_ACTIONS = ("view_detail", "add_to_cart", "checkout", "purchase")
_PRODUCTS = [
    {"id": "SKU-3307", "name": "Waxed Leather Boots", "brand": "Acme Outfitters", "category": "Footwear",
     "variant": "Brown/42", "price": 149.0},
    {"id": "SKU-2042", "name": "Canvas Tote", "brand": "Acme Outfitters", "category": "Accessories/Bags",
     "variant": "Natural", "price": 29.81},
    {"id": "SKU-5120", "name": "Merino Crew Socks", "brand": "Northwind", "category": "Apparel/Socks",
     "variant": "Grey/M", "price": 12.5},
]  # fmt: skip


def _sample() -> tuple[dict[str, Any], dict[str, Any]]:
    """The sample's API Gateway envelope and batch (user, device, consent) without its events."""
    envelope = json.loads(SAMPLE.read_text())
    batch = json.loads(envelope["body"])
    batch["events"] = []
    return envelope, batch


def commerce_event(index: int, now_ms: int) -> dict[str, Any]:
    action = _ACTIONS[index % len(_ACTIONS)]
    products = []
    for offset in range(1 + index % 3):
        product = dict(_PRODUCTS[(index + offset) % len(_PRODUCTS)])
        product["quantity"] = 1 + (index + offset) % 2
        product["total_product_amount"] = round(product["price"] * product["quantity"], 2)
        products.append(product)
    product_action: dict[str, Any] = {"action": action, "products": products}
    if action == "purchase":
        product_action["transaction_id"] = f"T-{100000 + index}"
        product_action["total_amount"] = round(sum(p["total_product_amount"] for p in products) * 1.08, 2)
    data: dict[str, Any] = {
        "event_id": 7351246130512349401 + index,
        "source_message_id": f"5f3a9c2e-7b1d-4e6f-8a34-{index:012x}",
        "message_id": f"5f3a9c2e-7b1d-4e6f-8c28-{index:012x}",
        "session_id": 5863245110298765004,
        "session_uuid": "5f3a9c2e-7b1d-4e6f-8b3b-1d5d3f7f5b9b",
        "timestamp_unixtime_ms": now_ms - 3_600_000 + index,
        "currency_code": "USD",
        "product_action": product_action,
    }
    if index % 2:
        data["custom_attributes"] = {"store": f"SF-{index % 7:02d}", "channel": "pos"}
    return {"event_type": "commerce_event", "data": data}


def batch(events: int, now_ms: int | None = None, first: int = 0) -> dict[str, Any]:
    """The sample's user with `events` commerce events, numbered (ids, products, actions) from `first`."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    _, body = _sample()
    body["timestamp_unixtime_ms"] = now_ms
    body["events"] = [commerce_event(index, now_ms) for index in range(first, first + events)]
    return body


def webhook_batches(count: int, first: int = 0, now_ms: int | None = None) -> list[dict[str, Any]]:
    """`count` batches as mParticle's webhook sends them in steady traffic: 1 to 5 events each (3 on average),
    every event its own ids (numbered from `first`), every batch its own ids (from its first event's number),
    so batches made from disjoint numbers never share an id."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    batches = []
    for number in range(count):
        body = batch(1 + number % 5, now_ms, first)
        body["batch_id"] += first
        body["source_request_id"] = f"5f3a9c2e-7b1d-4e6f-8ccb-{first:012x}"
        batches.append(body)
        first += len(body["events"])
    return batches


def api_event(body: dict[str, Any] | str, base64_body: bool = False) -> dict[str, Any]:
    """The sample's API Gateway (REST, proxy) event carrying this batch."""
    envelope, _ = _sample()
    text = body if isinstance(body, str) else json.dumps(body)
    envelope["body"] = base64.b64encode(text.encode()).decode() if base64_body else text
    envelope["isBase64Encoded"] = base64_body
    return copy.deepcopy(envelope)


def largest_event(base64_body: bool = False) -> tuple[dict[str, Any], int]:
    """The API Gateway event with the most events whose invoke payload stays under 6 MB."""
    probe = 200
    per_event = (len(json.dumps(api_event(batch(probe), base64_body))) - len(json.dumps(api_event(batch(0))))) / probe
    events = int((INVOKE_PAYLOAD_LIMIT - len(json.dumps(api_event(batch(0), base64_body)))) / per_event)
    while True:
        event = api_event(batch(events), base64_body)
        if len(json.dumps(event)) <= INVOKE_PAYLOAD_LIMIT:
            return event, events
        events -= max(1, events // 200)


# Where the sample's user keeps phone numbers (forwarder/match_keys.py, PHONE_SOURCES).
PHONE_IDENTITIES = ("mobile_number", "phone_number_2", "phone_number_3")
PHONE_ATTRIBUTES = ("$mobile",)


def match_key_values(body: dict[str, Any]) -> list[str]:
    """The distinct raw values the forwarder hashes for this batch's user (one SHA-256 each)."""
    identities = {item["identity_type"]: item["identity"] for item in body.get("user_identities", [])}
    attributes = body.get("user_attributes", {})
    values = [
        identities.get("email"),
        identities.get("customer_id"),
        *(identities.get(kind) for kind in PHONE_IDENTITIES),
        *(attributes.get(name) for name in ("$firstname", "$lastname", "$gender", "$city", "$state", "$zip")),
        *(attributes.get(name) for name in ("$country", *PHONE_ATTRIBUTES)),
        body.get("device_info", {}).get("ios_advertising_id"),
    ]
    return list(dict.fromkeys(value for value in values if value))


def without_phones(body: dict[str, Any]) -> dict[str, Any]:
    """The batch without its user's phone numbers (the sample has a mobile number identity and $mobile)."""
    body = copy.deepcopy(body)
    body["user_identities"] = [
        item for item in body["user_identities"] if item["identity_type"] not in PHONE_IDENTITIES
    ]
    body["user_attributes"] = {k: v for k, v in body["user_attributes"].items() if k not in PHONE_ATTRIBUTES}
    return body
