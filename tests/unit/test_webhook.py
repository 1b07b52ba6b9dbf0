"""The verdict over a webhook batch's delivery, row by row from the HTTP contract (docs: "HTTP contract").

mParticle retries 408/429/5xx only: a verdict that asks it to resend must come from a failure a resend can
fix (the delivery core says the batch must come again), and a batch settled (each event delivered or
parked) never asks for one.
"""

from __future__ import annotations

import pytest

from forwarder.outcome import PARKING_FAILED, Delivery, RequestOutcome, Verdict
from forwarder.webhook import BATCH, BatchOutcome


def request(
    status: str, parked: bool = False, accepted: int | None = None, code: int | None = None, isolated: bool = False
) -> RequestOutcome:
    outcome = RequestOutcome(events=10, status=status, parked=parked, accepted=accepted, code=code, error="why")
    outcome.isolated = isolated
    return outcome


D, NA = "delivered", "not_attempted"
CASES = [
    # (requests, what must come again, verdict, the contract's reason)
    ([], None, Verdict.DELIVERED, "nothing to send is a 200"),
    ([request(D, accepted=10)], None, Verdict.DELIVERED, "all delivered"),
    ([request(D, accepted=4, parked=True)], None, Verdict.DELIVERED, "taken in part, the request parked: 200"),
    ([request("invalid", parked=True)], None, Verdict.REJECTED, "rejected and parked: 422"),
    ([request(D, accepted=10), request("invalid", parked=True)], None, Verdict.REJECTED, "a part rejected whole"),
    (
        [request(D, accepted=10), request("invalid", parked=True, isolated=True)],
        None,
        Verdict.DELIVERED,
        "one event rejected alone, its neighbours delivered: 200 with parked",
    ),
    ([request("invalid", parked=True, isolated=True)], None, Verdict.REJECTED, "every event rejected alone: 422"),
    ([request("transient")], "transient", Verdict.RETRY_LATER, "5xx until the deadline: 503"),
    ([request("rate_limited")], "rate_limited", Verdict.RETRY_LATER, "rate limited until the deadline: 503"),
    ([request(NA)], NA, Verdict.RETRY_LATER, "no time to try: 503"),
    ([request("token")], "token", Verdict.OPERATOR_MUST_ACT, "token refused after re-reading: 502"),
    ([request("permission")], "permission", Verdict.OPERATOR_MUST_ACT, "permission missing: 502"),
    ([request("invalid", parked=True)], PARKING_FAILED, Verdict.RETRY_LATER, "parking failed: 503"),
    ([request(D, accepted=10), request("transient", parked=True)], None, Verdict.DELIVERED, "the rest parked"),
]


@pytest.mark.parametrize(("requests", "resend", "verdict"), [pytest.param(*c[:3], id=c[3]) for c in CASES])
def test_the_verdict_follows_the_contract(requests, resend, verdict):
    delivery = Delivery(requests=requests, resend={BATCH: resend} if resend else {})
    assert BatchOutcome(delivery=delivery).verdict is verdict


def test_the_problem_names_the_request_that_decided_the_verdict():
    delivery = Delivery(requests=[request("invalid", code=100), request("token", code=190)], resend={BATCH: "token"})
    assert BatchOutcome(delivery=delivery).problem() == (
        "Facebook refused the access token or its permissions; fix the secret or the token (code 190): why"
    )
    assert BatchOutcome(delivery=Delivery(requests=[request(D, accepted=10)])).problem() is None


def test_events_an_earlier_attempt_parked_make_a_batch_with_nothing_delivered_a_422():
    assert BatchOutcome(delivery=Delivery(parked_earlier=3)).verdict is Verdict.REJECTED


@pytest.mark.parametrize(
    ("accepted", "taken", "reason"),
    [(10, True, None), (12, True, None), (9, False, "Facebook processed 9 of 10 events"), (None, False, None)],
)
def test_taken_means_facebook_accepted_all_of_it(accepted, taken, reason):
    delivered = request(D, accepted=accepted)
    assert delivered.taken is taken
    if accepted is not None:
        assert delivered.parking_reason == reason


def test_forwarded_counts_what_facebook_acknowledged_now_and_earlier():
    delivery = Delivery(
        requests=[request(D, accepted=7, parked=True), request(D, accepted=10), request("invalid", parked=True)],
        delivered_earlier=5,
    )
    assert delivery.forwarded == 22
