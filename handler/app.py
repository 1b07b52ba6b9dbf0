"""API Gateway in, HTTP out: authenticate, decode, enforce limits, then hand the batch to `forwarder`.

Statuses follow the outside contract (README, "HTTP contract"): every verdict maps to one status in
`VERDICT_STATUS`, and every domain error to one in `ERROR_STATUS`, looked up along the error's class
hierarchy (so a subclass can have its own status before its base's), in one place. One route needs
no router: Powertools' event handler package costs about 45 ms of cold start (it imports every
resolver and asyncio) for a method and path check, so this module does that check itself and uses
Powertools for logs, metrics and traces.
"""

from __future__ import annotations

import base64
import hmac
import traceback
from typing import Any

import orjson
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from forwarder.batch import BatchError, BatchTooLarge, parse_batch
from forwarder.connections import ConnectionsUnavailable, UnknownConnection, load_connections
from forwarder.deadline import Deadline
from forwarder.destination import CONNECTION_NAME
from forwarder.graph_client import GraphClient
from forwarder.outcome import Verdict
from forwarder.parking import ParkingFailed
from forwarder.posting import Poster, Tokens
from forwarder.secrets import SecretInvalid, SecretUnavailable, get_credentials
from forwarder.settings import DeliveryMode, Settings, SettingsError, load_settings
from forwarder.telemetry import logger, metrics, record_parking_failure, record_summary, trace_handler
from forwarder.webhook import deliver_batch, queue_batch

ROUTE = "/events"  # the default connection; a named one is POST /events/{connection}
CONNECTION_ROUTE = "/events/{connection}"
# Lambda's synchronous payload limit is 6 MB; a body beyond this cannot be an mParticle batch we accept.
MAX_BODY_BYTES = 6 * 1024 * 1024
# Time kept back from the Lambda timeout: for answering, logging and metrics after the last wait, and
# before that for parking in SQS after the last Graph attempt.
ANSWER_MARGIN_SECONDS = 0.5
PARKING_RESERVE_SECONDS = 1.0  # SQS answers in tens of milliseconds; a set is a few messages
RETRY_AFTER_SECONDS = 60  # every 503 says when to come back

VERDICT_STATUS = {
    Verdict.DELIVERED: 200,
    Verdict.RETRY_LATER: 503,
    Verdict.OPERATOR_MUST_ACT: 502,
    Verdict.REJECTED: 422,
}


class HttpProblem(Exception):
    """A request the handler answers itself (401, 404, 413); the message is safe to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Domain errors -> status. 502 (not 4xx) for a secret an operator must fix and 500 for bad
# configuration: mParticle keeps retrying while the cause is fixed, so nothing is lost.
ERROR_STATUS: dict[type[Exception], int] = {
    BatchError: 400,
    BatchTooLarge: 413,  # a BatchError too: its own class is found first
    SettingsError: 500,
    ParkingFailed: 503,  # AWS failed transiently: the contract's 503 + Retry-After
    SecretInvalid: 502,
    SecretUnavailable: 503,
    ConnectionsUnavailable: 503,
}


def error_status(error: Exception) -> int:
    """The status of the nearest class in the error's hierarchy that ERROR_STATUS names."""
    return next(ERROR_STATUS[kind] for kind in type(error).__mro__ if kind in ERROR_STATUS)


graph_client = GraphClient()  # one keep-alive session per container
_settings: Settings | None = None


