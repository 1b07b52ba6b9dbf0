"""Isolation attacked: it stays linear and makes progress whatever Meta names, and an error about the request
as a whole fails every part alike (it is not split).

Found by a fresh tester's attack; each kept as a regression test.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from forwarder.graph_client import ErrorClass
from forwarder.isolation import isolate
from forwarder.outcome import DELIVERED, RequestOutcome
from localdev.graph_stub import Fault
from tests.support import api_event, commerce_event, make_batch

# Meta's answer when the app secret the function holds is not the app's (graph-api/securing-requests): code 100,
# no subcode, whatever the events hold. A rotated app secret makes every request fail so.
APPSECRET = Fault.graph_error(
    100, message="Invalid appsecret_proof provided in the API argument", type="GraphMethodException"
)


def test_an_invalid_appsecret_proof_is_not_isolated_event_by_event(aws, function_env, invoke, graph):
    """64 good events, every request answered "Invalid appsecret_proof" (code 100, no subcode): the core takes it
    for a rejection of events and splits down to single events, 127 requests in all, and parks each event alone,
    each confirmed 'bad' (the answer says 422, as for bad data). With 1000-event requests that is 1999 requests
    per batch against an app whose every call fails, on every batch until the operator fixes the secret."""
    function_env(FACEBOOK_API="conversions_api")
    graph.script(*[APPSECRET] * 300)
    batch = make_batch([commerce_event("add_to_cart", source_message_id=f"m-{i}") for i in range(64)])
    answer = invoke(api_event(batch))
    assert answer.status == 422
    assert len(graph.received) <= 2, f"{len(graph.received)} requests for one request-wide error"


# --- the stated bound under hostile naming, at the core's own level ------------------------------------------


def _namer(strategy: str, bad: set[int], rng: random.Random) -> Any:
    """A Graph stand-in in-process: rejects a part holding a bad event, naming an index as `strategy` says."""
    requests: list[int] = []

    def send(part: list[dict[str, Any]]) -> RequestOutcome:
        requests.append(len(part))
        outcome = RequestOutcome(events=len(part), payload=part, attempts=1)
        bad_at = [i for i, event in enumerate(part) if event["n"] in bad]
        if not bad_at:
            outcome.status, outcome.accepted = DELIVERED, len(part)
            return outcome
        outcome.status, outcome.code, outcome.error = ErrorClass.INVALID.value, 100, "Invalid parameter"
        good_at = [i for i in range(len(part)) if i not in bad_at]
        outcome.index = {
            "first good": good_at[0] if good_at else bad_at[0],
            "random": rng.randrange(len(part)),
            "last": len(part) - 1,
            "right then wrong": bad_at[0] if len(requests) == 1 else (good_at or bad_at)[-1],
            "none": None,
        }[strategy]
        return outcome

    return send, requests


STRATEGIES = ["first good", "random", "last", "right then wrong", "none"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("n", "k"), [(1000, 1), (1000, 17), (1000, 1000), (997, 333), (2, 1)])
def test_isolation_stays_within_the_stated_bound_whatever_meta_names(strategy, n, k):
    """docs/delivery.md: "k bad events among n cost at most 2·k·(⌈log2 n⌉ + 1) + 2 requests in all ... carrying at
    most n·(⌈log2 n⌉ + 1) events", each good event delivered once and each bad one confirmed alone."""
    rng = random.Random(f"{strategy}{n}{k}")
    bad = set(rng.sample(range(n), k))
    send, requests = _namer(strategy, bad, rng)
    events = [{"n": i} for i in range(n)]
    result = isolate(send, events, send(events))
    depth = math.ceil(math.log2(n)) + 1
    assert len(requests) <= 2 * k * depth + 2
    assert sum(requests) <= n * depth  # the first request included, as the docs count
    delivered = [e["n"] for o in result.outcomes if o.status == DELIVERED for e in o.payload]
    confirmed = [e["n"] for o in result.outcomes if o.isolated for e in o.payload]
    assert sorted(delivered) == sorted(set(range(n)) - bad)
    assert sorted(confirmed) == sorted(bad)
