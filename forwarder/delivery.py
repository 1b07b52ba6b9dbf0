"""Delivering a batch: parse, map, render, send in chunks with retries, and judge the outcome.

The retry budget is the invocation's own deadline (passed in by the handler), so a retry never
outlives the Lambda; what could not be sent in time is answered with a status mParticle retries.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from forwarder.batch import BatchError, read_batch
from forwarder.deadline import Deadline
from forwarder.graph_client import CONNECT_TIMEOUT, ErrorClass, GraphClient, GraphError
from forwarder.mapping import map_batch
from forwarder.parking import Request, park
from forwarder.redaction import Redactor, user_values
from forwarder.render import render_events, request_fields
from forwarder.secrets import Credentials
from forwarder.settings import Settings
from forwarder.telemetry import logger

MIN_READ_TIMEOUT = 1.0
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0
RETRY_AFTER_SECONDS = 60
NOT_ATTEMPTED = "not_attempted"
DELIVERED = "delivered"


class Verdict(StrEnum):
    """What the batch's sender should do; the handler turns it into an HTTP status."""

    DELIVERED = "delivered"
    RETRY_LATER = "retry_later"  # transient failure, retries ran out of time
    OPERATOR_MUST_ACT = "operator_must_act"  # token invalid even after re-reading, or no permission
    REJECTED = "rejected"  # Facebook refused the payload itself


_PROBLEMS = {
    Verdict.RETRY_LATER: "Facebook failed transiently and retries ran out of time",
    Verdict.OPERATOR_MUST_ACT: "Facebook refused the access token or its permissions; fix the secret or the token",
    Verdict.REJECTED: "Facebook rejected the events as invalid",
}


@dataclass(slots=True)
class RequestOutcome:
    """What happened to one Graph request (one chunk of the batch)."""

    events: int
    status: str = NOT_ATTEMPTED  # DELIVERED, NOT_ATTEMPTED or an ErrorClass value
    attempts: int = 0
    accepted: int | None = None
    error: str | None = None
    code: int | None = None
    fbtrace_id: str | None = None
    latency_ms: float | None = None
    parked: bool = False
    payload: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the rendered events sent

    @property
    def parking_reason(self) -> str | None:
        """Why this request's events must be parked, or None: only answers mParticle will not retry."""
        if self.status == ErrorClass.INVALID:
            code = f" (code {self.code})" if self.code is not None else ""
            return f"rejected by Facebook{code}: {self.error}"
        if self.status == DELIVERED and self.accepted is not None and self.accepted < self.events:
            return f"Facebook processed {self.accepted} of {self.events} events"
        return None

    @property
    def settled(self) -> bool:
        """Facebook took it, or a copy is parked: nothing about it asks mParticle to resend."""
        return self.status == DELIVERED or self.parked

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "events": self.events,
            "status": self.status,
            "attempts": self.attempts,
            "accepted": self.accepted,
            "error": self.error,
            "error_class": self.status if self.status not in (DELIVERED, NOT_ATTEMPTED) else None,
            "code": self.code,
            "fbtrace_id": self.fbtrace_id,
            "latency_ms": self.latency_ms,
            "parked": self.parked or None,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(slots=True)
class BatchOutcome:
    received: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)  # reason -> events forwarded with a change
    requests: list[RequestOutcome] = field(default_factory=list)
    retries: int = 0
    batch_id: str | None = None
    source_request_id: str | None = None

    @property
    def forwarded(self) -> int:
        """Events Facebook acknowledged (its own count when it gives one)."""
        return sum(
            request.events if request.accepted is None else min(request.accepted, request.events)
            for request in self.requests
            if request.status == DELIVERED
        )

    def failed(self, *statuses: str) -> list[RequestOutcome]:
        return [request for request in self.requests if request.status in statuses]

    @property
    def verdict(self) -> Verdict:
        """Parked requests are settled; a rejection stays REJECTED (the contract's 422) even once parked."""
        statuses = {request.status for request in self.requests if not request.parked}
        if statuses & {ErrorClass.TOKEN, ErrorClass.PERMISSION}:
            return Verdict.OPERATOR_MUST_ACT
        if statuses & {ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, NOT_ATTEMPTED}:
            return Verdict.RETRY_LATER
        if any(request.status == ErrorClass.INVALID for request in self.requests):
            return Verdict.REJECTED
        return Verdict.DELIVERED

    def problem(self) -> str | None:
        """One sentence naming what went wrong, for the error body; None when all was delivered."""
        verdict = self.verdict
        if verdict is Verdict.DELIVERED:
            return None
        wanted = {
            Verdict.OPERATOR_MUST_ACT: (ErrorClass.TOKEN, ErrorClass.PERMISSION),
            Verdict.RETRY_LATER: (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, NOT_ATTEMPTED),
            Verdict.REJECTED: (ErrorClass.INVALID,),
        }[verdict]
        first = self.failed(*wanted)[0]
        code = f" (code {first.code})" if first.code is not None else ""
        detail = first.error or "not sent: no time left in this invocation"
        return f"{_PROBLEMS[verdict]}{code}: {detail}"

    @property
    def parked(self) -> int:
        return sum(request.events for request in self.requests if request.parked)

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "forwarded": self.forwarded,
            "parked": self.parked,
            "skipped": dict(self.skipped),
            "adjusted": dict(self.adjusted),
            "requests": [request.as_dict() for request in self.requests],
            "retries": self.retries,
        }


