"""Buffered delivery's sender side: ingest messages merged into full Graph requests.

The webhook (DELIVERY_MODE=buffered) writes each batch's rendered events to the ingest queue, tagged with
what they were rendered for, in the parking queue's own message format (forwarder/parking.py). The sender
function receives many such messages at once (SQS event source), merges their events per destination (API,
version, dataset, test event code) into requests of up to the API's limit, and sends them with the same
sender, retries, token handling and isolation of rejected events as direct delivery. A message is done when
each of its events was delivered or parked; the others are reported back to SQS as failures, to be received
again, and after the queue's maxReceiveCount redriven to the parking queue, which replay reads.

Only the Conversions API may be buffered (forwarder/settings.py): a message received twice is counted once
by Meta (event_id), so a retry never double-counts what a previous receive delivered, and an event of a
failed message is never parked now (it is parked, if it must be, on the receive that settles its message).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forwarder.deadline import Deadline
from forwarder.isolation import send_isolating
from forwarder.outcome import DELIVERED, BatchOutcome, RequestOutcome
from forwarder.parking import MalformedPart, ParkingFailed, Request, park, read_part, recorded_destination
from forwarder.redaction import Redactor, raw_values
from forwarder.sender import MIN_ATTEMPT_SECONDS, Sender
from forwarder.settings import Settings, SettingsError
from forwarder.telemetry import logger

# A destination's least share of the invocation, when there is that much: one attempt and its answer.
MIN_GROUP_SECONDS = MIN_ATTEMPT_SECONDS + 1.0


@dataclass(slots=True)
class IngestOutcome:
    """What became of a batch of ingest messages: the ones SQS must deliver again, and the usual counts."""

    messages: int = 0
    failed: set[str] = field(default_factory=set)  # message ids to receive again
    malformed: Counter[str] = field(default_factory=Counter)  # what is wrong -> messages (failed too)
    parked_messages: int = 0  # messages some of whose events were parked
    parked_events: int = 0
    batch: BatchOutcome = field(default_factory=BatchOutcome)

    def summary(self) -> dict[str, Any]:
        return {
            **self.batch.summary(),
            "parked": self.parked_events,
            "messages": self.messages,
            "messages_failed": len(self.failed),
            "messages_malformed": dict(self.malformed),
            "messages_parked": self.parked_messages,
        }


@dataclass(slots=True)
class _Group:
    """The events of one destination, and the message each came from (by the event dict's identity)."""

    settings: Settings
    events: list[dict[str, Any]] = field(default_factory=list)
    source: dict[int, str] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    requests: list[RequestOutcome] = field(default_factory=list)


def deliver_messages(
    records: list[tuple[str, str]], settings: Settings, sender: Sender, park_by: Deadline
) -> IngestOutcome:
    """Deliver the events of `records` ((message id, body) pairs); returns what must be received again.
    Parking writes end by `park_by`."""
    result = IngestOutcome(messages=len(records))
    groups = list(_groups(records, settings, result).values())
    source: dict[int, str] = {}
    waiting = sum(len(group.events) for group in groups)
    for group in groups:
        source.update(group.source)
        redactor = Redactor(value for event in group.events for value in raw_values(event.get("user_data")))
        # Each destination gets a share of the time left by its events, so one that keeps failing cannot
        # starve the others; time a group does not use passes to the next.
        left = sender.deadline.left()
        share = Deadline.after(min(left, max(left * len(group.events) / waiting, MIN_GROUP_SECONDS)))
        waiting -= len(group.events)
        group_sender = dataclasses.replace(sender, settings=group.settings, deadline=share, retries=0)
        size = group.settings.profile.max_events_per_request
        for start in range(0, len(group.events), size):
            isolated = send_isolating(group_sender, group.events[start : start + size], redactor)
            group.requests += isolated.outcomes
            result.batch.isolation_requests += isolated.extra_requests
        result.batch.requests += group.requests
        result.batch.retries += group_sender.retries
    result.batch.received = len(source)
    _settle(result, groups, source, park_by)
    return result


def _groups(records: list[tuple[str, str]], settings: Settings, result: IngestOutcome) -> dict[tuple[Any, ...], _Group]:
    groups: dict[tuple[Any, ...], _Group] = {}
    for message_id, body in records:
        try:
            part = read_part(body)
            target = recorded_destination(settings, part.destination)
        except (MalformedPart, SettingsError) as problem:
            # It can never be sent: failed until the queue redrives it to the parking queue, where replay
            # sets it aside and counts it.
            result.malformed[str(problem)] += 1
            result.failed.add(message_id)
            continue
        if not target.profile.deduplicates:  # only a tampered message: the webhook never queues these
            result.malformed["the API does not de-duplicate resent events"] += 1
            result.failed.add(message_id)
            continue
        key = (target.api, target.api_version, target.event_set_id, target.test_event_code, target.upload_tag)
        group = groups.setdefault(key, _Group(target))
        for event in part.events:
            # SQS may deliver a message twice in one receive: each event_id goes once per request.
            event_id = event.get("event_id")
            if isinstance(event_id, str):
                if event_id in group.event_ids:
                    continue
                group.event_ids.add(event_id)
            group.events.append(event)
            group.source[id(event)] = message_id
    return groups


def _settle(result: IngestOutcome, groups: list[_Group], source: dict[int, str], park_by: Deadline) -> None:
    """Fail the messages with an event neither delivered nor to be parked; park the rest that must be, each
    destination's events with the settings they were rendered for (so replay sends them there, with their
    test event code).

    An event of a failed message is not parked now: its message is received again and resent with it, and
    is parked (if it must be) on the receive that settles its message, so it is never parked twice."""
    for request in result.batch.requests:
        if request.status != DELIVERED and not request.parking_reason:  # transient, token, not attempted...
            result.failed.update(source[id(event)] for event in request.payload)
    parked: set[str] = set()
    for group in groups:
        to_park: list[tuple[RequestOutcome, list[dict[str, Any]]]] = []
        for request in group.requests:
            if request.parking_reason:
                kept = [event for event in request.payload if source[id(event)] not in result.failed]
                if kept:
                    to_park.append((request, kept))
        if not to_park:
            continue
        messages = {source[id(event)] for _, kept in to_park for event in kept}
        try:
            park([Request(request.parking_reason or "", kept) for request, kept in to_park], group.settings, park_by)
        except ParkingFailed as problem:
            logger.warning("rejected events not parked; their messages come again", extra={"error": str(problem)})
            result.failed |= messages
            continue
        for request, kept in to_park:
            request.parked = True
            result.parked_events += len(kept)
        parked |= messages
    result.parked_messages = len(parked - result.failed)
