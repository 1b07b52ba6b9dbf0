"""Isolation on its own, with a fake Facebook that rejects any request holding a bad event (as Meta does on the
Conversions API: one invalid event rejects its request) and names, or fails to name, an event in its error.

Whatever it names, every good event is delivered once, each bad one is confirmed alone (refused on its own)
before it is taken for bad, and the work stays within the bound docs/delivery.md states: at most
2·k·(⌈log2 n⌉ + 1) + 2 requests in all and n·(⌈log2 n⌉ + 1) events carried, for k bad events among n.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.graph_client import ErrorClass
from forwarder.isolation import isolate, splittable
from forwarder.outcome import DELIVERED, NOT_ATTEMPTED, RequestOutcome

# What Meta's error names, given the ids of the request's events and the bad ones among them.
Naming = Callable[[list[int], set[int]], int | None]
NAMINGS: dict[str, Naming] = {
    "the first bad event": lambda ids, bad: next(i for i, event in enumerate(ids) if event in bad),
    "nothing": lambda ids, bad: None,
    "the last event": lambda ids, bad: len(ids) - 1,
    "the first event": lambda ids, bad: 0,
    "a good event when there is one": lambda ids, bad: next((i for i, e in enumerate(ids) if e not in bad), 0),
    "an index past the end": lambda ids, bad: len(ids) + 5,
}


@dataclass
class FakeFacebook:
    bad: set[int]
    naming: Naming
    budget: int = 1_000_000  # requests it may still start
    sent: list[list[int]] = field(default_factory=list)
    token_error_after: int | None = None

    def send(self, events: list[dict[str, Any]]) -> RequestOutcome:
        if self.budget <= 0:
            return RequestOutcome(events=len(events), payload=events)  # no time left: not attempted
        self.budget -= 1
        ids = [event["i"] for event in events]
        self.sent.append(ids)
        outcome = RequestOutcome(events=len(events), attempts=1, payload=events)
        if self.token_error_after is not None and len(self.sent) > self.token_error_after:
            outcome.status, outcome.code, outcome.error = ErrorClass.TOKEN.value, 190, "token expired"
        elif self.bad.isdisjoint(ids):
            outcome.status, outcome.accepted = DELIVERED, len(events)
        else:
            outcome.status, outcome.code, outcome.subcode = ErrorClass.INVALID.value, 100, 2804050
            outcome.error, outcome.index = "Invalid parameter", self.naming(ids, self.bad)
        return outcome

    def deliver(self, n: int) -> list[RequestOutcome]:
        """The first request of all `n` events, then isolation when it is rejected."""
        events = [{"i": i} for i in range(n)]
        first = self.send(events)
        if not splittable(first):
            return [first]
        return isolate(self.send, events, first).outcomes

    @property
    def events_carried(self) -> int:
        return sum(len(ids) for ids in self.sent)


def bound(n: int, k: int) -> tuple[int, int]:
    """Requests (the first included) and events carried, at most, for k bad events among n."""
    levels = max(1, math.ceil(math.log2(n))) + 1
    return 2 * k * levels + 2, n * levels


def settled(outcomes: list[RequestOutcome]) -> tuple[list[int], list[int]]:
    delivered = [e["i"] for o in outcomes if o.status == DELIVERED for e in o.payload]
    confirmed = [o.payload[0]["i"] for o in outcomes if o.isolated]
    return delivered, confirmed


@pytest.mark.parametrize("naming", NAMINGS)
@pytest.mark.parametrize(
    ("n", "bad"),
    [
        (1000, {7}),
        (1000, {0, 999}),
        (1000, {1, 2, 3}),
        (1500, {10, 999, 1200}),
        (2000, set(range(0, 2000, 97))),
        (64, {0}),
        (2, {1}),
        (1, {0}),
        (1000, set(range(1000))),  # every event bad
    ],
)
def test_every_good_event_is_delivered_once_and_each_bad_one_is_confirmed_alone(n, bad, naming):
    facebook = FakeFacebook(bad, NAMINGS[naming])
    outcomes = facebook.deliver(n)
    delivered, confirmed = settled(outcomes)
    assert Counter(delivered) == Counter(set(range(n)) - bad)  # each good event exactly once
    assert sorted(confirmed) == sorted(bad)
    assert all([event] in facebook.sent for event in confirmed)  # refused alone before taken for bad
    assert all(o.status in (DELIVERED, ErrorClass.INVALID.value) for o in outcomes)
    requests, events = bound(n, len(bad))
    assert len(facebook.sent) <= requests
    assert facebook.events_carried <= events


def test_a_thousand_bad_events_named_one_per_answer_cost_linear_work():
    """The quadratic case: Meta names one rejected event per answer, every event bad. Resending all the rest
    after each named event would take 1000 requests carrying 500,500 events."""
    facebook = FakeFacebook(set(range(1000)), NAMINGS["the first bad event"])
    outcomes = facebook.deliver(1000)
    assert sorted(settled(outcomes)[1]) == list(range(1000))
    assert len(facebook.sent) <= bound(1000, 1000)[0]  # 22,002
    assert facebook.events_carried <= 11_000  # n·(⌈log2 n⌉ + 1), against 500,500
    assert len(facebook.sent) < 2_000


def test_meta_naming_the_last_event_never_parks_a_good_one():
    """64 events whose first is bad, Meta naming the last event of every request it refuses: the named event
    is sent alone first, delivered, and from then on the search halves."""
    facebook = FakeFacebook({0}, NAMINGS["the last event"])
    delivered, confirmed = settled(facebook.deliver(64))
    assert confirmed == [0] and sorted(delivered) == list(range(1, 64))
    assert len(facebook.sent) <= bound(64, 1)[0]


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 13])
def test_out_of_time_each_event_is_in_exactly_one_outcome_and_the_rest_not_attempted(budget):
    facebook = FakeFacebook({5, 700}, NAMINGS["the first bad event"], budget=budget)
    outcomes = facebook.deliver(1000)
    every = sorted(e["i"] for o in outcomes for e in o.payload)
    assert every == list(range(1000))
    assert any(o.status == NOT_ATTEMPTED for o in outcomes) or budget > 5
    assert all(not o.isolated or [o.payload[0]["i"]] in facebook.sent for o in outcomes)


def test_a_named_event_is_confirmed_first_so_a_short_invocation_settles_it():
    """Depth first, the named event before its neighbours: two requests after the first confirm it."""
    facebook = FakeFacebook({500}, NAMINGS["the first bad event"], budget=2)
    outcomes = facebook.deliver(1000)
    assert settled(outcomes)[1] == [500]


def test_a_token_error_while_isolating_stops_and_leaves_the_rest_unsent():
    facebook = FakeFacebook({3, 800}, NAMINGS["nothing"], token_error_after=3)
    outcomes = facebook.deliver(1000)
    assert len(facebook.sent) == 4
    assert [o.status for o in outcomes].count(ErrorClass.TOKEN.value) == 1
    assert sorted(e["i"] for o in outcomes for e in o.payload) == list(range(1000))
    assert sum(o.events for o in outcomes if o.status == NOT_ATTEMPTED) > 0


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
    for _ in range(60):
        n = rng.randint(2, 2000)
        bad = set(rng.sample(range(n), rng.randint(1, min(n, 40))))
        naming = rng.choice(list(NAMINGS.values()))
        facebook = FakeFacebook(bad, naming)
        delivered, confirmed = settled(facebook.deliver(n))
        assert sorted(delivered) == sorted(set(range(n)) - bad) and sorted(confirmed) == sorted(bad)
        requests, events = bound(n, len(bad))
        assert len(facebook.sent) <= requests and facebook.events_carried <= events
