"""Parking: a durable copy in SQS of events whose answer to their source will not be retried.

mParticle retries only 408/429/5xx. Events Facebook rejects (422) or processes only in part would
otherwise be lost, so they are written to the parking queue first, each with its reason, with the
destination they were rendered for (never a token) and the batch's ids, for `python -m forwarder.replay`
to send again once the cause is fixed. If the write fails the caller answers so that its source retries
(503, or the SQS message received again): no final answer without a copy.

One call parks one *set* per destination: its parts (SQS messages under the size limit) carry the set's
id (a digest of the destination and the events), their number, the events and a table of their reasons,
and are written ten to a call (SendMessageBatch). A set can be left incomplete (a later write failed: the
source retries) or written twice (SQS stored a message but its answer was lost and the SDK sent it again);
replay therefore sends only complete sets, each once (docs: "Parking and replay"). The ingest queue of
buffered delivery uses the same format, one set per message (`enqueue`), so that a message it redrives to
the parking queue is a set replay can send.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from forwarder.deadline import Deadline, OutOfTime, bounded
from forwarder.destination import Destination

FORMAT_VERSION = 3
# SQS accepts up to 256 KiB per message and per SendMessageBatch call; keep headroom for the envelope.
MAX_MESSAGE_BYTES = 240_000
_MAX_CALL_BYTES = 250_000
_MAX_CALL_MESSAGES = 10
# Per attempt; the whole write is also bounded by the invocation's time (`deadline`).
_SQS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})


class ParkingFailed(RuntimeError):
    """SQS refused or could not be reached in time; the message names the AWS error code, not the data."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an event is parked: a sentence (Facebook's text already redacted) and Meta's code and subcode."""

    text: str
    code: int | None = None
    subcode: int | None = None

    def record(self) -> dict[str, Any]:
        return {"reason": self.text, "code": self.code, "subcode": self.subcode}


@dataclass(frozen=True, slots=True)
class Parked:
    """One event to park, and why."""

    event: dict[str, Any]
    reason: Reason


@cache
def sqs_client() -> Any:
    """One client per container, created only when something must be parked or queued."""
    import boto3

    return boto3.client("sqs", config=_SQS_CONFIG)


def _parts(entries: Sequence[Parked]) -> list[tuple[list[bytes], list[Reason], list[int]]]:
    """(serialised events, reasons, each event's reason index) per message, cut where one would overflow."""
    parts: list[tuple[list[bytes], list[Reason], list[int]]] = []
    events: list[bytes] = []
    reasons: dict[Reason, int] = {}
    indexes: list[int] = []
    size = 0
    for entry in entries:
        encoded = orjson.dumps(entry.event)
        extra = len(encoded) + 8 + (0 if entry.reason in reasons else len(orjson.dumps(entry.reason.record())))
        if events and size + extra > MAX_MESSAGE_BYTES:
            parts.append((events, list(reasons), indexes))
            events, reasons, indexes, size = [], {}, [], 0
            extra = len(encoded) + 8 + len(orjson.dumps(entry.reason.record()))
        events.append(encoded)
        indexes.append(reasons.setdefault(entry.reason, len(reasons)))
        size += extra
    if events:
        parts.append((events, list(reasons), indexes))
    return parts


def set_id(destination: Destination, parts: Sequence[Sequence[bytes]]) -> str:
    """The same events in the same parts for the same destination give the same id, whoever writes them."""
    digest = hashlib.sha256(orjson.dumps(destination.record(), option=orjson.OPT_SORT_KEYS))
    for part in parts:
        digest.update(b"[" + b",".join(part) + b"]\n")
    return digest.hexdigest()


def _sqs_safe(body: bytes) -> str:
    """SQS refuses the noncharacters U+FFFE and U+FFFF in a message; they become U+FFFD, the replacement
    character, of the same three bytes in UTF-8, so a part never grows past the size it was cut to."""
    return body.replace(b"\xef\xbf\xbe", b"\xef\xbf\xbd").replace(b"\xef\xbf\xbf", b"\xef\xbf\xbd").decode()


