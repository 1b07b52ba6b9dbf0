"""Parking: a durable copy in SQS of events whose answer to mParticle will not be retried.

mParticle retries only 408/429/5xx. Events Facebook rejects (422) or processes only in part would
otherwise be lost, so they are written to the parking queue first, with the reason and the settings
in force (never the token), for `python -m forwarder.replay` to send again once the cause is fixed.
If the write fails the caller answers 503, so mParticle retries: no final answer without a copy.

One invocation parks one *set*: its parts (SQS messages under the size limit) carry the set's id, a
digest of the parked events, and their number. SQS writes one message at a time, so a set can be left
incomplete (a later part failed: the batch was answered 503 and mParticle resends it) or written twice
(SQS stored a message but its answer was lost, and the SDK sent it again; or mParticle resent a batch
whose set was already written). Replay therefore sends only complete sets, each once, and discards
incomplete ones once no invocation can still be writing them (README, "Parking and replay").
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from forwarder.deadline import Deadline, OutOfTime, bounded
from forwarder.settings import Settings, load_settings

FORMAT_VERSION = 2
# SQS accepts up to 256 KiB per message; keep headroom for the envelope (reason, settings, ids).
MAX_MESSAGE_BYTES = 240_000
# Per attempt; the whole write is also bounded by the invocation's time (`park`).
_SQS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})


class ParkingFailed(RuntimeError):
    """SQS refused or could not be reached in time; the message names the AWS error code, not the data."""


@dataclass(frozen=True, slots=True)
class Request:
    """The events of one Graph request to park, and why."""

    reason: str
    events: Sequence[dict[str, Any]]


@cache
def sqs_client() -> Any:
    """One client per container, created only when something must be parked."""
    return boto3.client("sqs", config=_SQS_CONFIG)


def _parts(requests: Sequence[Request]) -> list[tuple[str, list[bytes]]]:
    """(reason, serialised events) per message: a request's events, split where a message would overflow."""
    parts: list[tuple[str, list[bytes]]] = []
    for request in requests:
        current: list[bytes] = []
        size = 0
        for event in request.events:
            encoded = orjson.dumps(event)
            if current and size + len(encoded) + 1 > MAX_MESSAGE_BYTES:
                parts.append((request.reason, current))
                current, size = [], 0
            current.append(encoded)
            size += len(encoded) + 1
        if current:
            parts.append((request.reason, current))
    return parts


