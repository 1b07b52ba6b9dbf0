"""Settled events: what isolation already delivered or parked, remembered across invocations.

When Facebook rejects a request and its events must be isolated (forwarder/isolation.py), an invocation may
run out of time before every event is settled; its answer is then one the source retries (mParticle resends
the batch, SQS delivers the message again), and the retry would start over. So each event isolation settles
is written to a DynamoDB table (SETTLED_EVENTS_TABLE): delivered, or parked with its reason. The next
attempt of the same events, after its first request is rejected again, reads the table and leaves out what
is settled, so the work continues instead of restarting, and no event is parked twice.

The table is read and written only on that rejection path (never for a request Facebook accepts). An event
is known by its destination and Meta's de-duplication key (event_name + event_id; on the Offline Conversions
API, which has no event_id, the event's own content). Items expire after 7 days (TTL attribute
`expires_at`): longer than mParticle or SQS retry. Every call is bounded by the deadline given; a table that
cannot be read or written costs only the memory (the work then restarts, as without a table).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import orjson
from botocore.config import Config

from forwarder.deadline import Deadline, OutOfTime, bounded
from forwarder.destination import Destination
from forwarder.telemetry import logger

TTL_SECONDS = 7 * 24 * 3600
_BATCH_GET = 100  # DynamoDB BatchGetItem: at most 100 keys per call
_BATCH_WRITE = 25  # BatchWriteItem: at most 25 items per call
_UNPROCESSED_PAUSE = 0.05  # DynamoDB hands back what it could not take under load: a breath before asking again
_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 2, "mode": "standard"})


class Settlement(StrEnum):
    DELIVERED = "delivered"
    PARKED = "parked"


def event_key(destination: Destination, event: Mapping[str, Any]) -> str:
    """The event's identity at its destination: Meta's de-duplication key where the API has one, else its
    content (orjson, keys sorted). 32 hex characters."""
    name, event_id = event.get("event_name"), event.get("event_id")
    if isinstance(event_id, str) and isinstance(name, str):
        identity = f"{name}\x00{event_id}".encode()
    else:
        identity = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    place = f"{destination.connection}\x00{destination.api.value}\x00{destination.dataset_id}\x00".encode()
    return hashlib.sha256(place + identity).hexdigest()[:32]


@cache
def _dynamodb() -> Any:
    import boto3  # the rejection path only

    return boto3.client("dynamodb", config=_CONFIG)


@dataclass(frozen=True, slots=True)
class SettledEvents:
    """The table of settled events, or None where SETTLED_EVENTS_TABLE is not set."""

    table: str

    def lookup(self, keys: Iterable[str], deadline: Deadline) -> dict[str, Settlement] | None:
        """The settled ones among `keys`; None when the table cannot be read in time (then nothing counts as
        settled, and nothing should be parked on the strength of the table this invocation)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Settlement] = {}
        try:
            for start in range(0, len(wanted), _BATCH_GET):
                request: dict[str, Any] = {
                    self.table: {
                        "Keys": [{"event": {"S": key}} for key in wanted[start : start + _BATCH_GET]],
                        "ProjectionExpression": "#e, settlement",
                        "ExpressionAttributeNames": {"#e": "event"},
                    }
                }
                while request:  # DynamoDB may hand back part of a batch as unprocessed
                    with bounded(deadline.left()):
                        answer = _dynamodb().batch_get_item(RequestItems=request)
                    for item in answer.get("Responses", {}).get(self.table, []):
                        settlement = item.get("settlement", {}).get("S")
                        if settlement in Settlement.__members__.values():
                            found[item["event"]["S"]] = Settlement(settlement)
                    request = answer.get("UnprocessedKeys") or {}
                    if request:
                        time.sleep(_UNPROCESSED_PAUSE)
        except (OutOfTime, Exception) as error:  # botocore's errors: the memory is lost, not the events
            logger.warning("settled events not read", extra={"error_type": type(error).__name__})
            return None
        return found

    def record(self, settled: Mapping[str, Settlement], deadline: Deadline) -> bool:
        """Remember `settled` (key -> settlement); False when not all of it could be written in time."""
        expires = str(int(time.time()) + TTL_SECONDS)
        items = [
            {
                "PutRequest": {
                    "Item": {"event": {"S": key}, "settlement": {"S": value.value}, "expires_at": {"N": expires}}
                }
            }
            for key, value in settled.items()
        ]
        try:
            for start in range(0, len(items), _BATCH_WRITE):
                request: dict[str, Any] = {self.table: items[start : start + _BATCH_WRITE]}
                while request:
                    with bounded(deadline.left()):
                        answer = _dynamodb().batch_write_item(RequestItems=request)
                    request = answer.get("UnprocessedItems") or {}
                    if request:
                        time.sleep(_UNPROCESSED_PAUSE)
        except (OutOfTime, Exception) as error:
            logger.warning("settled events not written", extra={"error_type": type(error).__name__})
            return False
        return True