def settings() -> Settings:
    """Parsed on the first request, not at import, so a bad variable becomes a clear 500 body."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def json_response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if status == 503:  # the contract: every 503 says when to come back
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {
        "statusCode": status,
        "headers": headers,
        "body": orjson.dumps(body).decode(),
        "isBase64Encoded": False,
    }


def _header(event: dict[str, Any], name: str) -> str | None:
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    return next((value for key, value in headers.items() if str(key).lower() == name), None)


def _authenticate(event: dict[str, Any], accepted: tuple[str, ...]) -> None:
    """Constant-time comparison with every accepted value (all of them, so the time says nothing about which
    one matched); a secret without webhook_authorization refuses everyone."""
    received = _header(event, "authorization")
    received_bytes = (received if isinstance(received, str) else "").encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(received_bytes, value.encode("utf-8", "surrogatepass")) for value in accepted]
    if not any(matches):
        raise HttpProblem(401, "missing or invalid Authorization header")


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise BatchError("the request has no text body")
    if len(body) > MAX_BODY_BYTES * 4 // 3:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:  # binascii.Error, or a plain ValueError for non-ASCII text
            raise BatchError("the body is marked base64-encoded but is not valid base64") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")  # invalid UTF-8 is then refused by the JSON parser
    if len(raw) > MAX_BODY_BYTES:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise BatchError("the body is empty; expected an mParticle batch (JSON object)")
    return raw


def _connection(event: dict[str, Any]) -> str | None:
    """The connection a request is for: None for POST /events, the path parameter for POST
    /events/{connection}. Raises HttpProblem 404 for any other method, path or name."""
    if event.get("httpMethod") != "POST":
        raise HttpProblem(404, "not found: the routes are POST /events and POST /events/{connection}")
    resource, path = event.get("resource"), event.get("path")
    if (resource or path) == ROUTE:
        return None
    parameters = event.get("pathParameters")
    if resource == CONNECTION_ROUTE and isinstance(parameters, dict):
        name = parameters.get("connection")
    elif not resource and isinstance(path, str) and path.startswith(ROUTE + "/"):
        name = path.removeprefix(ROUTE + "/")
    else:
        raise HttpProblem(404, "not found: the routes are POST /events and POST /events/{connection}")
    if not isinstance(name, str) or not CONNECTION_NAME.fullmatch(name):
        raise HttpProblem(404, "unknown connection")
    return name


def receive_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """POST /events and POST /events/{connection}: the whole job for one mParticle batch."""
    answer_by = Deadline.after(context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS)
    send_by = answer_by.earlier(PARKING_RESERVE_SECONDS)
    name = _connection(event)
    try:  # before the body or any secret is read; a document that is not one fails every route (contract)
        config = load_connections(settings(), time_limit=send_by.left()).get(name)
    except UnknownConnection:
        raise HttpProblem(404, "unknown connection") from None
    credentials = get_credentials(config.secret_id, send_by.left(), setting=config.secret_setting)
    _authenticate(event, credentials.webhook_authorizations)
    batch = parse_batch(_raw_body(event))
    if config.delivery_mode is DeliveryMode.BUFFERED:
        queued = {"api": config.api.value, **queue_batch(batch, config, answer_by)}
        record_summary(queued, 200)
        return json_response(200, queued)
    tokens = Tokens.with_credentials({config.connection: config.secret_id}, {config.connection: credentials})
    outcome = deliver_batch(batch, config, Poster(graph_client, config.graph_url, tokens), send_by, answer_by)
    status = VERDICT_STATUS[outcome.verdict]
    summary = {"api": config.api.value, **outcome.summary()}
    record_summary(summary, status)
    if status == 200:
        return json_response(200, summary)
    return json_response(status, {"error": outcome.problem(), **summary})


def _refuse(status: int, message: str) -> dict[str, Any]:
    logger.warning("request refused", extra={"status": status, "error": message})
    record_summary({}, status)
    return json_response(status, {"error": message})


def _unexpected(error: Exception) -> dict[str, Any]:
    # The type and place only: an unexpected exception's text could quote the input.
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{'/'.join(frames[-1].filename.rsplit('/', 2)[-2:])}:{frames[-1].lineno}" if frames else "unknown"
    logger.error("unexpected error", extra={"error_type": type(error).__name__, "where": where})
    record_summary({}, 500)
    return json_response(500, {"error": f"internal error ({type(error).__name__}); mParticle will retry"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@trace_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return receive_batch(event, context)
    except HttpProblem as problem:
        return _refuse(problem.status, str(problem))
    except tuple(ERROR_STATUS) as error:
        if isinstance(error, ParkingFailed):
            record_parking_failure()
        message = f"invalid configuration: {error}" if isinstance(error, SettingsError) else str(error)
        return _refuse(error_status(error), message)
    except Exception as error:
        return _unexpected(error)
