"""What the delivery core is handed and what becomes of it: the events on their way (`Outgoing`, each in a
`Unit` its source retries whole), one outcome per Graph request, a `Delivery` over them, and the verdicts a
source can reach.

The verdict is what a webhook batch's sender (mParticle) must do next; the handler turns it into an HTTP
status (docs: "HTTP contract"). It comes from one table, `VERDICT_RULES`, which also names the problem.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from forwarder.destination import Destination
from forwarder.graph_client import ErrorClass

NOT_ATTEMPTED = "not_attempted"
DELIVERED = "delivered"
PARKING_FAILED = "parking_failed"  # a unit's rejected events could not be parked: it comes again


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


# The status that has a unit come again (or, last, the rejection that settled it) makes the verdict.
VERDICT_RULES = (
    Rule(
        Verdict.OPERATOR_MUST_ACT,
        frozenset({ErrorClass.TOKEN, ErrorClass.PERMISSION}),
        "Facebook refused the access token or its permissions; fix the secret or the token",
    ),
    Rule(
        Verdict.RETRY_LATER,
        frozenset({ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED, NOT_ATTEMPTED, PARKING_FAILED}),
        "Facebook failed transiently and retries ran out of time",
    ),
    Rule(Verdict.REJECTED, frozenset({ErrorClass.INVALID}), "Facebook rejected the events as invalid"),
)


def rule_for(status: str) -> Rule:
    """The rule of a request's status (DELIVERED has none: it is never asked)."""
    return next(rule for rule in VERDICT_RULES if status in rule.statuses)


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
    from_isolation: bool = False  # a part sent while isolating rejected events (forwarder/isolation.py)
    payload: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the rendered events sent

    @property
    def taken(self) -> bool:
        """Facebook accepted all of it."""
        return self.status == DELIVERED and self.accepted is not None and self.accepted >= self.events

    @property
    def forwarded(self) -> int:
        """Events Facebook acknowledged of this request (its own count when it gives one)."""
        if self.status != DELIVERED:
            return 0
        return self.events if self.accepted is None else min(self.accepted, self.events)

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


@dataclass(frozen=True, slots=True)
class Unit:
    """What a source retries as a whole, and the mParticle ids its parked events keep."""

    id: str
    batch_id: str | None = None
    source_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered event on its way: where it goes and which unit it belongs to."""

    destination: Destination
    event: dict[str, Any]
    unit: Unit


@dataclass(slots=True)
class Delivery:
    """What became of the events handed to `deliver`."""

    requests: list[RequestOutcome] = field(default_factory=list)  # the final outcome of every request sent
    retries: int = 0
    isolation_requests: int = 0
    duplicates: int = 0  # events left out as the same event_name + event_id as another
    delivered_earlier: int = 0  # events a previous attempt delivered while isolating (settled events)
    parked_earlier: int = 0
    parked: int = 0  # events parked now
    resend: dict[str, str] = field(default_factory=dict)  # unit id -> the status that has it come again
    parking_failure: str | None = None
    parked_units: set[str] = field(default_factory=set)  # units some of whose events were parked now
    parked_sets: set[str] = field(default_factory=set)  # the ids of the sets parked now
    by_destination: dict[Destination, Counter[str]] = field(default_factory=dict)  # forwarded, parked, failed

    @property
    def forwarded(self) -> int:
        """Events Facebook acknowledged (its own count when it gives one), now or on an earlier attempt."""
        now = sum(request.forwarded for request in self.requests)
        return now + self.delivered_earlier

    def summary(self) -> dict[str, Any]:
        """What every source's summary says of its delivery (docs/observability.md)."""
        return {
            "forwarded": self.forwarded,
            "parked": self.parked + self.parked_earlier,
            "duplicates": self.duplicates,
            "destinations": [
                {**destination.log_fields(), **counts} for destination, counts in self.by_destination.items()
            ],
            "requests": [request.as_dict() for request in self.requests],
            "retries": self.retries,
            "isolation_requests": self.isolation_requests,
            # Settled by an earlier attempt of the same events (forwarder/settled.py): in the counts above, and
            # left out of the metrics, which counted them when it happened.
            "settled_earlier": {"forwarded": self.delivered_earlier, "parked": self.parked_earlier},
        }
