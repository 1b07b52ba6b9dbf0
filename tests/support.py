"""Builders shared by the tests: API Gateway events, mParticle batches, secrets; and `wait_for`."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from localdev.aws import SECRET_ID, WEBHOOK_AUTHORIZATION

EVENT_SET_ID = "1234567890"
NOW_MS = int(time.time() * 1000)
BOTH_APIS = ["offline_conversions", "conversions_api"]
# An invocation timeout (seconds) for faults that last until the deadline: it leaves time for a few attempts
# (the function stops sending 1.5 s before its timeout, and starts an attempt only with 4.05 s left), and
# for a busy machine to read the secret and map a batch of 1005 events before the first (about 2.5 s; a
# tenth of that on a quiet machine, close to 1 s under load).
SHORT_INVOCATION = 8.0


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def api_event(
    batch: Any = None,
    *,
    raw: str | None = None,
    authorization: str | None = WEBHOOK_AUTHORIZATION,
    base64_body: bool = False,
    method: str = "POST",
    path: str = "/events",
) -> dict[str, Any]:
    """A REST API (v1) proxy event like API Gateway sends."""
    body = raw if raw is not None else json.dumps(batch)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if base64_body:
        body = base64.b64encode(body.encode()).decode()
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": None,
        "requestContext": {"requestId": "test-request", "stage": "prod", "httpMethod": method, "path": path},
        "body": body,
        "isBase64Encoded": base64_body,
    }


def put_secret(env: dict[str, str], value: dict[str, Any] | str | bytes) -> None:
    """A new current version of the secret: bytes as SecretBinary, anything else as SecretString."""
    client = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    if isinstance(value, bytes):
        client.put_secret_value(SecretId=SECRET_ID, SecretBinary=value)
        return
    client.put_secret_value(SecretId=SECRET_ID, SecretString=value if isinstance(value, str) else json.dumps(value))


def commerce_event(action: str = "purchase", **data: Any) -> dict[str, Any]:
    """One commerce event, recent, with one product unless `products` is given."""
    product_action = {
        "action": action,
        "transaction_id": "T-1",
        "products": data.pop("products", [{"id": "sku-1", "name": "Shirt", "price": 10.0, "quantity": 3}]),
        **data.pop("product_action", {}),
    }
    return {
        "event_type": "commerce_event",
        "data": {
            "timestamp_unixtime_ms": NOW_MS - 3_600_000,
            "source_message_id": data.pop("source_message_id", f"msg-{action}"),
            "currency_code": "USD",
            "custom_attributes": {"store": "SF-01"},
            "product_action": product_action,
            **data,
        },
    }


def make_batch(events: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """An outbound (webhook) batch for Jane, with her email, IDFA and reserved attributes."""
    return {
        "batch_id": 42,
        "source_request_id": "req-1",
        "timestamp_unixtime_ms": NOW_MS,
        "events": [commerce_event()] if events is None else events,
        "user_identities": [{"identity_type": "email", "identity": "Jane.Doe@Example.com "}],
        "user_attributes": {"$firstname": "Jane", "$lastname": "Doe", "$country": "US", "$city": "San Francisco"},
        "device_info": {"ios_advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"},
        **fields,
    }


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 60.0) -> None:
    """Poll `condition` until it holds, instead of sleeping a time a busy machine may need more of; fails
    naming `what` once `seconds` have passed (generous: the wait normally ends in milliseconds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {seconds:.0f} s")
        time.sleep(0.01)
