"""The Graph API client: one keep-alive session per container, one POST per chunk, errors classified.

Error codes and what to do with them are Meta's (graph-api/guides/error-handling,
marketing-api/overview/rate-limiting); the table is in README ("Facebook errors").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import requests

from forwarder.deadline import OutOfTime, bounded
from forwarder.telemetry import traced

CONNECT_TIMEOUT = 3.05
MAX_READ_TIMEOUT = 10.0
# Meta's answers are a few hundred bytes; a bigger one is not a Graph answer, and is not read further.
MAX_ANSWER_BYTES = 64 * 1024
# Meta's trace ids are short base64-like tokens; anything else is not kept (it travels to logs and answers).
_FBTRACE_ID = re.compile(r"[A-Za-z0-9_+/=-]{1,64}")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9.+/-]{1,64}")
_BLAMED = re.compile(r"\bdata\[([0-9]{1,4})\]")  # bounded repetition: linear
_MAX_CODE = 2**31 - 1


Redact = Callable[[str], str]  # forwarder.redaction.Redactor


class ErrorClass(StrEnum):
    TRANSIENT = "transient"  # 5xx, timeouts, connection errors, codes 1/2/368, is_transient
    RATE_LIMITED = "rate_limited"
    TOKEN = "token"  # noqa: S105 - code 190: invalid or expired access token
    PERMISSION = "permission"
    INVALID = "invalid"  # the payload or id is wrong: retrying the same data cannot help

    @property
    def retryable(self) -> bool:
        return self in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED)


# Meta's codes and what to do about them: graph-api/guides/error-handling ("Error Codes") and
# marketing-api/overview/rate-limiting (32, 613, 80000-80014: business use case limits).
ERROR_CODES: dict[int, ErrorClass] = {
    1: ErrorClass.TRANSIENT,  # API Unknown: "possibly a temporary issue due to downtime; wait and retry"
    2: ErrorClass.TRANSIENT,  # API Service: "temporary issue due to downtime"
    368: ErrorClass.TRANSIENT,  # temporarily blocked for policies violations: "wait and retry"
    **dict.fromkeys((4, 17, 32, 341, 613, *range(80000, 80015)), ErrorClass.RATE_LIMITED),
    102: ErrorClass.TOKEN,  # API Session: "the login status or access token has expired"
    190: ErrorClass.TOKEN,  # access token expired or invalid
    3: ErrorClass.PERMISSION,  # API Method: "capability or permissions issue"
    **dict.fromkeys((10, *range(200, 300)), ErrorClass.PERMISSION),
}


class GraphError(Exception):
    """A failed Graph call; the message is Meta's own text, redacted (secrets, personal values) and trimmed."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        code: int | None = None,
        fbtrace_id: str | None = None,
        subcode: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.code = code
        self.fbtrace_id = fbtrace_id
        self.subcode = subcode
        self.index = index  # the event of `data` the error names, when it names one


@dataclass(frozen=True, slots=True)
class Accepted:
    """Facebook's success answer: how many events it says it processed (0..events sent)."""

    count: int
    fbtrace_id: str | None
    latency_ms: float


def classify(http_status: int, code: int | None, is_transient: bool) -> ErrorClass:
    """What an error means, from Meta's code first, then Meta's `is_transient`, then the HTTP status.

    One table (README, "Facebook errors"): a code Meta documents decides, whatever the status; an
    unknown or absent code is transient with HTTP 5xx or `is_transient`, rate limited with HTTP 429,
    and otherwise a rejection of the request itself.
    """
    if code is not None and (known := ERROR_CODES.get(code)) is not None:
        return known
    if is_transient or http_status >= 500:
        return ErrorClass.TRANSIENT
    if http_status == 429:
        return ErrorClass.RATE_LIMITED
    return ErrorClass.INVALID


def _code(value: Any) -> int | None:
    """A Graph error code: a JSON integer in range (not a bool, a float or a string)."""
    return value if type(value) is int and 0 <= value <= _MAX_CODE else None


def fbtrace_id(value: Any) -> str | None:
    """Meta's request trace id when it is one; None for anything else (nested, huge, odd characters)."""
    return value if isinstance(value, str) and _FBTRACE_ID.fullmatch(value) else None


