"""A local AWS (moto server on loopback) with the forwarder's secret and parking queue in it.

boto3 reaches it through the standard AWS_ENDPOINT_URL, the same override an operator could use,
so the code under test runs unchanged. No AWS account and no Docker needed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import requests
from moto.server import ThreadedMotoServer

SECRET_ID = "mparticle-facebook-forwarder"
ACCESS_TOKEN = "local-access-token"
# What events/*.json send: `Basic base64("mparticle:local-webhook")`.
WEBHOOK_AUTHORIZATION = "Basic bXBhcnRpY2xlOmxvY2FsLXdlYmhvb2s="
QUEUE_NAME = "mparticle-facebook-forwarder-parking"
INGEST_QUEUE_NAME = "mparticle-facebook-forwarder-ingest"
INGEST_MAX_RECEIVES = 3
SETTLED_EVENTS_TABLE = "mparticle-facebook-forwarder-settled-events"
REGION = "us-east-1"

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def default_secret() -> dict[str, str]:
    return {"access_token": ACCESS_TOKEN, "webhook_authorization": WEBHOOK_AUTHORIZATION}


@contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A moto server on a free port of `host` (loopback by default); yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    bound, port = server.get_host_and_port()
    # Listening on every address: reach it on loopback.
    endpoint = f"http://{'127.0.0.1' if bound in ('0.0.0.0', '') else bound}:{port}"
    # moto keeps its state per process, not per server: start every server empty.
    requests.post(f"{endpoint}/moto-api/reset", timeout=5)
    try:
        yield endpoint
    finally:
        server.stop()


def provision(endpoint: str, secret: dict[str, str] | None = None, suffix: str = "") -> dict[str, str]:
    """Create the secret, the parking queue, the ingest queue (buffered delivery; redriven to the parking
    queue after INGEST_MAX_RECEIVES receives, as the template's) and the settled-events table; returns the
    environment that points at them. `suffix` ends the queues' and the table's names (tests give each test
    its own, so nothing a finished test's request writes late can reach the next test's queue)."""
    env = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    secrets = session.client("secretsmanager", endpoint_url=endpoint)
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps(secret or default_secret()))
    sqs = session.client("sqs", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME + suffix)["QueueUrl"]
    parking_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": parking_arn, "maxReceiveCount": str(INGEST_MAX_RECEIVES)})
    ingest = sqs.create_queue(QueueName=INGEST_QUEUE_NAME + suffix, Attributes={"RedrivePolicy": redrive})
    # As the template's table: the event key, on demand (forwarder/settled.py).
    session.client("dynamodb", endpoint_url=endpoint).create_table(
        TableName=SETTLED_EVENTS_TABLE + suffix,
        KeySchema=[{"AttributeName": "event", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "event", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {
        **env,
        "SECRET_ID": SECRET_ID,
        "PARKING_QUEUE_URL": queue_url,
        "INGEST_QUEUE_URL": ingest["QueueUrl"],
        "SETTLED_EVENTS_TABLE": SETTLED_EVENTS_TABLE + suffix,
        "INGEST_MAX_RECEIVE_COUNT": str(INGEST_MAX_RECEIVES),
    }


@contextmanager
def local_aws(secret: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Start moto, provision it, and yield the environment variables for the function."""
    with moto_server() as endpoint:
        yield provision(endpoint, secret)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
