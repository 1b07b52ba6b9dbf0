"""The verdict over a batch's requests, row by row from README's HTTP contract (not from the table).

mParticle retries 408/429/5xx only: a verdict that asks it to resend must come from a failure a resend
can fix, and nothing already parked may ask for one (its copy would be parked twice).
"""

from __future__ import annotations

import pytest

from forwarder.outcome import BatchOutcome, RequestOutcome, Verdict


def request(status: str, parked: bool = False, accepted: int | None = None, code: int | None = None) -> RequestOutcome:
    return RequestOutcome(events=10, status=status, parked=parked, accepted=accepted, code=code, error="why")


D, NA = "delivered", "not_attempted"
CASES = [
    # (requests, verdict, README's reason)
    ([], Verdict.DELIVERED, "nothing to send is a 200"),
    ([request(D, accepted=10)], Verdict.DELIVERED, "all delivered"),
    ([request(D, accepted=4, parked=True)], Verdict.DELIVERED, "taken in part, the request parked: 200, parked > 0"),
    ([request("invalid", parked=True)], Verdict.REJECTED, "rejected and parked: 422"),
    ([request(D, accepted=10), request("invalid", parked=True)], Verdict.REJECTED, "split, one part rejected"),
    ([request("transient")], Verdict.RETRY_LATER, "5xx until the deadline: 503"),
    ([request("rate_limited")], Verdict.RETRY_LATER, "rate limited until the deadline: 503"),
    ([request(NA)], Verdict.RETRY_LATER, "no time to try: 503"),
    ([request("token")], Verdict.OPERATOR_MUST_ACT, "token refused after re-reading: 502"),
    ([request("permission")], Verdict.OPERATOR_MUST_ACT, "permission missing: 502"),
    ([request("transient"), request("token")], Verdict.OPERATOR_MUST_ACT, "an operator must act comes first"),
    ([request("invalid"), request("transient")], Verdict.RETRY_LATER, "a resend fixes the transient part"),
    ([request(D, accepted=10), request("transient", parked=True)], Verdict.DELIVERED, "the rest parked (offline)"),
    ([request(D, accepted=10), request("token", parked=True)], Verdict.DELIVERED, "parked: settled, no resend"),
    ([request("invalid", parked=True), request(NA)], Verdict.RETRY_LATER, "an unsent request asks for a resend"),
]


@pytest.mark.parametrize(("requests", "verdict"), [pytest.param(r, v, id=why) for r, v, why in CASES])
def test_the_verdict_follows_the_contract(requests, verdict):
    assert BatchOutcome(requests=requests).verdict is verdict


def test_the_problem_names_the_request_that_decided_the_verdict():
    outcome = BatchOutcome(requests=[request("invalid", code=100), request("token", code=190)])
    assert outcome.problem() == (
        "Facebook refused the access token or its permissions; fix the secret or the token (code 190): why"
    )
    assert BatchOutcome(requests=[request(D, accepted=10)]).problem() is None


@pytest.mark.parametrize(
    ("accepted", "taken", "reason"),
    [(10, True, None), (12, True, None), (9, False, "Facebook processed 9 of 10 events"), (None, False, None)],
)
def test_taken_means_facebook_accepted_all_of_it(accepted, taken, reason):
    delivered = request(D, accepted=accepted)
    assert delivered.taken is taken
    if accepted is not None:
        assert delivered.parking_reason == reason


def test_forwarded_counts_what_facebook_acknowledged_and_parked_what_was_parked():
    outcome = BatchOutcome(
        requests=[request(D, accepted=7, parked=True), request(D, accepted=10), request("invalid", parked=True)]
    )
    assert (outcome.forwarded, outcome.parked) == (17, 20)
