"""The stack's backfill function: a file put under `backfill/` in the backfill bucket, sent by the code of
`python -m forwarder.backfill`, its report written beside it as `<key>.report.jsonl`.

The backfill state machine (template.yaml, BackfillStateMachine) invokes it with the EventBridge "Object
Created" event S3 sends, again until it answers `finished`: each invocation goes on from the input's
checkpoint and pauses, between gatherings, before its time runs out (docs/deploy.md, "Backfill").
S3's own notification event (`Records`) is taken too. Objects the backfill writes itself (reports,
checkpoints, report parts, locks) and names it cannot read are ignored.

Its answer, which the state machine's Choice reads: `finished`, `failed` and `locked`, always booleans
(the state machine compares them with BooleanEquals); the counts are in `summary`. `locked`: another
execution is sending this file now (S3 may deliver one put's event twice): nothing was sent, and the state
machine waits and invokes it again, to find the file sent or to go on from the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from forwarder.backfill.connection import connection_settings
from forwarder.backfill.files import InputError, Location
from forwarder.backfill.lock import Locked
from forwarder.backfill.progress import LOG_INTERVAL, Progress
from forwarder.backfill.report import FAILED, S3Report
from forwarder.backfill.run import Options, RunResult, State, Target, run
from forwarder.deadline import Deadline
from forwarder.destination import DEFAULT_CONNECTION
from forwarder.posting import Poster, Tokens
from forwarder.settings import SettingsError
from forwarder.telemetry import logger, metrics, trace_handler
from handler.app import graph_client

PREFIX = "backfill/"
REPORT_SUFFIX = ".report.jsonl"
# Kept back from the invocation's end: joining the report parts and answering the state machine.
STOP_MARGIN_SECONDS = 60.0
clock: Callable[[], float] = time.monotonic  # the invocation's clock (tests give their own)


def _object(event: dict[str, Any]) -> Location | None:
    """The object an EventBridge "Object Created" event or an S3 notification names."""
    try:
        if isinstance(detail := event.get("detail"), dict):
            return Location(str(detail["object"]["key"]), str(detail["bucket"]["name"]))
        s3 = event["Records"][0]["s3"]
        return Location(unquote_plus(str(s3["object"]["key"])), str(s3["bucket"]["name"]))
    except (KeyError, IndexError, TypeError):
        return None


def _ignored(location: Location | None) -> str | None:
    """Why this object is not sent, or None."""
    if location is None:
        return "the event names no S3 object"
    if not location.path.startswith(PREFIX):
        return f"only objects under {PREFIX} are sent"
    if location.path.endswith(REPORT_SUFFIX):
        return "a backfill report"
    try:
        location.kind  # noqa: B018 (raises for a name the backfill cannot read)
    except InputError as problem:
        return str(problem)
    return None


def _answer(location: Location, result: RunResult | None, error: str | None = None) -> dict[str, Any]:
    failed = error is not None or (
        result is not None
        and (
            result.state in (State.STOPPED, State.UNREADABLE)
            or result.tally.rows[FAILED] > 0
            or result.tally.failed_earlier > 0
        )
    )
    return {
        "bucket": location.bucket,
        "key": location.path,
        "finished": result is None or result.state is not State.PAUSED,
        "failed": failed,
        "locked": False,
        **({"error": error} if error else {}),
        **({"summary": result.summary()} if result is not None else {}),
    }


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@trace_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    location = _object(event)
    if (reason := _ignored(location)) is not None:
        logger.info("object not sent", extra={"reason": reason})
        return {"finished": True, "failed": False, "locked": False, "ignored": reason}
    assert location is not None
    stop_by = Deadline.after(context.get_remaining_time_in_millis() / 1000 - STOP_MARGIN_SECONDS, clock)
    report = S3Report(location.beside(REPORT_SUFFIX))
    try:
        settings = connection_settings(DEFAULT_CONNECTION)
        poster = Poster(graph_client, settings.graph_url, Tokens({settings.connection: settings.secret_id}))
        progress = Progress(lambda text, _: logger.info("backfill progress", extra={"progress": text}), LOG_INTERVAL)
        result = run(
            [location],
            Target(DEFAULT_CONNECTION, settings, poster),
            report,
            Options(stop_by=stop_by, progress=progress),
        )
    except Locked as error:
        logger.info("backfill waits for another run", extra={"object": str(location), "reason": str(error)})
        return {"bucket": location.bucket, "key": location.path, "finished": False, "failed": False, "locked": True}
    except (SettingsError, InputError) as error:
        logger.error("backfill refused the object", extra={"object": str(location), "error": str(error)})
        return _answer(location, None, str(error))
    if result.state is not State.PAUSED:
        report.close(complete=result.state is State.FINISHED)
    answer = _answer(location, result)
    for status, rows in result.tally.rows.items():
        metrics.add_metric(name=f"BackfillRows{status.capitalize()}", unit=MetricUnit.Count, value=rows)
    logger.info("backfill invocation", extra={"object": str(location), **answer})
    return answer
