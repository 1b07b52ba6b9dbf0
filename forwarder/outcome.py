"""What happened to a batch: one outcome per Graph request, and the verdict over them.

The verdict is what the batch's sender must do next; the handler turns it into an HTTP status
(README, "HTTP contract"). It comes from one table, `VERDICT_RULES`, which also names the problem.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from forwarder.graph_client import ErrorClass

NOT_ATTEMPTED = "not_attempted"
DELIVERED = "delivered"


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY_LATER = "retry_later"  # transient failure, retries ran out of time
    OPERATOR_MUST_ACT = "operator_must_act"  # token invalid even after re-reading, or no permission
    REJECTED = "rejected"  # Facebook refused the payload itself


@dataclass(frozen=True, slots=True)
class Rule:
    verdict: Verdict
    statuses: frozenset[str]
    problem: str
    counts_parked: bool  # a parked request is settled: only a rejection still says so once parked


# First match wins: a request with one of `statuses` makes the batch's verdict.
VERDICT_RULES = (
    Rule(
        Verdict.OPERATOR_MUST_ACT,
        frozenset({ErrorClass.TOKEN, ErrorClass.PERMISSION}),
        "Facebook refused the access token or its permissions; fix the secret or the token",
        counts_parked=False,
    ),
    Rule(
        Verdict.RETRY_LATER,
        frozenset({ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, NOT_ATTEMPTED}),
        "Facebook failed transiently and retries ran out of time",
        counts_parked=False,
    ),
    Rule(
        Verdict.REJECTED,
        frozenset({ErrorClass.INVALID}),
        "Facebook rejected the events as invalid",
        counts_parked=True,
    ),
)


@dataclass(slots=True)
class RequestOutcome:
    """What happened to one Graph request (one chunk of the batch)."""

    events: int
    status: str = NOT_ATTEMPTED  # DELIVERED, NOT_ATTEMPTED or an ErrorClass value
    attempts: int = 0
    accepted: int | None = None
    error: str | None = None
    code: int | None = None
    subcode: int | None = None
    index: int | None = None  # the event Facebook's error blamed, when it named one (not reported)
    fbtrace_id: str | None = None
    latency_ms: float | None = None
    parked: bool = False
    isolated: bool = False  # a rejected event on its own: its neighbours were sent without it
    payload: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the rendered events sent

    @property
    def taken(self) -> bool:
        """Facebook accepted all of it."""
        return self.status == DELIVERED and self.accepted is not None and self.accepted >= self.events

    @property
    def parking_reason(self) -> str | None:
        """Why this request's events must be parked, or None: only answers mParticle will not retry."""
        if self.status == ErrorClass.INVALID:
            numbers = ", ".join(
                f"{name} {value}" for name, value in (("code", self.code), ("subcode", self.subcode)) if value
            )
            return (
                f"rejected by Facebook ({numbers}): {self.error}" if numbers else f"rejected by Facebook: {self.error}"
            )
        if self.status == DELIVERED and not self.taken:
            return f"Facebook processed {self.accepted} of {self.events} events"
        return None

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "events": self.events,
            "status": self.status,
            "attempts": self.attempts,
            "accepted": self.accepted,
            "error": self.error,
            "error_class": self.status if self.status not in (DELIVERED, NOT_ATTEMPTED) else None,
            "code": self.code,
            "subcode": self.subcode,
            "fbtrace_id": self.fbtrace_id,
            "latency_ms": self.latency_ms,
            "parked": self.parked or None,
            "isolated": self.isolated or None,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(slots=True)
class BatchOutcome:
    received: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)  # reason -> events forwarded with a change
    requests: list[RequestOutcome] = field(default_factory=list)
    retries: int = 0
    isolation_requests: int = 0  # extra requests spent isolating rejected events
    batch_id: str | None = None
    source_request_id: str | None = None
    match_keys: tuple[str, ...] = ()  # the user's keys every event sent carried (neutral names, match_keys.KEYS)

    @property
    def forwarded(self) -> int:
        """Events Facebook acknowledged (its own count when it gives one)."""
        return sum(
            request.events if request.accepted is None else min(request.accepted, request.events)
            for request in self.requests
            if request.status == DELIVERED
        )

    @property
    def parked(self) -> int:
        return sum(request.events for request in self.requests if request.parked)

    def _deciding(self) -> tuple[Rule, RequestOutcome] | None:
        """The rule and request that make the verdict. An isolated rejection (an event set aside while its
        neighbours went through, forwarder/isolation.py) decides nothing, unless nothing went through."""
        for rule in VERDICT_RULES:
            for request in self.requests:
                if request.isolated or request.status not in rule.statuses:
                    continue
                if rule.counts_parked or not request.parked:
                    return rule, request
        if not any(request.status == DELIVERED for request in self.requests):
            rejected = next((request for request in self.requests if request.status == ErrorClass.INVALID), None)
            if rejected is not None:
                return VERDICT_RULES[-1], rejected
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
        code = f" (code {request.code})" if request.code is not None else ""
        detail = request.error or "not sent: no time left in this invocation"
        return f"{rule.problem}{code}: {detail}"

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "forwarded": self.forwarded,
            "parked": self.parked,
            "skipped": dict(self.skipped),
            "adjusted": dict(self.adjusted),
            "match_keys": dict.fromkeys(self.match_keys, self.forwarded) if self.forwarded else {},
            "requests": [request.as_dict() for request in self.requests],
            "retries": self.retries,
            "isolation_requests": self.isolation_requests,
        }
