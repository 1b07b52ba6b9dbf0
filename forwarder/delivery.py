"""Delivering a batch: map, render, send in chunks, and park what mParticle will not resend.

The sender carries the invocation's deadline (forwarder/sender.py), so nothing here outlives the
Lambda; what could not be sent in time is left for an answer mParticle retries.
"""

from __future__ import annotations

import time
from typing import Any

from forwarder.batch import Batch
from forwarder.deadline import Deadline
from forwarder.graph_client import ErrorClass
from forwarder.isolation import send_isolating
from forwarder.mapping import Mapped, map_batch
from forwarder.outcome import DELIVERED, BatchOutcome, RequestOutcome
from forwarder.parking import Request, enqueue, park
from forwarder.redaction import Redactor, user_values
from forwarder.render import keys_sent, render_events
from forwarder.sender import Sender
from forwarder.settings import Settings, SettingsError
from forwarder.telemetry import logger

# An ingest message's reason: it shows in replay's report only if the queue redrove it to the parking queue.
QUEUED = "queued for the sender function; redriven here after failing on every receive"


def _chunks(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[start : start + size] for start in range(0, len(events), size)]


def _to_park(outcome: BatchOutcome, settings: Settings) -> list[RequestOutcome]:
    """The requests to park, or none when the answer is one mParticle retries (it resends the whole batch,
    so a copy now would be parked twice).

    Without Meta's de-duplication (the Offline Conversions API), resending a batch of which Facebook took
    a part counts that part twice: then everything not delivered is parked instead, and the answer is final.
    """
    final = [request for request in outcome.requests if request.parking_reason]  # rejected, or taken in part
    must_resend = any(request.status not in (DELIVERED, ErrorClass.INVALID) for request in outcome.requests)
    if not must_resend:
        return final
    delivered_part = any(request.status == DELIVERED for request in outcome.requests)
    if not delivered_part or settings.profile.deduplicates:
        return []
    return [request for request in outcome.requests if not request.taken]


def _parking_reason(request: RequestOutcome) -> str:
    if reason := request.parking_reason:
        return reason
    detail = request.error or "not sent: no time left in this invocation"
    return f"not delivered ({request.status}): {detail}; parked because Facebook took another part of the batch"


def prepare(
    batch: Batch, settings: Settings, now: float | None = None
) -> tuple[list[dict[str, Any]], BatchOutcome, Mapped]:
    """The batch's events rendered for the chosen API, its outcome so far (received, skipped, adjusted), and
    the mapped batch."""
    # From here on every log line (parking, warnings, the summary) carries the mParticle batch's ids.
    logger.append_keys(batch_id=batch.batch_id, source_request_id=batch.source_request_id)
    mapped = map_batch(batch, settings, time.time() if now is None else now)
    events, unmatched = render_events(mapped, settings)
    outcome = BatchOutcome(
        received=mapped.received,
        skipped=mapped.skipped + unmatched,
        adjusted=mapped.adjusted,
        batch_id=batch.batch_id,
        source_request_id=batch.source_request_id,
        match_keys=keys_sent(mapped.keys, settings.profile),
    )
    return events, outcome, mapped


def queue(batch: Batch, settings: Settings, deadline: Deadline, now: float | None = None) -> dict[str, Any]:
    """Buffered delivery's webhook side: the rendered events written to the ingest queue (each write by
    `deadline`), nothing sent to Facebook; the summary to answer. Raises ParkingFailed (answered 503)."""
    # TEST_EVENT_CODE goes with development batches only: the queued events record it for the sender.
    settings = settings.for_batch(batch.development)
    if settings.ingest_queue_url is None:
        raise SettingsError("INGEST_QUEUE_URL is required when DELIVERY_MODE=buffered")
    events, outcome, _ = prepare(batch, settings, now)
    messages = 0
    if events:
        messages = enqueue(
            events, QUEUED, settings.ingest_queue_url, settings, deadline, batch.batch_id, batch.source_request_id
        )
    summary = outcome.summary()
    return {
        "received": summary["received"],
        "queued": len(events),
        "messages": messages,
        "skipped": summary["skipped"],
        "adjusted": summary["adjusted"],
        # Counted where the user's keys are known: the sender sees only hashed, rendered events.
        "match_keys": dict.fromkeys(outcome.match_keys, len(events)) if events else {},
    }


def deliver(
    batch: Batch, settings: Settings, sender: Sender, park_by: Deadline, now: float | None = None
) -> BatchOutcome:
    """Map, send and park what needs it (writes end by `park_by`); raises ParkingFailed."""
    # TEST_EVENT_CODE goes with development batches only: requests, and parked events replayed later.
    settings = sender.settings = settings.for_batch(batch.development)
    events, outcome, mapped = prepare(batch, settings, now)
    redactor = Redactor(user_values(batch.user, *mapped.keys.unhashed()))
    stopped = False
    for chunk in _chunks(events, settings.profile.max_events_per_request):
        if stopped:  # without a valid token or permission every later request fails the same way
            outcome.requests.append(RequestOutcome(events=len(chunk), payload=chunk))  # NOT_ATTEMPTED: resent
            continue
        isolated = send_isolating(sender, chunk, redactor)
        outcome.requests += isolated.outcomes
        outcome.isolation_requests += isolated.extra_requests
        stopped = any(request.status in (ErrorClass.TOKEN, ErrorClass.PERMISSION) for request in isolated.outcomes)
    outcome.retries = sender.retries
    if to_park := _to_park(outcome, settings):
        logger.warning("parking events mParticle will not resend", extra={"events": sum(r.events for r in to_park)})
        requests = [Request(_parking_reason(request), request.payload) for request in to_park]
        park(requests, settings, park_by, outcome.batch_id, outcome.source_request_id)
        for request in to_park:
            request.parked = True
    return outcome