def set_id(parts: Sequence[Sequence[bytes]]) -> str:
    """The same events in the same parts give the same id, whichever invocation parks them."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"[" + b",".join(part) + b"]\n")
    return digest.hexdigest()


def _sqs_safe(body: bytes) -> str:
    """SQS refuses the noncharacters U+FFFE and U+FFFF in a message; they become U+FFFD, the replacement
    character, of the same three bytes in UTF-8, so a part never grows past the size it was cut to."""
    return body.replace(b"\xef\xbf\xbe", b"\xef\xbf\xbd").replace(b"\xef\xbf\xbf", b"\xef\xbf\xbd").decode()


def park(
    requests: Sequence[Request],
    settings: Settings,
    deadline: Deadline,
    batch_id: str | None = None,
    source_request_id: str | None = None,
) -> int:
    """Write the events as one set of messages, each write bounded by `deadline`; returns the messages
    written. Raises ParkingFailed (the set may then be incomplete: replay never sends it)."""
    return write_set(settings.parking_queue_url, _parts(requests), settings, deadline, batch_id, source_request_id)


def enqueue(
    events: Sequence[dict[str, Any]],
    reason: str,
    queue_url: str,
    settings: Settings,
    deadline: Deadline,
    batch_id: str | None = None,
    source_request_id: str | None = None,
) -> int:
    """Write events to another queue in this same format, each message a set of its own (so a message
    that queue redrives to the parking queue is a complete set replay can send); returns the messages.
    Raises ParkingFailed."""
    parts = _parts([Request(reason, events)])
    for part in parts:
        write_set(queue_url, [part], settings, deadline, batch_id, source_request_id, purpose="queue the events")
    return len(parts)


def write_set(
    queue_url: str,
    parts: Sequence[tuple[str, list[bytes]]],
    settings: Settings,
    deadline: Deadline,
    batch_id: str | None,
    source_request_id: str | None,
    purpose: str = "park undeliverable events",
) -> int:
    """One set of (reason, serialised events) parts as messages of this format; returns the messages.
    Raises ParkingFailed, whose message says what could not be done (`purpose`) and the AWS error code."""
    identity = set_id([events for _, events in parts])
    for index, (reason, events) in enumerate(parts):
        envelope = {
            "format": FORMAT_VERSION,
            "set_id": identity,
            "part": index,
            "parts": len(parts),
            "parked_at": int(time.time()),
            "reason": reason,
            "settings": settings.public_view(),
            "batch_id": batch_id,
            "source_request_id": source_request_id,
            "events": orjson.Fragment(b"[" + b",".join(events) + b"]"),
        }
        _send(queue_url, _sqs_safe(orjson.dumps(envelope)), deadline, purpose)
    return len(parts)


def _send(queue_url: str, body: str, deadline: Deadline, purpose: str) -> None:
    try:
        with bounded(deadline.left()):
            sqs_client().send_message(QueueUrl=queue_url, MessageBody=body)
    except OutOfTime:
        raise ParkingFailed(f"could not {purpose} in SQS in time") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "unknown")
        raise ParkingFailed(f"could not {purpose} in SQS ({code})") from None
    except BotoCoreError as error:
        raise ParkingFailed(f"could not {purpose} in SQS ({type(error).__name__})") from None


class MalformedPart(ValueError):
    """A message in the parking queue that this code did not write, or that was altered; says what is wrong."""


@dataclass(frozen=True, slots=True)
class ParkedPart:
    """One parking message, read back and checked."""

    set_id: str
    part: int
    parts: int
    parked_at: int
    reason: str
    destination: dict[str, str]  # api, api_version, event_set_id, upload_tag as they were when parked
    events: list[dict[str, Any]]
    batch_id: str | None = None
    source_request_id: str | None = None


_DESTINATION_KEYS = ("api", "api_version", "event_set_id", "upload_tag", "test_event_code")
_MAX_PARTS = 10_000  # a 6 MB batch makes a few dozen messages


def _short_text(value: Any, limit: int = 128) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def read_part(body: str) -> ParkedPart:
    """A parked message back; raises MalformedPart. Format 1 (one message per request, before sets
    existed) reads as a set of one part."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedPart("not JSON") from None
    if not isinstance(value, dict) or value.get("format") not in (1, FORMAT_VERSION):
        raise MalformedPart(f"not a parked part of format 1 or {FORMAT_VERSION}")
    events = value.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(event, dict) for event in events):
        raise MalformedPart("'events' is not a non-empty array of objects")
    try:
        encoded = [orjson.dumps(event) for event in events]
    except orjson.JSONEncodeError:
        raise MalformedPart("an event cannot be sent as JSON (nested too deep)") from None
    settings = value.get("settings")
    if not isinstance(settings, dict):
        raise MalformedPart("'settings' is not an object")
    destination = {key: settings[key] for key in _DESTINATION_KEYS if settings.get(key) is not None}
    if not all(isinstance(item, str) for item in destination.values()):
        raise MalformedPart("a destination setting is not a string")
    identity: object
    part: object
    parts: object
    if value["format"] == 1:
        identity, part, parts = set_id([encoded]), 0, 1
    else:
        identity, part, parts = value.get("set_id"), value.get("part"), value.get("parts")
        if not (isinstance(identity, str) and len(identity) == 64 and identity.isalnum() and identity.isascii()):
            raise MalformedPart("'set_id' is not a digest")
        if not (type(parts) is int and type(part) is int and 0 <= part < parts <= _MAX_PARTS):
            raise MalformedPart("'part' and 'parts' are not a part number and a count")
    parked_at = value.get("parked_at")
    return ParkedPart(
        set_id=identity,
        part=part,
        parts=parts,
        parked_at=parked_at if type(parked_at) is int else 0,
        reason=_short_text(value.get("reason"), 512) or "no reason recorded",
        destination=destination,
        events=events,
        batch_id=_short_text(value.get("batch_id")),
        source_request_id=_short_text(value.get("source_request_id")),
    )


def recorded_destination(settings: Settings, recorded: dict[str, str]) -> Settings:
    """`settings` with the API, version, event set, upload tag and test event code recorded in a message,
    checked by the same rules as the environment (so an altered message cannot steer the token to another
    path); the Graph URL, secret and queues stay the configured ones. Raises SettingsError."""
    checked = load_settings(
        {
            "SECRET_ID": settings.secret_id,
            "PARKING_QUEUE_URL": settings.parking_queue_url,
            "FACEBOOK_API": recorded.get("api", settings.api.value),
            "FACEBOOK_API_VERSION": recorded.get("api_version", ""),
            "OFFLINE_EVENT_SET_ID": recorded.get("event_set_id", ""),
            "UPLOAD_TAG": recorded.get("upload_tag", ""),
            "TEST_EVENT_CODE": recorded.get("test_event_code", ""),
        }
    )
    return dataclasses.replace(
        settings,
        api=checked.api,
        api_version=checked.api_version,
        event_set_id=checked.event_set_id,
        upload_tag=checked.upload_tag,
        test_event_code=checked.test_event_code,
    )
