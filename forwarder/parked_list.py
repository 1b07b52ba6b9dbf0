"""What is parked, without sending, deleting or hiding anything: `python -m forwarder.replay --list`
(`make parked`), the first step of the runbook from the parking alarm to a replay (docs/deploy.md).

Every message of the parking queue is received and held invisible only while the listing runs (replay's
heartbeat keeps them so; forwarder/held_messages.py), then made visible again at once, so a replay right
after it finds every set. The listing holds counts, Meta's codes, dataset ids, set ids (digests), times and
the reasons as they were parked — Facebook's text already cleaned of personal values when it was parked
(forwarder/redaction.py) — and never an event's keys or custom data.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forwarder.held_messages import VISIBILITY_TIMEOUT, HeldMessages, sqs_call
from forwarder.parked_messages import MalformedPart, ParkedPart, read_part

HOUR = 3600
AGES = ((HOUR, "under 1 hour"), (24 * HOUR, "1 to 24 hours"), (7 * 24 * HOUR, "1 to 7 days"))
OLDER = "over 7 days"
REASON_WIDTH = 160


@dataclass
class ParkedSet:
    """One parked set as far as the listing saw it (a set cut short shows fewer parts than it has)."""

    set_id: str
    connection: str
    dataset: str
    parts: int
    seen: set[int] = field(default_factory=set)
    events: int = 0
    codes: Counter[str] = field(default_factory=Counter)  # "code/subcode" -> events
    oldest: int | None = None  # event_time, Unix seconds
    newest: int | None = None
    parked_at: int = 0

    def add(self, part: ParkedPart) -> None:
        if part.part in self.seen:
            return  # a copy SQS stored twice: replay sends it once, so it counts once
        self.seen.add(part.part)
        self.events += len(part.events)
        self.parked_at = max(self.parked_at, part.parked_at)
        for event, reason in zip(part.events, part.reasons, strict=True):
            self.codes[f"{reason.code or '-'}/{reason.subcode or '-'}"] += 1
            stamp = event.get("event_time")
            if type(stamp) is int:
                self.oldest = stamp if self.oldest is None else min(self.oldest, stamp)
                self.newest = stamp if self.newest is None else max(self.newest, stamp)


@dataclass
class Listing:
    messages: int = 0
    sets: dict[str, ParkedSet] = field(default_factory=dict)
    malformed: Counter[str] = field(default_factory=Counter)  # what is wrong -> messages (never sent)
    by_reason: Counter[str] = field(default_factory=Counter)  # events
    by_connection: Counter[str] = field(default_factory=Counter)
    by_dataset: Counter[str] = field(default_factory=Counter)
    by_age: Counter[str] = field(default_factory=Counter)

    def take(self, part: ParkedPart, now: float) -> None:
        destination = part.destination
        parked = self.sets.setdefault(
            part.set_id, ParkedSet(part.set_id, destination.connection, destination.dataset_id, part.parts)
        )
        if part.part in parked.seen:
            return
        parked.add(part)
        events = len(part.events)
        self.by_connection[destination.connection] += events
        self.by_dataset[destination.dataset_id] += events
        self.by_age[_age(now - part.parked_at)] += events
        for reason in part.reasons:
            self.by_reason[reason.text[:REASON_WIDTH]] += 1


def _age(seconds: float) -> str:
    return next((name for limit, name in AGES if seconds < limit), OLDER)


def list_parked(sqs: Any, queue_url: str, now: float | None = None) -> Listing:
    """Every message of the queue read and counted, then visible again. Raises ReplayFailed."""
    listing = Listing()
    with HeldMessages(sqs, queue_url) as holding:
        while True:
            received = sqs_call(
                sqs.receive_message,
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=VISIBILITY_TIMEOUT,
                WaitTimeSeconds=1,
            ).get("Messages", [])
            if not received:
                break
            for message in received:
                holding.hold(message["ReceiptHandle"])
                listing.messages += 1
                try:
                    listing.take(read_part(message["Body"]), time.time() if now is None else now)
                except MalformedPart as problem:
                    listing.malformed[str(problem)] += 1
    return listing


def _when(stamp: int | None) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M") if stamp is not None else "-"


def _counts(title: str, counts: Counter[str]) -> list[str]:
    return [f"{title}:", *(f"  {count:>8}  {name}" for name, count in counts.most_common())]


def render(listing: Listing) -> str:
    """The listing as text an operator reads: totals, counts by reason, connection, dataset and age, then
    one line per set."""
    events = sum(parked.events for parked in listing.sets.values())
    lines = [f"parked: {len(listing.sets)} sets, {events} events, in {listing.messages} messages"]
    if listing.malformed:
        lines += _counts("set aside, never sent (messages)", listing.malformed)
    lines += _counts("events by reason", listing.by_reason)
    lines += _counts("events by connection", listing.by_connection)
    lines += _counts("events by dataset", listing.by_dataset)
    lines += _counts("events by age", listing.by_age)
    lines.append("sets:")
    lines.append(
        f"  {'set':<16}  {'events':>6}  {'parts':>5}  {'connection':<16}  {'dataset':<16}  "
        f"{'oldest event':<16}  {'newest event':<16}  code/subcode"
    )
    for parked in sorted(listing.sets.values(), key=lambda item: item.parked_at):
        codes = ", ".join(f"{code} ({count})" for code, count in parked.codes.most_common())
        lines.append(
            f"  {parked.set_id[:16]}  {parked.events:>6}  {len(parked.seen):>2}/{parked.parts:<2}  "
            f"{parked.connection:<16}  {parked.dataset:<16}  {_when(parked.oldest):<16}  {_when(parked.newest):<16}  "
            f"{codes}"
        )
    return "\n".join(lines)