class TokenSource:
    """The credentials in force, re-read at most once per invocation after a token error."""

    def __init__(self, credentials: Credentials, reread: Callable[[], Credentials]) -> None:
        self.credentials = credentials
        self._reread = reread
        self._reread_done = False

    def refresh(self) -> bool:
        """True when a re-read gave a different token worth trying."""
        if self._reread_done:
            return False
        self._reread_done = True
        previous = self.credentials.access_token
        self.credentials = self._reread()
        return self.credentials.access_token != previous


def parse_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        # orjson's message gives the position, not the content.
        raise BatchError(f"the body is not valid JSON: {error}") from None


def _backoff(attempt: int) -> float:
    """Exponential with equal jitter, so a burst of retries from many containers spreads out."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class Sender:
    """Sends chunks for one invocation; every attempt, wait and retry ends by `deadline`."""

    settings: Settings
    tokens: TokenSource
    client: GraphClient
    deadline: Deadline
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0

    def _body(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        credentials = self.tokens.credentials
        body = {"access_token": credentials.access_token, **request_fields(self.settings), "data": events}
        if proof := credentials.appsecret_proof():
            body["appsecret_proof"] = proof
        return body

    def _time_left(self) -> float:
        return self.deadline.left()

    def send(self, events: list[dict[str, Any]], redactor: Redactor) -> RequestOutcome:
        """One request's events, retried within the deadline; `redactor` knows the batch's personal values."""
        outcome = RequestOutcome(events=len(events), payload=events)
        while self._time_left() >= CONNECT_TIMEOUT + MIN_READ_TIMEOUT:
            outcome.attempts += 1
            credentials = self.tokens.credentials
            try:
                accepted = self.client.post(
                    self.settings.events_url,
                    self._body(events),
                    time_limit=self._time_left(),
                    redact=redactor.with_values(credentials.secret_values()),
                    count_field=self.settings.profile.accepted_count_field,
                )
            except GraphError as error:
                outcome.status, outcome.error, outcome.code = error.error_class.value, error.message, error.code
                outcome.fbtrace_id = error.fbtrace_id
                if not self._should_retry(error, outcome.attempts):
                    return outcome
                self.retries += 1
                continue
            outcome.status, outcome.accepted = DELIVERED, accepted.count
            outcome.fbtrace_id, outcome.latency_ms = accepted.fbtrace_id, accepted.latency_ms
            outcome.error = outcome.code = None
            return outcome
        if outcome.attempts:
            outcome.error = f"{outcome.error} (retries ran out of time)"
        return outcome

    def _should_retry(self, error: GraphError, attempts: int) -> bool:
        if error.error_class is ErrorClass.TOKEN:
            # The token may have been rotated since this container cached it. A failed re-read raises
            # SecretUnavailable/SecretInvalid to the handler (503/502): mParticle retries either way.
            return self.tokens.refresh()
        if not error.error_class.retryable:
            return False
        delay = _backoff(attempts)
        if self._time_left() - delay < CONNECT_TIMEOUT + MIN_READ_TIMEOUT:
            return False
        self.sleep(delay)
        return True


def _chunks(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[start : start + size] for start in range(0, len(events), size)]


def _to_park(outcome: BatchOutcome, settings: Settings) -> list[RequestOutcome]:
    """The requests to park, or none when the answer is one mParticle retries (it resends the whole batch,
    so a copy now would be parked twice).

    Without Meta's de-duplication (the Offline Conversions API), resending a batch of which Facebook took
    a part counts that part twice: then everything not delivered is parked instead, and the answer is final.
    """
    pending = [request for request in outcome.requests if request.status != DELIVERED]
    must_resend = any(request.status != ErrorClass.INVALID for request in pending)
    if must_resend:
        delivered_part = any(request.status == DELIVERED for request in outcome.requests)
        return pending if delivered_part and not settings.profile.deduplicates else []
    return [request for request in outcome.requests if request.parking_reason]


def _parking_reason(request: RequestOutcome) -> str:
    if reason := request.parking_reason:
        return reason
    detail = request.error or "not sent: no time left in this invocation"
    return f"not delivered ({request.status}): {detail}; parked because Facebook took another part of the batch"


def deliver(body: Any, settings: Settings, sender: Sender, park_by: Deadline, now: float | None = None) -> BatchOutcome:
    """Map, send and park what needs it (writes end by `park_by`); raises BatchError or ParkingFailed."""
    batch = read_batch(body)
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
    )
    chunks = _chunks(events, settings.profile.max_events_per_request)
    # Requests never attempted stay NOT_ATTEMPTED, so the answer is one mParticle retries.
    outcome.requests = [RequestOutcome(events=len(chunk), payload=chunk) for chunk in chunks]
    redactor = Redactor(user_values(batch.user))
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
