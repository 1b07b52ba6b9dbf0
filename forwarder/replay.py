"""Replay parked events: `python -m forwarder.replay` (README, "Parking and replay").

Reads the parking queue, sends each parked part again through the same `Sender` the function uses
(same retries, token re-read, timeouts), deletes what Facebook accepted in full and keeps the rest
for a later run. Works against real AWS or the local moto server: it uses the function's own
environment variables (SECRET_ID, PARKING_QUEUE_URL, FACEBOOK_GRAPH_URL, AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.delivery import DELIVERED, Sender, TokenSource
from forwarder.graph_client import GraphClient
from forwarder.parking import read_part, sqs_client
from forwarder.secrets import get_credentials
from forwarder.settings import FacebookApi, Settings, load_settings

# Long enough for one part's retries; a message not deleted reappears after it for the next run.
VISIBILITY_TIMEOUT = 120
SEND_BUDGET_SECONDS = 60.0


@dataclass
class ReplayReport:
    messages: int = 0
    delivered_events: int = 0
    deleted: int = 0
    kept: Counter[str] = field(default_factory=Counter)  # reason -> messages left in the queue

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "delivered_events": self.delivered_events,
            "deleted": self.deleted,
            "kept": dict(self.kept),
        }


def _settings_for(settings: Settings, parked: dict[str, Any]) -> Settings:
    """Parked events go where they were rendered for: same API, version and event set."""
    try:
        api = FacebookApi(parked.get("api", settings.api))
    except ValueError:
        return settings
    return dataclasses.replace(
        settings,
        api=api,
        api_version=str(parked.get("api_version") or settings.api_version),
        event_set_id=str(parked.get("event_set_id") or settings.event_set_id),
        upload_tag=str(parked.get("upload_tag") or settings.upload_tag),
    )


def replay(settings: Settings, client: GraphClient | None = None, max_messages: int = 1000) -> ReplayReport:
    client = client or GraphClient()
    sqs = sqs_client()
    tokens = TokenSource(get_credentials(settings.secret_id), lambda: get_credentials(settings.secret_id, True))
    report = ReplayReport()
    while report.messages < max_messages:
        received = sqs.receive_message(
            QueueUrl=settings.parking_queue_url,
            MaxNumberOfMessages=min(10, max_messages - report.messages),
            VisibilityTimeout=VISIBILITY_TIMEOUT,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            report.messages += 1
            try:
                part = read_part(message["Body"])
            except ValueError:
                report.kept["unreadable message"] += 1
                continue
            sender = Sender(
                _settings_for(settings, part.settings), tokens, client, time.monotonic() + SEND_BUDGET_SECONDS
            )
            result = sender.send(part.events)
            if result.status == DELIVERED and (result.accepted is None or result.accepted >= result.events):
                sqs.delete_message(QueueUrl=settings.parking_queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.deleted += 1
                report.delivered_events += result.events
            else:
                report.kept[result.parking_reason or f"{result.status}: {result.error}"] += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forwarder.replay", description=__doc__)
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many messages")
    args = parser.parse_args(argv)
    report = replay(load_settings(), max_messages=args.max_messages)
    print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    return 0 if not report.kept else 1


if __name__ == "__main__":
    sys.exit(main())
