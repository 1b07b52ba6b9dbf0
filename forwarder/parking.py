"""Parking: a durable copy in SQS of events whose answer to mParticle will not be retried.

mParticle retries only 408/429/5xx. Events Facebook rejects (422) or processes only in part would
otherwise be lost, so they are written to the parking queue first, with the reason and the settings
in force (never the token), for `python -m forwarder.replay` to send again once the cause is fixed.
If the write fails the caller answers 500, so mParticle retries: no final answer without a copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from forwarder.settings import Settings

FORMAT_VERSION = 1
# SQS accepts up to 256 KiB per message by default; keep headroom for the envelope and attributes.
MAX_MESSAGE_BYTES = 240_000
# Parking runs after delivery, inside the invocation's safety margin: fail fast, once.
_SQS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})


class ParkingFailed(RuntimeError):
    """SQS refused or could not be reached; the message names the AWS error code, not the data."""


@dataclass(frozen=True, slots=True)
class ParkedPart:
    """One SQS message's worth of events, and what they were meant for."""

    reason: str
    settings: dict[str, Any]
    events: list[dict[str, Any]]
    batch_id: str | None = None
    source_request_id: str | None = None


@cache
def sqs_client() -> Any:
    """One client per container, created only when something must be parked."""
    return boto3.client("sqs", config=_SQS_CONFIG)


def _parts(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        event_size = len(orjson.dumps(event)) + 1
        if parts[-1] and size + event_size > MAX_MESSAGE_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(event)
        size += event_size
    return [part for part in parts if part]


def park(
    events: list[dict[str, Any]],
    reason: str,
    settings: Settings,
    batch_id: str | None = None,
    source_request_id: str | None = None,
) -> None:
    """Write the events to the parking queue, split into messages SQS accepts; raises ParkingFailed."""
    for part in _parts(events):
        body = {
            "format": FORMAT_VERSION,
            "parked_at": int(time.time()),
            "reason": reason,
            "settings": settings.public_view(),
            "batch_id": batch_id,
            "source_request_id": source_request_id,
            "events": part,
        }
        try:
            sqs_client().send_message(QueueUrl=settings.parking_queue_url, MessageBody=orjson.dumps(body).decode())
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "unknown")
            raise ParkingFailed(f"could not park undeliverable events in SQS ({code})") from None
        except BotoCoreError as error:
            raise ParkingFailed(f"could not park undeliverable events in SQS ({type(error).__name__})") from None


def read_part(body: str) -> ParkedPart:
    """A parked message back; raises ValueError if it is not one this code wrote."""
    value = orjson.loads(body)
    if (
        not isinstance(value, dict)
        or value.get("format") != FORMAT_VERSION
        or not isinstance(value.get("events"), list)
    ):
        raise ValueError("not a parked batch of this format")
    return ParkedPart(
        reason=str(value.get("reason")),
        settings=value.get("settings") or {},
        events=value["events"],
        batch_id=value.get("batch_id"),
        source_request_id=value.get("source_request_id"),
    )
