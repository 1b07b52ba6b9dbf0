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
from forwarder.mapping import map_batch
from forwarder.outcome import DELIVERED, BatchOutcome, RequestOutcome
from forwarder.parking import Request, park
from forwarder.redaction import Redactor, user_values
from forwarder.render import render_events
from forwarder.sender import Sender
from forwarder.settings import Settings
from forwarder.telemetry import logger


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


def deliver(
    batch: Batch, settings: Settings, sender: Sender, park_by: Deadline, now: float | None = None
) -> BatchOutcome:
    """Map, send and park what needs it (writes end by `park_by`); raises ParkingFailed."""
    # From here on every log line (parking, warnings, the summary) carries the mParticle batch's ids.
    logger.append_keys(batch_id=batch.batch_id, source_request_id=batch.source_request_id)
    # TEST_EVENT_CODE goes with development batches only: requests, and parked events replayed later.
    settings = sender.settings = settings.for_batch(batch.development)
    mapped = map_batch(batch, settings, time.time() if now is None else now)
    events, unmatched = render_events(mapped, settings)
    outcome = BatchOutcome(
        received=mapped.received,
        skipped=mapped.skipped + unmatched,
        adjusted=mapped.adjusted,
        batch_id=batch.batch_id,
        source_request_id=batch.source_request_id,
    )
    chunks = _chunks(events, settings.profile.max_events_per_request)
    # Requests never attempted stay NOT_ATTEMPTED, so the answer is one mParticle retries.
    outcome.requests = [RequestOutcome(events=len(chunk), payload=chunk) for chunk in chunks]
    redactor = Redactor(user_values(batch.user, mapped.keys.madid))
    for index, chunk in enumerate(chunks):
        result = outcome.requests[index] = sender.send(chunk, redactor)
        if result.status in (ErrorClass.TOKEN, ErrorClass.PERMISSION):
            break  # without a valid token or permission every later request fails the same way
    outcome.retries = sender.retries
    if to_park := _to_park(outcome, settings):
        logger.warning("parking events mParticle will not resend", extra={"events": sum(r.events for r in to_park)})
        requests = [Request(_parking_reason(request), request.payload) for request in to_park]
        park(requests, settings, park_by, outcome.batch_id, outcome.source_request_id)
        for request in to_park:
            request.parked = True
    return outcome
