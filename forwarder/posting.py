"""Posting one request's events to the Graph API: retries, backoff and the token re-read, by a deadline.

One `Poster` serves every source (the webhook, the buffered sender, replay, the backfill): the same
client, retries, token handling and time limits everywhere. Every attempt, backoff and secret read ends by
the deadline given with the request, so a retry never outlives the invocation. Tokens are per connection
(`Tokens`): each connection's secret is read when its first event is posted, and re-read at most once
after Facebook calls its token invalid (graph-api/guides/error-handling: code 190, the token may have
been rotated since this container cached it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from forwarder.deadline import Deadline
from forwarder.destination import Destination
from forwarder.graph_client import CONNECT_TIMEOUT, ErrorClass, GraphClient, GraphError
from forwarder.outcome import DELIVERED, RequestOutcome
from forwarder.redaction import Redactor
from forwarder.secrets import Credentials, SecretInvalid, SecretUnavailable, get_credentials

MIN_READ_TIMEOUT = 1.0
# An attempt starts only with this much time left: a connection, then at least a second to answer.
MIN_ATTEMPT_SECONDS = CONNECT_TIMEOUT + MIN_READ_TIMEOUT
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0

ReadSecret = Callable[[str, float, bool], Credentials]  # (secret id, seconds, force) -> credentials


def _read_secret(secret_id: str, time_limit: float, force: bool) -> Credentials:
    return get_credentials(secret_id, time_limit, force=force)


class TokenSource:
    """One connection's credentials in force, re-read at most once per invocation after a token error."""

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


@dataclass
class Tokens:
    """Each connection's token source, opened on first use: `secret_ids` maps a connection to its secret.

    `opened` may hold credentials already read (the webhook reads its connection's secret to authenticate
    the request). A connection not in `secret_ids` has no token: its events fail as a token error."""

    secret_ids: Mapping[str, str]
    opened: dict[str, TokenSource] = field(default_factory=dict)
    read: ReadSecret = _read_secret
    failed: dict[str, SecretUnavailable | SecretInvalid] = field(default_factory=dict)  # not read again

    @classmethod
    def with_credentials(cls, secret_ids: Mapping[str, str], read: Mapping[str, Credentials]) -> Tokens:
        tokens = cls(secret_ids)
        for connection, credentials in read.items():
            tokens.opened[connection] = tokens._source(connection, credentials)
        return tokens

    def _source(self, connection: str, credentials: Credentials) -> TokenSource:
        secret_id = self.secret_ids[connection]
        return TokenSource(credentials, lambda limit: self.read(secret_id, limit, True))

    def source(self, connection: str, time_limit: float) -> TokenSource:
        """The connection's token source, its secret read in at most `time_limit` seconds the first time.
        Raises SecretUnavailable (retry later) or SecretInvalid (an operator must act)."""
        if (opened := self.opened.get(connection)) is not None:
            return opened
        if (failure := self.failed.get(connection)) is not None:
            raise failure
        if connection not in self.secret_ids:
            raise SecretInvalid("no secret is configured for this connection")
        try:
            credentials = self.read(self.secret_ids[connection], time_limit, False)
        except (SecretUnavailable, SecretInvalid) as problem:
            self.failed[connection] = problem  # once per invocation: every later request would wait the same
            raise
        source = self.opened[connection] = self._source(connection, credentials)
        return source


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2…): exponential with equal jitter, so a burst of retries
    from many containers spreads out."""
    ceiling: float = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class Poster:
    """Posts requests for one invocation (or one replay, or one backfill); counts its retries."""

    client: GraphClient
    graph_url: str
    tokens: Tokens
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0

    def post(
        self, destination: Destination, events: list[dict[str, Any]], redactor: Redactor, deadline: Deadline
    ) -> RequestOutcome:
        """One request's events, retried by `deadline`; `redactor` cleans what Facebook answers."""
        outcome = RequestOutcome(events=len(events), payload=events)
        try:
            tokens = self.tokens.source(destination.connection, deadline.left())
        except (SecretUnavailable, SecretInvalid) as problem:
            unavailable = isinstance(problem, SecretUnavailable)
            outcome.status = (ErrorClass.TRANSIENT if unavailable else ErrorClass.TOKEN).value
            outcome.error = str(problem)
            return outcome
        url = self.graph_url + destination.events_path
        while deadline.left() >= MIN_ATTEMPT_SECONDS:
            outcome.attempts += 1
            credentials = tokens.credentials
            body = {"access_token": credentials.access_token, **destination.request_fields(), "data": events}
            if proof := credentials.appsecret_proof():
                body["appsecret_proof"] = proof
            try:
                accepted = self.client.post(
                    url,
                    body,
                    time_limit=deadline.left(),
                    redact=redactor.with_secrets(credentials.secret_values()),
                    count_field=destination.profile.accepted_count_field,
                )
            except GraphError as error:
                outcome.status, outcome.error, outcome.code = error.error_class.value, error.message, error.code
                outcome.subcode, outcome.index, outcome.fbtrace_id = error.subcode, error.index, error.fbtrace_id
                try:
                    retry = self._should_retry(error, outcome.attempts, tokens, deadline)
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

    def _should_retry(self, error: GraphError, attempts: int, tokens: TokenSource, deadline: Deadline) -> bool:
        if error.error_class is ErrorClass.TOKEN:
            # The token may have been rotated since this container cached it.
            return tokens.refresh(deadline.left())
        if not error.error_class.retryable:
            return False
        delay = backoff(attempts)
        if deadline.left() - delay < MIN_ATTEMPT_SECONDS:
            return False
        self.sleep(delay)
        return True
