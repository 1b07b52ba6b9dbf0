"""Replay parked events: `python -m forwarder.replay` (docs/delivery.md, "Parking and replay"); `--list` shows them.

Reads the parking queue and sends every complete set of parked events once, through the delivery core
the function uses (forwarder/delivery.py: retries, token re-read, isolation, parking, time limits), to
the destination configured now
(FACEBOOK_API_VERSION, OFFLINE_EVENT_SET_ID, UPLOAD_TAG: the usual fix for a parked batch is a
corrected variable), or with `--parked-destination` to the one recorded when it was parked. It deletes
what Facebook accepted, parks again only what it did not take of a set it took in part, keeps the rest,
and sets aside messages it cannot read. Every message it holds stays invisible to other consumers for as
long as it works (a heartbeat extends the visibility timeout), so two replays never send the same set.
It uses the function's own environment (SECRET_ID, PARKING_QUEUE_URL, AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import NoRegionError

from forwarder.connections import Connections, ConnectionsUnavailable, load_connections
from forwarder.deadline import Deadline
from forwarder.delivery import deliver
from forwarder.destination import DEFAULT_CONNECTION
from forwarder.graph_client import GraphClient
from forwarder.held_messages import (
    AWS_CALL_SECONDS,
    VISIBILITY_TIMEOUT,
    HeldMessages,
    ReplayFailed,
    sqs_call,
)
from forwarder.outcome import DELIVERED, Outgoing, RequestOutcome, Unit
from forwarder.parked_list import list_parked, render
from forwarder.parked_messages import MalformedPart, read_part
from forwarder.parking import sqs_client
from forwarder.posting import Poster, Tokens
from forwarder.replay_sets import ParkedSet, ReplayReport
from forwarder.secrets import SecretInvalid, SecretUnavailable, get_credentials
from forwarder.settings import Settings, SettingsError, load_settings
from forwarder.settled import event_key

SEND_BUDGET_SECONDS = 60.0  # per request of a parked set: its retries and the isolation of its rejected events
# A set with parts missing after this long can never be completed: every invocation that parks ends
# within Lambda's maximum timeout. Its batch was answered 503 and resent by mParticle.
INCOMPLETE_AFTER_SECONDS = 15 * 60


INCOMPLETE = "set incomplete: its other parts were not received in this run"
NO_REGION = "no AWS region: set AWS_DEFAULT_REGION (the ReplayEnvironment output of a stack sets it)"
REPARKED = "parked again by this run (its rejected events alone): the next run sends it"


@dataclass
class Replayer:
    connections: Connections
    poster: Poster
    holding: HeldMessages
    parked_destination: bool
    report: ReplayReport = field(default_factory=ReplayReport)
    sets: dict[str, ParkedSet] = field(default_factory=dict)
    finished_sets: set[str] = field(default_factory=set)  # sent or discarded in this run
    reparked_sets: set[str] = field(default_factory=set)  # parked again by this run: for the next one
    # Every event this run has handed to the core (event_key at its destination): a copy of one in another set
    # (a redriven ingest message beside its event parked alone, a set parked again by a retry) goes once.
    handled: set[str] = field(default_factory=set)

    def take(self, message: dict[str, Any]) -> None:
        handle = message["ReceiptHandle"]
        self.holding.hold(handle)
        self.report.messages += 1
        try:
            part = read_part(message["Body"])
        except MalformedPart as problem:
            self.report.malformed[str(problem)] += 1
            return
        if part.set_id in self.reparked_sets:  # left as it is, visible again when this run ends
            self.report.kept[REPARKED] += 1
            return
        if part.set_id in self.finished_sets:
            self.report.duplicates += 1
            self.holding.delete([handle])
            self.report.deleted += 1
            return
        pending = self.sets.setdefault(part.set_id, ParkedSet())
        if part.part in pending.parts:
            self.report.duplicates += 1
        pending.parts.setdefault(part.part, part)
        pending.handles.append(handle)
        if pending.complete and pending.kept is None:
            self._send(part.set_id, pending)

    def _send(self, set_id: str, pending: ParkedSet) -> None:
        """One complete set through the delivery core, as one unit: deleted once each of its events was
        delivered or parked again; kept as it is when nothing of it was delivered."""
        first = pending.first()
        try:
            target = self.connections.current(first.destination, as_recorded=self.parked_destination)
        except ValueError as problem:
            self._keep(pending, f"destination: {problem}")
            return
        unit = Unit(set_id, first.batch_id, first.source_request_id)
        items = []
        for index in sorted(pending.parts):
            for event in pending.parts[index].events:
                key = event_key(target, event)
                if key in self.handled:
                    self.report.duplicate_events += 1  # handled with another set of this run: it stays there
                    continue
                self.handled.add(key)
                items.append(Outgoing(target, event, unit))
        if not items:
            self._finish(set_id, pending)
            return
        requests = -(-len(items) // target.profile.max_events_per_request)
        send_by = Deadline.after(SEND_BUDGET_SECONDS * requests)
        delivery = deliver(
            items,
            self.poster,
            send_by,
            send_by.later(AWS_CALL_SECONDS),  # parking starts once sending is done, however long it took
            self.connections.default.parking_queue_url,
            resend_partial=False,
            keep_undelivered=True,
        )
        self.report.isolation_requests += delivery.isolation_requests
        if set_id in delivery.resend:
            self._keep(pending, _reason(delivery.requests, delivery.parking_failure))
            return
        self.report.reparked_events += delivery.parked
        self.report.delivered_events += delivery.forwarded
        self.reparked_sets |= delivery.parked_sets
        self._finish(set_id, pending)

    def _finish(self, set_id: str, pending: ParkedSet) -> None:
        """The set is done with: its messages deleted."""
        self.finished_sets.add(set_id)
        self.holding.delete(pending.handles)
        self.report.deleted += len(pending.handles)
        del self.sets[set_id]

    def _keep(self, pending: ParkedSet, reason: str) -> None:
        pending.kept = reason

    def finish(self, now: float, discard: bool) -> None:
        """Count what stays. An incomplete set is deleted only when `discard` says the whole queue was seen
        (no cut, no other consumer) and it is older than any invocation could still be writing it: a set
        whose other parts this run merely did not receive must never be lost."""
        for pending in self.sets.values():
            if pending.kept is not None:
                self.report.kept[pending.kept] += len(pending.handles)
            elif discard and now - max(part.parked_at for part in pending.parts.values()) > INCOMPLETE_AFTER_SECONDS:
                self.holding.delete(pending.handles)
                self.report.incomplete_discarded += len(pending.handles)
                self.report.deleted += len(pending.handles)
            else:
                self.report.kept[INCOMPLETE] += len(pending.handles)
        self.sets.clear()


def _reason(requests: list[RequestOutcome], parking_failure: str | None) -> str:
    """Why a set stays: the first request that did not settle it (its rejection, or its failure)."""
    if parking_failure:
        return f"delivered in part, and the rest could not be parked again: {parking_failure}"
    for request in requests:
        if request.status != DELIVERED:
            return request.parking_reason or f"{request.status}: {request.error or 'no time left'}"
    return "not delivered"


def replay(
    settings: Settings,
    client: GraphClient | None = None,
    max_messages: int = 1000,
    parked_destination: bool = False,
    discard_incomplete: bool = False,
) -> ReplayReport:
    """Replay up to `max_messages` parked messages with the connections configured now (each set with its
    connection's token); raises ReplayFailed when SQS or the default secret cannot be used, or
    ConnectionsUnavailable.

    `discard_incomplete` deletes sets that stay incomplete (their batch was answered 503 when a later part
    could not be written, and mParticle resent it) once older than INCOMPLETE_AFTER_SECONDS, but only when
    this run read the queue to its end and no other consumer held a message meanwhile."""
    sqs = sqs_client()
    queue = settings.parking_queue_url
    credentials = get_credentials(settings.secret_id, AWS_CALL_SECONDS)
    connections = load_connections(settings, time_limit=AWS_CALL_SECONDS)
    tokens = Tokens.with_credentials(connections.secret_ids, {DEFAULT_CONNECTION: credentials})
    poster = Poster(client or GraphClient(), settings.graph_url, tokens)
    with HeldMessages(sqs, queue) as holding:
        replayer = Replayer(connections, poster, holding, parked_destination)
        drained = False
        while replayer.report.messages < max_messages:
            received = sqs_call(
                sqs.receive_message,
                QueueUrl=queue,
                MaxNumberOfMessages=min(10, max_messages - replayer.report.messages),
                VisibilityTimeout=VISIBILITY_TIMEOUT,
                WaitTimeSeconds=1,
            ).get("Messages", [])
            if not received:
                drained = True
                break
            for message in received:
                replayer.take(message)
        alone = discard_incomplete and drained and _counts(sqs, queue)[1] <= holding.count()
        replayer.finish(time.time(), discard=alone)
    report = replayer.report
    report.waiting, report.in_flight = _counts(sqs, queue)
    return report


def _counts(sqs: Any, queue: str) -> tuple[int, int]:
    """SQS's approximate counts of visible and in-flight messages."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs_call(sqs.get_queue_attributes, QueueUrl=queue, AttributeNames=names)["Attributes"]
    return int(attributes.get(names[0], 0)), int(attributes.get(names[1], 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forwarder.replay", description=__doc__)
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many messages")
    parser.add_argument(
        "--discard-incomplete",
        action="store_true",
        help=f"delete sets still incomplete {INCOMPLETE_AFTER_SECONDS // 60} minutes after they were parked "
        "(run alone, without --max-messages)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="show what is parked (counts by reason, connection, dataset and age; one line per set) without "
        "sending, deleting or hiding anything",
    )
    parser.add_argument(
        "--parked-destination",
        action="store_true",
        help="send to the API version, event set and upload tag recorded when the events were parked",
    )
    args = parser.parse_args(argv)
    if args.list:
        return _list()
    try:
        report = replay(
            load_settings(),
            max_messages=args.max_messages,
            parked_destination=args.parked_destination,
            discard_incomplete=args.discard_incomplete,
        )
    except (ReplayFailed, SettingsError, SecretInvalid, SecretUnavailable, ConnectionsUnavailable) as error:
        print(f"replay stopped: {error}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(f"replay stopped: {NO_REGION}", file=sys.stderr)
        return 2
    print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    if report.in_flight:
        print(
            f"{report.in_flight} messages are held by another consumer (another replay, or one that stopped less "
            f"than {VISIBILITY_TIMEOUT} s ago): run again later",
            file=sys.stderr,
        )
    return 0 if report.finished else 1


def _list() -> int:
    try:
        listing = list_parked(sqs_client(), load_settings().parking_queue_url)
    except (ReplayFailed, SettingsError) as error:
        print(f"list stopped: {error}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(f"list stopped: {NO_REGION}", file=sys.stderr)
        return 2
    print(render(listing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
