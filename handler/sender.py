"""The buffered sender function: an SQS event from the ingest queue in, `batchItemFailures` out.

Triggered by the SQS event source with ReportBatchItemFailures (README, "Delivery modes"): the ingest
messages' events are merged into full Graph requests (forwarder/buffered.py), and the messages not settled
(an event neither delivered nor parked) are reported back so SQS delivers exactly those again; Powertools'
batch utility writes the answer. Settings, secret, Graph session and deadlines are the webhook's own.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from forwarder.buffered import deliver_queued
from forwarder.connections import ConnectionsUnavailable, load_connections
from forwarder.deadline import Deadline
from forwarder.posting import Poster, Tokens
from forwarder.settings import SettingsError
from forwarder.telemetry import logger, metrics, record_queued, trace_handler
from handler.app import ANSWER_MARGIN_SECONDS, PARKING_RESERVE_SECONDS, graph_client, settings


class ReceiveAgain(Exception):
    """This message is not settled yet: SQS delivers it again (and redrives it after maxReceiveCount)."""


def _receives(record: dict[str, Any]) -> int:
    """How many times SQS has handed this message over, this time included (its ApproximateReceiveCount)."""
    count = (record.get("attributes") or {}).get("ApproximateReceiveCount", "1")
    return int(count) if isinstance(count, str) and count.isdigit() else 1


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@trace_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    answer_by = Deadline.after(context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS)
    send_by = answer_by.earlier(PARKING_RESERVE_SECONDS)
    records = [(record["messageId"], record["body"], _receives(record)) for record in event.get("Records", [])]
    config = settings()
    try:
        connections = load_connections(config, time_limit=send_by.left())
    except (SettingsError, ConnectionsUnavailable) as problem:
        logger.warning("connections unreadable: every message comes again", extra={"error": str(problem)})
        failed = {message_id for message_id, _, _ in records}
    else:
        # Each connection's secret is read when its first event is sent, with the token configured now; one
        # that cannot be read (or a connection no longer configured) has exactly its messages come again.
        poster = Poster(graph_client, config.graph_url, Tokens(connections.secret_ids))
        outcome = deliver_queued(records, connections, poster, send_by, answer_by)
        record_queued(outcome.summary())
        failed = outcome.failed

    def settled(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise ReceiveAgain(record.message_id)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=settled, processor=processor, context=context)
