"""Sending one request's events to the Graph API: retries, backoff and the token re-read, by a deadline.

The one way to open a sender (`open_sender`) serves the webhook, replay and anything else that sends:
the same client, retries, token handling and time limits everywhere. Every attempt, backoff and
secret re-read ends by the sender's deadline, so a retry never outlives the invocation.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from forwarder.deadline import Deadline
from forwarder.graph_client import CONNECT_TIMEOUT, ErrorClass, GraphClient, GraphError
from forwarder.outcome import DELIVERED, RequestOutcome
from forwarder.redaction import Redactor
from forwarder.render import request_fields
from forwarder.secrets import Credentials, SecretInvalid, SecretUnavailable, get_credentials
from forwarder.settings import Settings

MIN_READ_TIMEOUT = 1.0
# An attempt starts only with this much time left: a connection, then at least a second to answer.
MIN_ATTEMPT_SECONDS = CONNECT_TIMEOUT + MIN_READ_TIMEOUT
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0


class TokenSource:
    """The credentials in force, re-read at most once per invocation after a token error."""

    def __init__(self, credentials: Credentials, reread: Callable[[float], Credentials]) -> None:
        self.credentials = credentials
        self._reread = reread
        self._reread_done = False

    def refresh(self, time_limit: float) -> bool:
        """True when a re-read (in at most `time_limit` seconds) gave a different token worth trying.
        Raises SecretUnavailable or SecretInvalid when the secret cannot be read."""
        if self._reread_done:
            return False
        self._reread_done = True
        previous = self.credentials.access_token
        self.credentials = self._reread(time_limit)
        return self.credentials.access_token != previous


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2…): exponential with equal jitter, so a burst of retries
    from many containers spreads out."""
    ceiling: float = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class Sender:
    """Sends requests for one invocation (or one replayed request); all of it ends by `deadline`."""

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

    def send(self, events: list[dict[str, Any]], redactor: Redactor) -> RequestOutcome:
        """One request's events, retried within the deadline; `redactor` knows the batch's personal values."""
        outcome = RequestOutcome(events=len(events), payload=events)
        while self.deadline.left() >= MIN_ATTEMPT_SECONDS:
            outcome.attempts += 1
            credentials = self.tokens.credentials
            try:
                accepted = self.client.post(
                    self.settings.events_url,
                    self._body(events),
                    time_limit=self.deadline.left(),
                    redact=redactor.with_secrets(credentials.secret_values()),
                    count_field=self.settings.profile.accepted_count_field,
                )
            except GraphError as error:
                outcome.status, outcome.error, outcome.code = error.error_class.value, error.message, error.code
                outcome.subcode, outcome.index, outcome.fbtrace_id = error.subcode, error.index, error.fbtrace_id
                try:
                    retry = self._should_retry(error, outcome.attempts)
                except (SecretUnavailable, SecretInvalid) as problem:
                    # The re-read after a token error failed: an outcome like any other, so a batch Facebook
                    # already took part of is still settled as one (and its summary is still answered).
                    unavailable = isinstance(problem, SecretUnavailable)
                    outcome.status = (ErrorClass.TRANSIENT if unavailable else ErrorClass.TOKEN).value
                    outcome.error = f"{outcome.error}; then {problem}"
                    return outcome
                if not retry:
                    if error.error_class.retryable:  # it would have been retried: time ran out
                        outcome.error = f"{outcome.error} (retries ran out of time)"
                    return outcome
                self.retries += 1
                continue
            outcome.status, outcome.accepted = DELIVERED, accepted.count
            outcome.fbtrace_id, outcome.latency_ms = accepted.fbtrace_id, accepted.latency_ms
            outcome.error = outcome.code = outcome.subcode = outcome.index = None
            return outcome
        if outcome.attempts:
            outcome.error = f"{outcome.error} (retries ran out of time)"
        return outcome

    def _should_retry(self, error: GraphError, attempts: int) -> bool:
        if error.error_class is ErrorClass.TOKEN:
            # The token may have been rotated since this container cached it.
            return self.tokens.refresh(self.deadline.left())
        if not error.error_class.retryable:
            return False
        delay = backoff(attempts)
        if self.deadline.left() - delay < MIN_ATTEMPT_SECONDS:
            return False
        self.sleep(delay)
        return True


def open_sender(settings: Settings, credentials: Credentials, client: GraphClient, deadline: Deadline) -> Sender:
    """A sender with the credentials already read; after a token error it re-reads the secret (forced,
    within the sender's deadline at that moment) once."""

    def reread(time_limit: float) -> Credentials:
        return get_credentials(settings.secret_id, time_limit, force=True)

    return Sender(settings, TokenSource(credentials, reread), client, deadline)
