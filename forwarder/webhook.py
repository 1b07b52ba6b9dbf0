"""The webhook's side of delivery: one mParticle batch mapped, rendered and either delivered now (direct) or
written to the ingest queue for the buffered sender (DELIVERY_MODE=buffered).

Direct delivery hands the batch's events to the delivery core (forwarder/delivery.py) as one unit: the
batch, which mParticle resends whole when the answer is 408/429/5xx. The verdict over what became of it
is the HTTP status the handler answers (docs: "HTTP contract").
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forwarder.batch import Batch
from forwarder.deadline import Deadline
from forwarder.delivery import deliver
from forwarder.destination import DEFAULT_CONNECTION, Destination
from forwarder.graph_client import ErrorClass
from forwarder.mapping import map_batch
from forwarder.outcome import (
    PARKING_FAILED,
    VERDICT_RULES,
    Delivery,
    Outgoing,
    RequestOutcome,
    Rule,
    Unit,
    Verdict,
    rule_for,
)
from forwarder.parking import ParkingFailed, Reason, enqueue
from forwarder.posting import Poster
from forwarder.redaction import user_values
from forwarder.render import keys_sent, render_events
from forwarder.settings import Settings, SettingsError
from forwarder.telemetry import logger

# An ingest message's reason: it shows in replay's report only if the queue redrove it to the parking queue.
QUEUED = Reason("queued for the sender function; redriven here after failing on every receive")
BATCH = "batch"  # the one unit of a webhook batch


@dataclass(slots=True)
class BatchOutcome:
    """What became of one batch: its mapping's counts and, when it was delivered directly, the delivery."""

    connection: str = DEFAULT_CONNECTION
    received: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)  # reason -> events forwarded with a change
    match_keys: tuple[str, ...] = ()  # the user's keys every event sent carried (neutral names)
    delivery: Delivery = field(default_factory=Delivery)

    def _deciding(self) -> tuple[Rule, RequestOutcome | None] | None:
        """The rule that makes the verdict and the request that decided it; None: delivered."""
        delivery = self.delivery
        status = delivery.resend.get(BATCH)
        if status is not None:
            return rule_for(status), next((r for r in delivery.requests if r.status == status), None)
        # A rejection of a whole request is the answer; an event rejected alone (its neighbours delivered
        # without it) is not, unless nothing at all was delivered.
        rejected = [request for request in delivery.requests if request.status == ErrorClass.INVALID]
        whole = next((request for request in rejected if not request.isolated), None)
        if whole is not None or (delivery.forwarded == 0 and (rejected or delivery.parked_earlier)):
            return VERDICT_RULES[-1], whole or (rejected[0] if rejected else None)
        return None

    @property
    def verdict(self) -> Verdict:
        deciding = self._deciding()
        return Verdict.DELIVERED if deciding is None else deciding[0].verdict

    def problem(self) -> str | None:
        """One sentence naming what went wrong, for the error body; None when all was delivered."""
        deciding = self._deciding()
        if deciding is None:
            return None
        rule, request = deciding
        if request is None:
            detail = self.delivery.parking_failure or "every event was settled by an earlier attempt"
            return f"{rule.problem}: {detail}"
        code = f" (code {request.code})" if request.code is not None else ""
        return f"{rule.problem}{code}: {request.error or 'not sent: no time left in this invocation'}"

    def summary(self) -> dict[str, Any]:
        delivery = self.delivery.summary()
        forwarded = delivery["forwarded"] - delivery["settled_earlier"]["forwarded"]  # by this invocation
        return {
            "connection": self.connection,
            "received": self.received,
            "skipped": dict(self.skipped),
            "adjusted": dict(self.adjusted),
            "match_keys": dict.fromkeys(self.match_keys, forwarded) if forwarded else {},
            **delivery,
        }


def prepare(batch: Batch, settings: Settings, now: float | None = None) -> tuple[list[dict[str, Any]], BatchOutcome]:
    """The batch's events rendered for the chosen API, and its outcome so far (received, skipped, adjusted)."""
    # From here on every log line (parking, warnings, the summary) carries the mParticle batch's ids.
    logger.append_keys(
        connection=settings.connection, batch_id=batch.batch_id, source_request_id=batch.source_request_id
    )
    mapped = map_batch(batch, settings, time.time() if now is None else now)
    events, unmatched = render_events(mapped, settings)
    outcome = BatchOutcome(
        connection=settings.connection,
        received=mapped.received,
        skipped=mapped.skipped + unmatched,
        adjusted=mapped.adjusted,
        match_keys=keys_sent(mapped.keys, settings.profile),
    )
    return events, outcome


def deliver_batch(
    batch: Batch, settings: Settings, poster: Poster, send_by: Deadline, park_by: Deadline, now: float | None = None
) -> BatchOutcome:
    """Direct delivery: map, send and park what needs it (requests by `send_by`, parking writes by `park_by`).
    Raises ParkingFailed when events that must be parked could not be (the batch is answered 503)."""
    events, outcome = prepare(batch, settings, now)
    unit = Unit(BATCH, batch.batch_id, batch.source_request_id)
    outcome.delivery = deliver(
        [Outgoing(destination, event, unit) for destination, event in _fanned_out(settings, batch, events)],
        poster,
        send_by,
        park_by,
        settings.parking_queue_url,
        personal=user_values(batch.user),
        resend_partial=True,
        settled=settings.settled_events,
    )
    if outcome.delivery.resend.get(BATCH) == PARKING_FAILED:
        raise ParkingFailed(outcome.delivery.parking_failure or "could not park undeliverable events in SQS")
    return outcome


def _fanned_out(
    settings: Settings, batch: Batch, events: list[dict[str, Any]]
) -> list[tuple[Destination, dict[str, Any]]]:
    """Each event with each of its destinations, worked out once per event name (a batch repeats a few)."""
    by_name: dict[str, tuple[Destination, ...]] = {}
    pairs = []
    for event in events:
        name = event["event_name"]
        if (destinations := by_name.get(name)) is None:
            destinations = by_name[name] = settings.destinations(name, batch.development)
        pairs += [(destination, event) for destination in destinations]
    return pairs


def queue_batch(batch: Batch, settings: Settings, deadline: Deadline, now: float | None = None) -> dict[str, Any]:
    """Buffered delivery's webhook side: the rendered events written to the ingest queue (each write by
    `deadline`), nothing sent to Facebook; the summary to answer. Raises ParkingFailed (answered 503)."""
    if settings.ingest_queue_url is None:
        raise SettingsError("INGEST_QUEUE_URL is required when DELIVERY_MODE=buffered")
    events, outcome = prepare(batch, settings, now)
    by_destination: dict[Destination, list[dict[str, Any]]] = {}
    for destination, event in _fanned_out(settings, batch, events):
        by_destination.setdefault(destination, []).append(event)
    messages = 0
    for destination, queued in by_destination.items():
        messages += enqueue(
            settings.ingest_queue_url, destination, queued, QUEUED, deadline, batch.batch_id, batch.source_request_id
        )
    return {
        "connection": settings.connection,
        "received": outcome.received,
        "queued": sum(len(queued) for queued in by_destination.values()),
        "messages": messages,
        "skipped": dict(outcome.skipped),
        "adjusted": dict(outcome.adjusted),
        "destinations": [
            {"dataset": destination.dataset_id, "queued": len(queued)} for destination, queued in by_destination.items()
        ],
        # Counted where the user's keys are known: the sender sees only hashed, rendered events.
        "match_keys": dict.fromkeys(outcome.match_keys, len(events)) if events else {},
    }
