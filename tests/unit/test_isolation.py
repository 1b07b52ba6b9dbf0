"""Isolation on its own, with a fake sender that rejects any request holding a bad event, as Meta does:
every good event is delivered once, each bad one ends alone, and the extra requests stay within
2·k·⌈log2 n⌉ (README, "Isolating rejected events")."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.graph_client import ErrorClass
from forwarder.isolation import send_isolating, splittable
from forwarder.outcome import DELIVERED, NOT_ATTEMPTED, RequestOutcome
from forwarder.redaction import Redactor


@dataclass
class FakeSender:
    bad: set[int]
    blame: bool
    budget: int = 10_000  # requests it may still start
    sent: list[list[int]] = field(default_factory=list)

    def send(self, events: list[dict[str, Any]], redactor: Redactor) -> RequestOutcome:
        if self.budget <= 0:
            return RequestOutcome(events=len(events), payload=events)
        self.budget -= 1
        ids = [event["i"] for event in events]
        self.sent.append(ids)
        outcome = RequestOutcome(events=len(events), attempts=1, payload=events)
        blamed = next((position for position, i in enumerate(ids) if i in self.bad), None)
        if blamed is None:
            outcome.status, outcome.accepted = DELIVERED, len(events)
        else:
            outcome.status, outcome.code, outcome.subcode = ErrorClass.INVALID.value, 100, 2804050
            outcome.error, outcome.index = "Invalid parameter", blamed if self.blame else None
        return outcome


@pytest.mark.parametrize("blame", [True, False], ids=["Meta names the event", "halving"])
@pytest.mark.parametrize(
    ("n", "bad"),
    [
        (1000, {7}),
        (1000, {0, 999}),
        (1000, {1, 2, 3}),
        (1500, {10, 999, 1200}),
        (2000, set(range(0, 2000, 97))),
        (1, {0}),
    ],
)
def test_every_good_event_is_delivered_once_and_each_bad_one_ends_alone(n, bad, blame):
    sender = FakeSender(bad, blame)
    result = send_isolating(sender, [{"i": i} for i in range(n)], Redactor())  # type: ignore[arg-type]
    delivered = [event["i"] for outcome in result.outcomes if outcome.status == DELIVERED for event in outcome.payload]
    isolated = [outcome for outcome in result.outcomes if outcome.isolated]
    assert sorted(delivered) == sorted(set(range(n)) - bad)
    assert sorted(outcome.payload[0]["i"] for outcome in isolated) == sorted(bad)
    assert all(outcome.events == 1 and outcome.error == "Invalid parameter" for outcome in isolated)
    k = len(bad)
    assert result.extra_requests == len(sender.sent) - 1
    assert result.extra_requests <= 2 * k * max(1, math.ceil(math.log2(n)))


def test_out_of_budget_parts_stay_not_attempted_and_nothing_is_lost():
    sender = FakeSender({5, 700}, blame=False, budget=4)
    result = send_isolating(sender, [{"i": i} for i in range(1000)], Redactor())  # type: ignore[arg-type]
    every = sorted(event["i"] for outcome in result.outcomes for event in outcome.payload)
    assert every == list(range(1000))  # each event in exactly one outcome
    assert any(outcome.status == NOT_ATTEMPTED for outcome in result.outcomes)


@pytest.mark.parametrize(
    ("code", "subcode", "error", "expected"),
    [
        (100, 2804050, "Invalid parameter", True),
        (100, None, "Invalid parameter: data[3].event_time", True),
        (100, 33, "Object with ID '1' does not exist", False),  # the dataset: every part fails alike
        (2635, None, "deprecated version", False),
        (100, None, "The parameter upload_tag is required", False),
        (None, None, "Facebook answered HTTP 400 without a Graph error (text/html)", False),
    ],
)
def test_only_rejections_of_events_are_split(code, subcode, error, expected):
    outcome = RequestOutcome(events=10, status=ErrorClass.INVALID.value, code=code, subcode=subcode, error=error)
    assert splittable(outcome) is expected


def test_a_random_mix_stays_within_the_bound():
    rng = random.Random(7)
    for _ in range(20):
        n = rng.randint(2, 2000)
        bad = set(rng.sample(range(n), rng.randint(1, 5)))
        sender = FakeSender(bad, blame=rng.random() < 0.5)
        result = send_isolating(sender, [{"i": i} for i in range(n)], Redactor())  # type: ignore[arg-type]
        assert result.extra_requests <= 2 * len(bad) * max(1, math.ceil(math.log2(n)))
