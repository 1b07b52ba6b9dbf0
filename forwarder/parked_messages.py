"""Reading parked and queued messages back (forwarder/parking.py writes them), checked before anything is sent.

A message in the parking or ingest queue may be one this code did not write, or one altered since: every
field is checked, and the destination by the same rules as the variables (forwarder/destination.py), so a
message can never steer the token elsewhere. Messages of earlier releases are read too: format 1 (one
message per request, before sets existed) as a set of one part, format 2 (one reason per message, the
destination under `settings`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from forwarder.destination import Destination, DestinationError, read_destination
from forwarder.parking import FORMAT_VERSION, Reason, set_id
from forwarder.redaction import Redactor

_MAX_PARTS = 10_000  # a 6 MB batch makes a few dozen messages
_MAX_REASON = 2048
_DESTINATION_KEYS = ("connection", "api", "api_version", "dataset_id", "event_set_id", "upload_tag", "test_event_code")


class MalformedPart(ValueError):
    """A message this code did not write, or that was altered; says what is wrong, never a value."""


@dataclass(frozen=True, slots=True)
class ParkedPart:
    """One message, read back and checked: a part of a set of events for one destination."""

    set_id: str
    part: int
    parts: int
    parked_at: int
    destination: Destination
    events: list[dict[str, Any]]
    reasons: list[Reason]  # each event's reason, in the order of `events`
    batch_id: str | None = None
    source_request_id: str | None = None


def _short_text(value: Any, limit: int = 128) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _code(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value < 2**31 else None


def _reason(value: Any) -> Reason:
    if isinstance(value, str):
        return Reason(value[:_MAX_REASON])
    if not isinstance(value, dict):
        raise MalformedPart("a reason is not an object")
    return Reason(
        _short_text(value.get("reason"), _MAX_REASON) or "no reason recorded",
        _code(value.get("code")),
        _code(value.get("subcode")),
    )


def _cleaned(reasons: list[Reason], events: list[dict[str, Any]]) -> list[Reason]:
    """The reasons cleaned again with what the message's events hold: a message written by an earlier
    release, or altered, may quote a personal value (forwarder/redaction.py)."""
    redact = Redactor.for_events(events)
    cleaned: dict[Reason, Reason] = {}
    for reason in reasons:
        if reason not in cleaned:
            cleaned[reason] = dataclasses.replace(reason, text=redact(reason.text, limit=_MAX_REASON))
    return [cleaned[reason] for reason in reasons]


def _reasons(value: dict[str, Any], events: int) -> list[Reason]:
    """Each event's reason: format 3's table and indexes, or the message's one reason before it."""
    if value["format"] != FORMAT_VERSION:
        return [_reason(value.get("reason") or "no reason recorded")] * events
    table = value.get("reasons")
    indexes = value.get("event_reasons")
    if not isinstance(table, list) or not table or len(table) > events:
        raise MalformedPart("'reasons' is not a non-empty array of at most one reason per event")
    if not isinstance(indexes, list) or len(indexes) != events:
        raise MalformedPart("'event_reasons' does not give one reason per event")
    reasons = [_reason(item) for item in table]
    if not all(type(index) is int and 0 <= index < len(reasons) for index in indexes):
        raise MalformedPart("'event_reasons' holds something that is not an index of 'reasons'")
    return [reasons[index] for index in indexes]


def _destination(value: dict[str, Any]) -> Destination:
    recorded = value.get("destination" if value["format"] == FORMAT_VERSION else "settings")
    if not isinstance(recorded, dict):
        raise MalformedPart("the destination is not an object")
    try:
        return read_destination({key: recorded.get(key) for key in _DESTINATION_KEYS})
    except DestinationError as problem:
        raise MalformedPart(str(problem)) from None


def read_part(body: str) -> ParkedPart:
    """A message back; raises MalformedPart naming what is wrong."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedPart("not JSON") from None
    if not isinstance(value, dict) or value.get("format") not in (1, 2, FORMAT_VERSION):
        raise MalformedPart(f"not a parked part of format 1 to {FORMAT_VERSION}")
    events = value.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(event, dict) for event in events):
        raise MalformedPart("'events' is not a non-empty array of objects")
    try:
        encoded = [orjson.dumps(event) for event in events]
    except orjson.JSONEncodeError:
        raise MalformedPart("an event cannot be sent as JSON (nested too deep)") from None
    destination = _destination(value)
    identity: object
    part: object
    parts: object
    if value["format"] == 1:
        identity, part, parts = set_id(destination, [encoded]), 0, 1
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
        destination=destination,
        events=events,
        reasons=_cleaned(_reasons(value, len(events)), events),
        batch_id=_short_text(value.get("batch_id")),
        source_request_id=_short_text(value.get("source_request_id")),
    )
