"""The Graph API client: one keep-alive session per container, one POST per chunk, errors classified.

Error codes and what to do with them are Meta's (graph-api/guides/error-handling,
marketing-api/overview/rate-limiting); the table is in README ("Facebook errors").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import requests

from forwarder.telemetry import traced

CONNECT_TIMEOUT = 3.05
MAX_READ_TIMEOUT = 10.0
_MESSAGE_LIMIT = 300

_RATE_LIMIT_CODES = {4, 17, 32, 341, 613, *range(80000, 80015)}
_TRANSIENT_CODES = {1, 2, 368} | _RATE_LIMIT_CODES
_TOKEN_CODE = 190
_PERMISSION_CODES = {10, *range(200, 300)}


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # 5xx, timeouts, connection errors, codes 1/2/368/is_transient
    RATE_LIMITED = "rate_limited"
    TOKEN = "token"  # noqa: S105 - code 190: invalid or expired access token
    PERMISSION = "permission"
    INVALID = "invalid"  # the payload or id is wrong: retrying the same data cannot help

    @property
    def retryable(self) -> bool:
        return self in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED)


class GraphError(Exception):
    """A failed Graph call; the message is Meta's own text, trimmed and scrubbed of the token."""

    def __init__(
        self, error_class: ErrorClass, message: str, code: int | None = None, fbtrace_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.code = code
        self.fbtrace_id = fbtrace_id


@dataclass(frozen=True, slots=True)
class Accepted:
    """Facebook's success answer: how many events it says it processed."""

    count: int | None
    fbtrace_id: str | None
    latency_ms: float


def classify(http_status: int, error: dict[str, Any]) -> ErrorClass:
    code = error.get("code")
    if code in _RATE_LIMIT_CODES:
        return ErrorClass.RATE_LIMITED
    if code in _TRANSIENT_CODES or error.get("is_transient") is True:
        return ErrorClass.TRANSIENT
    if code == _TOKEN_CODE:
        return ErrorClass.TOKEN
    if code in _PERMISSION_CODES:
        return ErrorClass.PERMISSION
    if code is None and http_status >= 500:
        return ErrorClass.TRANSIENT
    return ErrorClass.INVALID


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:_MESSAGE_LIMIT]


def _error_from(response: requests.Response, secrets: tuple[str, ...]) -> GraphError:
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict):
        if response.status_code == 429:
            error_class = ErrorClass.RATE_LIMITED
        elif response.status_code >= 500:
            error_class = ErrorClass.TRANSIENT
        else:
            error_class = ErrorClass.INVALID
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        return GraphError(
            error_class,
            f"Facebook answered HTTP {response.status_code} without a Graph error ({kind})",
        )
    parts = [str(error.get(key)) for key in ("message", "error_user_msg") if error.get(key)]
    return GraphError(
        classify(response.status_code, error),
        _scrub(" - ".join(parts) or "no message", secrets),
        code=error.get("code") if isinstance(error.get("code"), int) else None,
        fbtrace_id=error.get("fbtrace_id"),
    )


def _accepted_count(payload: dict[str, Any]) -> int | None:
    # Offline Conversions answers num_processed_entries, the Conversions API events_received.
    for key in ("num_processed_entries", "events_received"):
        if isinstance(payload.get(key), int):
            return payload[key]
    return None


class GraphClient:
    """Reused by warm invocations: the session keeps the TLS connection to Facebook open."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()

    def post(self, url: str, body: dict[str, Any], read_timeout: float, secrets: tuple[str, ...]) -> Accepted:
        """POST one request (token in the body, never the URL); raises GraphError."""
        with traced("Graph API events POST") as subsegment:
            if subsegment is not None:
                subsegment.put_annotation("events", len(body.get("data", [])))
            return self._post(url, body, read_timeout, secrets)

    def _post(self, url: str, body: dict[str, Any], read_timeout: float, secrets: tuple[str, ...]) -> Accepted:
        started = time.perf_counter()
        try:
            response = self.session.post(
                url,
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=(CONNECT_TIMEOUT, max(0.5, min(read_timeout, MAX_READ_TIMEOUT))),
                # A 307/308 resends the body, token included, wherever Location points (even http://).
                allow_redirects=False,
            )
        except requests.Timeout:
            raise GraphError(ErrorClass.TRANSIENT, "Facebook did not answer in time") from None
        except requests.RequestException as error:
            # requests' messages hold the URL (no token: it travels in the body) and the cause.
            raise GraphError(ErrorClass.TRANSIENT, f"could not reach Facebook ({type(error).__name__})") from None
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code != 200:
            raise _error_from(response, secrets)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or "error" in payload:
            raise GraphError(
                ErrorClass.TRANSIENT,
                "Facebook answered HTTP 200 with a body that is not a Graph success",
            )
        return Accepted(_accepted_count(payload), payload.get("fbtrace_id"), latency_ms)
