"""Buffered delivery's sender side: queued messages merged into full Graph requests by the delivery core.

The webhook (DELIVERY_MODE=buffered, forwarder/webhook.py `queue_batch`) writes each batch's rendered events
to the ingest queue with their destination, in the parking queue's own message format (forwarder/
parking.py). The sender function receives many such messages at once (SQS event source) and hands their
events to the delivery core (forwarder/delivery.py), each message a unit: the core merges them per
destination into requests of up to the API's limit, de-duplicates, isolates and parks. A message is done
when each of its events was delivered or parked; the others are reported back to SQS as failures, to be
received again, and after the queue's maxReceiveCount redriven to the parking queue, which replay reads.

Only the Conversions API may be buffered (forwarder/settings.py): a message received twice is counted once
by Meta (event_id), so a retry never double-counts what a previous receive delivered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forwarder.connections import Connections
from forwarder.deadline import Deadline
from forwarder.delivery import deliver
from forwarder.outcome import Delivery, Outgoing, Unit
from forwarder.parked_messages import MalformedPart, read_part
from forwarder.posting import Poster


@dataclass(slots=True)
class QueuedOutcome:
    """What became of a receive of queued messages: the ones SQS must deliver again, and the usual counts."""

    messages: int = 0
    failed: set[str] = field(default_factory=set)  # message ids to receive again
    malformed: Counter[str] = field(default_factory=Counter)  # what is wrong -> messages (failed too)
    parked_messages: int = 0  # settled messages some of whose events were parked
    received: int = 0  # events in the messages read
    delivery: Delivery = field(default_factory=Delivery)

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            **self.delivery.summary(),
            "messages": self.messages,
            "messages_failed": len(self.failed),
            "messages_malformed": dict(self.malformed),
            "messages_parked": self.parked_messages,
        }


def deliver_queued(
    records: list[tuple[str, str, int]],
    connections: Connections,
    poster: Poster,
    send_by: Deadline,
    park_by: Deadline,
) -> QueuedOutcome:
    """Deliver the events of `records` ((message id, body, receive count) triples), each to its connection's
    dataset with its connection's token; returns what must be received again. A message on its last receive
    (INGEST_MAX_RECEIVE_COUNT, the queue's maxReceiveCount) is settled here, what of it is undelivered parked
    with its reason, rather than redriven whole to the parking queue beside events already parked alone."""
    result = QueuedOutcome(messages=len(records))
    last = connections.default.ingest_max_receive_count
    final = {message_id for message_id, _, receives in records if last is not None and receives >= last}
    items: list[Outgoing] = []
    for message_id, body, _ in records:
        try:
            part = read_part(body)
        except MalformedPart as problem:
            # It can never be sent: failed until the queue redrives it to the parking queue, where replay
            # sets it aside and counts it.
            result.malformed[str(problem)] += 1
            result.failed.add(message_id)
            continue
        if not part.destination.profile.deduplicates:  # only a tampered message: the webhook never queues these
            result.malformed["the API does not de-duplicate resent events"] += 1
            result.failed.add(message_id)
            continue
        try:
            # One connection's token never goes to another connection's dataset: such a message (altered, or
            # queued before the datasets moved) fails, and is replayed from the parking queue once redriven.
            connections.current(part.destination, as_recorded=True)
        except ValueError:
            result.malformed["its connection is gone, or its dataset is another connection's"] += 1
            result.failed.add(message_id)
            continue
        unit = Unit(message_id, part.batch_id, part.source_request_id)
        items += [Outgoing(part.destination, event, unit) for event in part.events]
        result.received += len(part.events)
    settings = connections.default
    result.delivery = deliver(
        items, poster, send_by, park_by, settings.parking_queue_url, final=final, settled=settings.settled_events
    )
    result.failed |= set(result.delivery.resend)
    result.parked_messages = len(result.delivery.parked_units - result.failed)
    return result
