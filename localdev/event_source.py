"""A local stand-in for Lambda's SQS event source mapping: receive a batch, invoke, delete what succeeded.

Like the real mapping with ReportBatchItemFailures: up to `batch_size` messages and 6 MB of event per
invocation (SQS returns at most ten per receive, so it receives until it has them or the queue is empty;
a message that would pass 6 MB is left for the next invocation), the messages named in
`batchItemFailures` stay in the queue (visible again at once here, instead of after the visibility
timeout) and the queue's redrive policy moves them to its dead-letter queue after maxReceiveCount.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localdev.lambda_context import LocalContext

# Lambda's synchronous invocation payload, which caps an SQS event source's batch too (Lambda quotas).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


@dataclass
class Invocation:
    records: int
    failures: list[str] = field(default_factory=list)


def poll_once(
    sqs: Any, queue_url: str, handler: Callable[..., Any], batch_size: int = 1000, timeout: float = 60.0
) -> Invocation | None:
    """One invocation's worth, given `timeout` seconds (the sender's Lambda timeout): None when the queue is
    empty."""
    messages: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    size = len('{"Records": []}')
    full = False
    while len(messages) < batch_size and not full:
        received = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, batch_size - len(messages)),
            VisibilityTimeout=60,
            AttributeNames=["All"],  # ApproximateReceiveCount, as Lambda's event source gives it
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            record = _record(message, queue_url)
            record_size = len(json.dumps(record)) + 2  # and the separator
            full = full or size + record_size > MAX_PAYLOAD_BYTES
            if full:  # Lambda invokes with what fits; the rest waits for the next invocation
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                continue
            size += record_size
            messages.append(message)
            records.append(record)
    if not messages:
        return None
    event = {"Records": records}
    answer = handler(event, LocalContext(timeout_seconds=timeout))
    failures = [item["itemIdentifier"] for item in answer.get("batchItemFailures", [])]
    for message in messages:
        if message["MessageId"] in failures:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Invocation(len(messages), failures)


def drain(
    sqs: Any, queue_url: str, handler: Callable[..., Any], batch_size: int = 1000, rounds: int = 10
) -> list[Invocation]:
    """Invoke until the queue is empty (or `rounds` invocations): what each invocation got and failed."""
    invocations = []
    for _ in range(rounds):
        invocation = poll_once(sqs, queue_url, handler, batch_size)
        if invocation is None:
            break
        invocations.append(invocation)
    return invocations


def _record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[-1],
        "awsRegion": "us-east-1",
    }
