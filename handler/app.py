"""API Gateway in, HTTP out: authenticate, decode, enforce limits, then hand the batch to `forwarder`.

Statuses follow the outside contract (README, "HTTP contract"); every domain error maps to one
status in the exception handlers below, not in try/except blocks scattered through the route.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import traceback
from typing import Any

import orjson
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from forwarder.batch import BatchError
from forwarder.delivery import RETRY_AFTER_SECONDS, Sender, TokenSource, Verdict, deliver, parse_body
from forwarder.graph_client import GraphClient
from forwarder.parking import ParkingFailed
from forwarder.secrets import SecretInvalid, SecretUnavailable, get_credentials
from forwarder.settings import Settings, SettingsError, load_settings
from forwarder.telemetry import logger, metrics, record_parking_failure, record_summary, tracer

# Lambda's synchronous payload limit is 6 MB; a body beyond this cannot be an mParticle batch we accept.
MAX_BODY_BYTES = 6 * 1024 * 1024
# Time kept back from the Lambda timeout for answering, logging and metrics after the last retry.
SAFETY_MARGIN_SECONDS = 1.5

VERDICT_STATUS = {
    Verdict.DELIVERED: 200,
    Verdict.RETRY_LATER: 503,
    Verdict.OPERATOR_MUST_ACT: 502,
    Verdict.REJECTED: 422,
}

app = APIGatewayRestResolver()
graph_client = GraphClient()  # one keep-alive session per container
_settings: Settings | None = None


class HttpProblem(Exception):
    """A request the handler answers itself (401, 413); the message is safe to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def settings() -> Settings:
    """Parsed on the first request, not at import, so a bad variable becomes a clear 500 body."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=orjson.dumps(body).decode(),
        headers=headers or {},
    )


def _header(name: str) -> str | None:
    headers = app.current_event.get("headers") or {}
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _authenticate(expected: str | None) -> None:
    """Constant-time comparison; a secret without webhook_authorization refuses everyone."""
    received = _header("authorization") or ""
    if not expected or not hmac.compare_digest(received.encode(), expected.encode()):
        raise HttpProblem(401, "missing or invalid Authorization header")


def _raw_body() -> bytes:
    body = app.current_event.get("body") or ""
    if not isinstance(body, str):
        raise BatchError("the request has no text body")
    if len(body) > MAX_BODY_BYTES * 4 // 3:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if app.current_event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise BatchError("the body is marked base64-encoded but is not valid base64") from None
    else:
        raw = body.encode()
    if len(raw) > MAX_BODY_BYTES:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise BatchError("the body is empty; expected an mParticle batch (JSON object)")
    return raw


@app.post("/events")
def receive_batch() -> Response:
    config = settings()
    credentials = get_credentials(config.secret_id)
    _authenticate(credentials.webhook_authorization)
    body = parse_body(_raw_body())
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000
    sender = Sender(
        settings=config,
        tokens=TokenSource(credentials, lambda: get_credentials(config.secret_id, force=True)),
        client=graph_client,
        deadline=time.monotonic() + remaining - SAFETY_MARGIN_SECONDS,
    )
    outcome = deliver(body, config, sender)
    logger.append_keys(batch_id=outcome.batch_id, source_request_id=outcome.source_request_id)
    status = VERDICT_STATUS[outcome.verdict]
    summary = {"api": config.api.value, **outcome.summary()}
    record_summary(summary, status)
    if status == 200:
        return json_response(200, summary)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return json_response(status, {"error": outcome.problem(), **summary}, headers)


def _refuse(
    status: int, error: Exception, headers: dict[str, str] | None = None, message: str | None = None
) -> Response:
    message = message or str(error)
    logger.warning("request refused", extra={"status": status, "error": message})
    record_summary({}, status)
    return json_response(status, {"error": message}, headers)


@app.exception_handler(HttpProblem)
def _http_problem(error: HttpProblem) -> Response:
    return _refuse(error.status, error)


@app.exception_handler(BatchError)
def _bad_batch(error: BatchError) -> Response:
    return _refuse(400, error)


@app.exception_handler(SettingsError)
def _bad_settings(error: SettingsError) -> Response:
    return _refuse(500, SettingsError(f"invalid configuration: {error}"))


@app.exception_handler(SecretUnavailable)
def _secret_unavailable(error: SecretUnavailable) -> Response:
    return _refuse(503, error, {"Retry-After": str(RETRY_AFTER_SECONDS)})


@app.exception_handler(SecretInvalid)
def _secret_invalid(error: SecretInvalid) -> Response:
    # 502, not 4xx: mParticle keeps retrying while an operator fixes the secret.
    return _refuse(502, error)


@app.not_found
def _not_found(error: NotFoundError) -> Response:
    return _refuse(404, error, message="not found: the only route is POST /events")


@app.exception_handler(ParkingFailed)
def _parking_failed(error: ParkingFailed) -> Response:
    # Never a final answer without a durable copy: 500 makes mParticle send the batch again.
    record_parking_failure()
    return _refuse(500, error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    # The type and place only: an unexpected exception's text could quote the input.
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{'/'.join(frames[-1].filename.rsplit('/', 2)[-2:])}:{frames[-1].lineno}" if frames else "unknown"
    logger.error("unexpected error", extra={"error_type": type(error).__name__, "where": where})
    record_summary({}, 500)
    return json_response(500, {"error": f"internal error ({type(error).__name__}); mParticle will retry"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