def _content_type(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    return kind if _CONTENT_TYPE.fullmatch(kind) else "no or an unusual content type"


def _error_from(status: int, answer: bytes | None, response: requests.Response, redact: Redact) -> GraphError:
    try:
        error = orjson.loads(answer).get("error") if answer is not None else None
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return GraphError(
            classify(status, None, False),
            f"Facebook answered HTTP {status} without a Graph error ({_content_type(response)})",
        )
    code = _code(error.get("code"))
    texts = ("message", "error_user_title", "error_user_msg")
    parts = [error[key] for key in texts if isinstance(error.get(key), str) and error[key]]
    return GraphError(
        classify(status, code, error.get("is_transient") is True),
        redact(" - ".join(parts) or "no message"),
        code=code,
        fbtrace_id=fbtrace_id(error.get("fbtrace_id")),
        subcode=_code(error.get("error_subcode")),
        index=_blamed_event(parts, error.get("error_data")),
    )


def _blamed_event(texts: list[str], error_data: Any) -> int | None:
    """The index in `data` of the event an error blames: Meta names it as `data[3]` in its texts, or in
    `error_data.blame_field_specs` as `["data", 3, …]`. None when it names none (or only oddly)."""
    if isinstance(error_data, dict):
        specs = error_data.get("blame_field_specs")
        if isinstance(specs, list) and specs and isinstance(specs[0], list) and len(specs[0]) >= 2:
            field_name, index = specs[0][0], specs[0][1]
            if field_name == "data" and type(index) is int and 0 <= index < 10_000:
                return index
    for text in texts:
        if match := _BLAMED.search(text[:1200]):
            return int(match.group(1))
    return None


def _accepted(answer: bytes | None, events: int, count_field: str, latency_ms: float) -> Accepted:
    """Facebook's success answer, checked: its count must be a whole number between 0 and what was sent."""
    try:
        payload = orjson.loads(answer) if answer is not None else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and "error" not in payload:
        count = payload.get(count_field)
        if type(count) is int and 0 <= count <= events:
            return Accepted(count, fbtrace_id(payload.get("fbtrace_id")), latency_ms)
    raise GraphError(
        ErrorClass.TRANSIENT, f"Facebook answered HTTP 200 without a valid {count_field} (not a Graph success)"
    )


def _read_answer(response: requests.Response) -> bytes | None:
    """The body, or None when it is larger than any Graph answer (then it is not read further)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(16 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class GraphClient:
    """Reused by warm invocations: the session keeps the TLS connection to Facebook open."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()

    def post(self, url: str, body: dict[str, Any], time_limit: float, redact: Redact, count_field: str) -> Accepted:
        """POST one request (token in the body, never the URL) and wait at most `time_limit` seconds in total,
        connection and every read included; raises GraphError. `redact` cleans Facebook's text of secrets and
        personal values; `count_field` is the API's count of processed events."""
        with traced("Graph API events POST") as subsegment:
            if subsegment is not None:
                subsegment.put_annotation("events", len(body.get("data", [])))
            try:
                with bounded(min(time_limit, CONNECT_TIMEOUT + MAX_READ_TIMEOUT)):
                    return self._post(url, body, time_limit, redact, count_field)
            except OutOfTime:
                # The connection was abandoned mid-request: never reuse it.
                self.session.close()
                raise GraphError(ErrorClass.TRANSIENT, "Facebook did not answer in time") from None

    def _post(self, url: str, body: dict[str, Any], time_limit: float, redact: Redact, count_field: str) -> Accepted:
        started = time.perf_counter()
        try:
            data = orjson.dumps(body)
        except orjson.JSONEncodeError:  # nesting orjson cannot write: the request itself is wrong
            raise GraphError(ErrorClass.INVALID, "the events cannot be sent as JSON (nested too deep)") from None
        try:
            with self.session.post(
                url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=(CONNECT_TIMEOUT, max(0.5, min(time_limit - CONNECT_TIMEOUT, MAX_READ_TIMEOUT))),
                # A 307/308 resends the body, token included, wherever Location points (even http://).
                allow_redirects=False,
                stream=True,  # the answer is read with a size limit
            ) as response:
                answer = _read_answer(response)
        except requests.Timeout:
            raise GraphError(ErrorClass.TRANSIENT, "Facebook did not answer in time") from None
        except requests.RequestException as error:
            # requests' messages hold the URL (no token: it travels in the body) and the cause.
            raise GraphError(ErrorClass.TRANSIENT, f"could not reach Facebook ({type(error).__name__})") from None
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        if response.status_code != 200:
            raise _error_from(response.status_code, answer, response, redact)
        return _accepted(answer, len(body.get("data", [])), count_field, latency_ms)
