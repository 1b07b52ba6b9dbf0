"""The poster on its own: a fake Graph client and a fake clock, no servers, no sleeping.

Each row scripts what the client answers per attempt and checks what the poster does: how many attempts,
how long it waits between them (Meta: back off on rate limits and transient errors), that it never starts
an attempt it has no time for, and that a token error re-reads the secret once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.deadline import Deadline
from forwarder.destination import Destination
from forwarder.facebook_api import FacebookApi
from forwarder.graph_client import Accepted, ErrorClass, GraphError
from forwarder.posting import BACKOFF_CAP, MIN_ATTEMPT_SECONDS, Poster, Tokens
from forwarder.redaction import Redactor
from forwarder.secrets import Credentials, SecretUnavailable

DESTINATION = Destination(FacebookApi.CONVERSIONS_API, "v26.0", "1")
EVENTS = [{"event_name": "Purchase"}] * 3


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeClient:
    """Answers each post with the next scripted item: an Accepted count, or a GraphError to raise; each
    attempt takes `cost` seconds of the fake clock."""

    clock: Clock
    script: list[Any]
    cost: float = 0.2
    calls: list[dict[str, Any]] = field(default_factory=list)

    def post(self, url: str, body: dict[str, Any], time_limit: float, redact: Any, count_field: str) -> Accepted:
        self.calls.append(
            {"url": url, "token": body["access_token"], "time_limit": time_limit, "count_field": count_field}
        )
        self.clock.now += self.cost
        answer = self.script.pop(0)
        if isinstance(answer, GraphError):
            raise answer
        return Accepted(answer, None, self.cost * 1000)


@dataclass
class Posting:
    """A poster with its fake client and clock, posting to DESTINATION by a deadline `seconds` away."""

    poster: Poster
    client: FakeClient
    clock: Clock
    deadline: Deadline

    def send(self, events: list[dict[str, Any]], redactor: Redactor) -> Any:
        return self.poster.post(DESTINATION, events, redactor, self.deadline)

    @property
    def retries(self) -> int:
        return self.poster.retries


def sender(script: list[Any], seconds: float, reread: Any = None) -> tuple[Posting, FakeClient, Clock]:
    clock = Clock()
    client = FakeClient(clock, script)

    def read(secret_id: str, limit: float, force: bool) -> Credentials:
        return (reread or (lambda limit: Credentials("token-2")))(limit) if force else Credentials("token-1")

    tokens = Tokens({"default": "secret"}, read=read)
    poster = Poster(client, "https://graph.example", tokens, sleep=clock.sleep)  # type: ignore[arg-type]
    return Posting(poster, client, clock, Deadline.after(seconds, clock)), client, clock


def error(error_class: ErrorClass, code: int | None = None) -> GraphError:
    return GraphError(error_class, "scripted", code)


CASES = [
    # (what Facebook answers per attempt, seconds available, status, attempts)
    ([3], 20, "delivered", 1),
    ([error(ErrorClass.TRANSIENT, 2), 3], 20, "delivered", 2),
    ([error(ErrorClass.RATE_LIMITED, 17), error(ErrorClass.RATE_LIMITED, 17), 3], 20, "delivered", 3),
    ([error(ErrorClass.INVALID, 100), 3], 20, "invalid", 1),  # a rejection is final: never retried
    ([error(ErrorClass.PERMISSION, 200), 3], 20, "permission", 1),
    ([error(ErrorClass.TRANSIENT, 2)] * 100, 12, "transient", None),  # until the time runs out
    ([3], MIN_ATTEMPT_SECONDS - 0.01, "not_attempted", 0),  # no time for one attempt: none started
]


@pytest.mark.parametrize(("script", "seconds", "status", "attempts"), CASES)
def test_attempts_follow_the_error_class_and_the_time_left(script, seconds, status, attempts):
    send, client, clock = sender(list(script), seconds)
    outcome = send.send(EVENTS, Redactor())
    assert outcome.status == status
    if attempts is not None:
        assert outcome.attempts == attempts == len(client.calls)
    assert clock.now <= 1000.0 + seconds  # nothing outlives the deadline
    assert all(call["time_limit"] <= seconds for call in client.calls)
    assert all(call["count_field"] == "events_received" for call in client.calls)  # the API's own count


def test_retries_until_the_deadline_leave_no_attempt_without_time_and_back_off_boundedly():
    send, client, _ = sender([error(ErrorClass.TRANSIENT, 2)] * 100, 30)
    outcome = send.send(EVENTS, Redactor())
    assert outcome.status == "transient" and "ran out of time" in (outcome.error or "")
    starts = [1000.0 + 30 - call["time_limit"] for call in client.calls]
    assert all(30 - (start - 1000.0) >= MIN_ATTEMPT_SECONDS for start in starts)
    gaps = [later - earlier - client.cost for earlier, later in itertools.pairwise(starts)]
    assert all(0 < gap <= BACKOFF_CAP for gap in gaps)
    assert gaps[-1] > gaps[0]  # exponential: later waits are longer
    assert send.retries == len(client.calls) - 1


def test_a_token_error_rereads_the_secret_once_and_uses_the_new_token():
    send, client, _ = sender([error(ErrorClass.TOKEN, 190), 3], 20)
    assert send.send(EVENTS, Redactor()).status == "delivered"
    assert [call["token"] for call in client.calls] == ["token-1", "token-2"]


def test_the_same_token_after_a_reread_is_not_tried_again():
    send, client, _ = sender([error(ErrorClass.TOKEN, 190), 3], 20, reread=lambda limit: Credentials("token-1"))
    outcome = send.send(EVENTS, Redactor())
    assert outcome.status == "token" and len(client.calls) == 1


def test_a_failed_reread_is_the_requests_outcome_not_an_exception():
    def unavailable(limit: float) -> Credentials:
        raise SecretUnavailable("could not read the secret from Secrets Manager (ThrottlingException)")

    send, _, _ = sender([error(ErrorClass.TOKEN, 190)], 20, reread=unavailable)
    outcome = send.send(EVENTS, Redactor())
    assert outcome.status == "transient" and "Secrets Manager" in (outcome.error or "")


def test_it_posts_to_the_destinations_dataset_under_the_graph_url():
    send, client, _ = sender([3], 20)
    send.send(EVENTS, Redactor())
    assert client.calls[0]["url"] == "https://graph.example/v26.0/1/events"


def test_an_unreadable_secret_is_read_once_per_invocation():
    reads: list[str] = []

    def read(secret_id: str, limit: float, force: bool) -> Credentials:
        reads.append(secret_id)
        raise SecretUnavailable("could not read the secret from Secrets Manager (ThrottlingException)")

    clock = Clock()
    client = FakeClient(clock, [])
    poster = Poster(client, "https://graph.example", Tokens({"default": "secret"}, read=read))  # type: ignore[arg-type]
    outcomes = [poster.post(DESTINATION, EVENTS, Redactor(), Deadline.after(20, clock)) for _ in range(3)]
    assert [outcome.status for outcome in outcomes] == ["transient"] * 3
    assert reads == ["secret"] and client.calls == []


def test_a_connection_without_a_secret_is_a_token_error_without_a_request():
    clock = Clock()
    client = FakeClient(clock, [])
    poster = Poster(client, "https://graph.example", Tokens({"default": "secret"}))  # type: ignore[arg-type]
    other = Destination(FacebookApi.CONVERSIONS_API, "v26.0", "1", connection="stores-de")
    outcome = poster.post(other, EVENTS, Redactor(), Deadline.after(20, clock))
    assert outcome.status == "token" and outcome.attempts == 0 and client.calls == []
