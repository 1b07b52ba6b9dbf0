"""Redaction attacked: Meta's error text quoting a personal value in forms beyond the obvious (in many groups,
nationally, in another case), on the webhook (direct), the buffered sender and replay.

Found by a fresh tester's attack; each kept as a regression test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from localdev.graph_stub import Fault, GraphStub
from tests.faulty_servers import parked_messages, reasons
from tests.integration.test_delivery_core import PATHS, Paths, events
from tests.support import Answer, api_event, make_batch


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, aws: Any, function_env: Any, invoke: Any, graph: GraphStub) -> Paths:
    return Paths(request.param, aws, function_env, invoke, graph)


def everything_said(outcome: Any, aws: dict[str, str], captured: Any) -> str:
    """The answer (or the sender's/replay's report), the parked reasons, and every log line and metric."""
    answered = json.dumps(outcome.body if isinstance(outcome, Answer) else vars(outcome), default=repr)
    stored = json.dumps([reasons(message) for message in parked_messages(aws)])
    return answered + stored + captured()


def run_quoting(path: Paths, graph: GraphStub, user: dict[str, str], quote: str) -> Any:
    batch = make_batch(events(["q-1", "q-2"]))
    batch["user_identities"].append({"identity_type": "customer_id", "identity": "CUST-998877"})
    batch["user_attributes"].update(user)
    error = Fault.graph_error(100, error_subcode=33, message=quote)
    return path.run(batch, before_sending=lambda: graph.script(error))


# A French mobile as users type it and as phone books print it: E.164 digits 33612345678, sent only hashed.
FRENCH = {"$mobile": "06 12 34 56 78", "$country": "FR"}
PHONE_QUOTES = [
    # (what Meta's text quotes, what must never appear)
    ("Invalid parameter: ph +33 6 12 34 56 78 is not a mobile number", "6 12 34 56 78"),
    ("Invalid parameter: ph 33 6 12 34 56 78 is not a mobile number", "6 12 34 56 78"),
    ("Invalid parameter: ph +33 (0)6 12 34 56 78 is not a mobile number", "12 34 56 78"),
]


@pytest.mark.parametrize(("quote", "secret"), PHONE_QUOTES, ids=["+33 6 12..", "33 6 12..", "+33 (0)6 12.."])
def test_a_phone_quoted_in_five_or_more_groups_is_redacted(path, aws, graph, captured, quote, secret):
    """The redactor checks runs of at most four words against the digests sent; a French (or Belgian, Dutch,
    Swiss...) number is written in five or six groups, so it is never matched on the buffered and replay
    paths, and on the webhook only when quoted exactly as the user typed it."""
    outcome = run_quoting(path, graph, FRENCH, quote)
    assert secret not in everything_said(outcome, aws, captured)


@pytest.mark.parametrize("path", ["buffered", "replay"], indirect=True)
def test_a_phone_quoted_in_its_national_form_is_redacted_where_only_its_digest_is_known(path, aws, graph, captured):
    """ "06 12 34 56 78" is five words: the sender and replay, which hold only the digest, never match it."""
    outcome = run_quoting(path, graph, FRENCH, "Invalid parameter: ph 06 12 34 56 78 is not a mobile number")
    assert "12 34 56 78" not in everything_said(outcome, aws, captured)


def test_a_phone_quoted_exactly_as_typed_is_redacted_on_the_webhook(aws, function_env, invoke, graph, captured):
    """What holds: the webhook knows the raw value, so the user's own spelling is redacted."""
    outcome = run_quoting(
        Paths("direct", aws, function_env, invoke, graph),
        graph,
        FRENCH,
        "Invalid parameter: ph 06 12 34 56 78 is not a mobile number",
    )
    assert "12 34 56 78" not in everything_said(outcome, aws, captured)


@pytest.mark.parametrize("path", ["buffered", "replay"], indirect=True)
def test_a_customer_id_quoted_in_lower_case_is_redacted(path, aws, graph, captured):
    """external_id is hashed as the customer id is written (CUST-998877): Meta quoting it in lower case must be
    matched against that digest too (the redactor tries every case), where only the digest is known."""
    outcome = run_quoting(path, graph, {}, "Invalid parameter: external_id cust-998877 unknown")
    assert "998877" not in everything_said(outcome, aws, captured)


def test_a_short_personal_value_does_not_cut_words_of_metas_message(aws, function_env, invoke, graph):
    """Jane Doe's last name is matched anywhere, also inside words: Meta's "does not exist" reaches the answer,
    the log and the parked reason as "[redacted]s not exist" (and "female" as "fe[redacted]" for a user whose
    gender attribute is "male"), so the operator reads a mangled reason in make parked."""
    function_env(FACEBOOK_API="conversions_api")
    graph.datasets = {"0"}
    answer = invoke(api_event(make_batch(events(["d-1"]))))
    assert answer.status == 422
    assert "does not exist" in answer.body["error"], answer.body["error"]