def _bodies(
    destination: Destination,
    parts: list[tuple[list[bytes], list[Reason], list[int]]],
    batch_id: str | None,
    source_request_id: str | None,
) -> list[str]:
    """The messages of one set made of `parts`."""
    identity = set_id(destination, [events for events, _, _ in parts])
    bodies = []
    for index, (events, reasons, indexes) in enumerate(parts):
        envelope = {
            "format": FORMAT_VERSION,
            "set_id": identity,
            "part": index,
            "parts": len(parts),
            "parked_at": int(time.time()),
            "destination": destination.record(),
            "batch_id": batch_id,
            "source_request_id": source_request_id,
            "reasons": [reason.record() for reason in reasons],
            "event_reasons": indexes,
            "events": orjson.Fragment(b"[" + b",".join(events) + b"]"),
        }
        bodies.append(_sqs_safe(orjson.dumps(envelope)))
    return bodies


def park(
    queue_url: str,
    destination: Destination,
    entries: Sequence[Parked],
    deadline: Deadline,
    batch_id: str | None = None,
    source_request_id: str | None = None,
) -> str:
    """Write `entries` as one set, every call bounded by `deadline`; returns the set's id. Raises
    ParkingFailed (the set may then be incomplete: replay never sends it)."""
    parts = _parts(entries)
    bodies = _bodies(destination, parts, batch_id, source_request_id)
    _send_all(queue_url, bodies, deadline, "park undeliverable events")
    return set_id(destination, [events for events, _, _ in parts])


def enqueue(
    queue_url: str,
    destination: Destination,
    events: Sequence[dict[str, Any]],
    reason: Reason,
    deadline: Deadline,
    batch_id: str | None = None,
    source_request_id: str | None = None,
) -> int:
    """Write events to another queue in this same format, each message a set of its own (so a message that
    queue redrives to the parking queue is a complete set replay can send); returns the messages.
    Raises ParkingFailed."""
    parts = _parts([Parked(event, reason) for event in events])
    bodies = [body for part in parts for body in _bodies(destination, [part], batch_id, source_request_id)]
    _send_all(queue_url, bodies, deadline, "queue the events")
    return len(bodies)


def _send_all(queue_url: str, bodies: list[str], deadline: Deadline, purpose: str) -> None:
    """SendMessageBatch calls of up to ten messages and 250,000 bytes; the entries SQS fails are sent again
    (once), every call bounded by `deadline`. Raises ParkingFailed naming `purpose` and the AWS error code."""
    calls: list[list[str]] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if not calls or len(calls[-1]) == _MAX_CALL_MESSAGES or size + length > _MAX_CALL_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(body)
        size += length
    for call in calls:
        left = call
        for _ in range(2):
            left = _send_batch(queue_url, left, deadline, purpose)
            if not left:
                break
        if left:
            raise ParkingFailed(f"could not {purpose} in SQS (it failed {len(left)} of the messages)")


def _send_batch(queue_url: str, bodies: list[str], deadline: Deadline, purpose: str) -> list[str]:
    """One SendMessageBatch call; returns the bodies SQS did not store."""
    entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)]
    try:
        with bounded(deadline.left()):
            answer = sqs_client().send_message_batch(QueueUrl=queue_url, Entries=entries)
    except OutOfTime:
        raise ParkingFailed(f"could not {purpose} in SQS in time") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "unknown")
        raise ParkingFailed(f"could not {purpose} in SQS ({code})") from None
    except BotoCoreError as error:
        raise ParkingFailed(f"could not {purpose} in SQS ({type(error).__name__})") from None
    failed = {entry.get("Id") for entry in answer.get("Failed", [])}
    return [body for index, body in enumerate(bodies) if str(index) in failed]
