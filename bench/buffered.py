"""Measurements 7 to 9: buffered delivery against direct delivery, on the same kind of traffic.

The traffic is mParticle's webhook in steady state: many small batches of the sample's user, 1 to 5
events each (`workload.webhook_batches`), on the Conversions API (the only one buffered delivery
feeds). Direct: the webhook function sends each batch to Facebook itself. Buffered: the webhook
function writes each batch's rendered events to the ingest queue (moto) and answers; the sender
function, invoked by the stand-in for Lambda's SQS event source (localdev/event_source.py) with the
stack's batch size, merges them into Graph requests of up to 1000 events. Both are the real handlers,
invoked as Lambda invokes them, each mode with its settings parsed once, as in a warm container.

7. Graph requests for the same batches in both modes, counted by the Graph stand-in, which checks every
   request as Facebook would; every event_id must arrive exactly once in each mode.
8. The webhook's answer time (its handler's time) against a Graph that answers in 150 ms.
9. Lambda time per 1000 events: the handler time of every webhook and every sender invocation. The
   event source's receives and deletes are Lambda's own work, not the function's, and are not timed.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from typing import Any

import boto3
import orjson

from bench import workload
from bench.harness import Function, Row, function_env, percentile_ms, timed
from localdev.event_source import drain
from localdev.graph_stub import GraphStub

BATCHES = 1000
# template.yaml, SenderBatchSize's default. Its 60 s window (SenderMaximumBatchingWindowInSeconds) fills
# every invocation when 1000 batches or more arrive a minute, the traffic rows 7 to 9 stand for.
SENDER_BATCH_SIZE = 1000
GRAPH_SECONDS = 0.150
DIRECT_EVERY = 5  # row 8/9: one direct invocation (150 ms each) per five buffered ones, interleaved
INVOKE_PAYLOAD_LIMIT = 6 * 1024 * 1024  # Lambda's, for the sender's SQS event too
REQUESTS_TARGET = 100  # at least 100x fewer Graph requests
ANSWER_TARGET = 5  # buffered p99 at most 1/5 of direct
LAMBDA_TARGET = 10  # buffered Lambda time at most 1/10 of direct


class Stack:
    """Both functions of a stack in one interpreter: the webhook in either mode, the sender, the ingest queue."""

    def __init__(self, function: Function, graph_url: str) -> None:
        from forwarder.settings import load_settings
        from handler.sender import lambda_handler

        env = function_env(function.aws_env, graph_url, "conversions_api")
        self.settings = {mode: load_settings({**env, "DELIVERY_MODE": mode}) for mode in ("direct", "buffered")}
        self.function = function
        self.sender = lambda_handler
        self.queue_url = function.aws_env["INGEST_QUEUE_URL"]
        self.sqs = boto3.client("sqs", endpoint_url=function.aws_env["AWS_ENDPOINT_URL"])
        self.sender_events: list[int] = []  # each sender invocation's event size, as Lambda would deliver it

    def webhook(self, mode: str, event: dict[str, Any]) -> dict[str, Any]:
        self.function.use(self.settings[mode])
        return self.function.invoke(event)

    def drain(self, times: list[float] | None = None) -> list[Any]:
        """Invoke the sender until the ingest queue is empty; its handler times go to `times`."""
        self.function.use(self.settings["buffered"])

        def sender(event: dict[str, Any], context: Any) -> Any:
            self.sender_events.append(len(orjson.dumps(event)))
            answers: list[Any] = []
            seconds = timed(lambda: answers.append(self.sender(event, context)))
            if times is not None:
                times.append(seconds)
            return answers[0]

        invocations = drain(self.sqs, self.queue_url, sender, SENDER_BATCH_SIZE, rounds=BATCHES)
        if failed := [item for invocation in invocations for item in invocation.failures]:
            raise RuntimeError(f"the sender failed {len(failed)} messages")
        if self.sqs.receive_message(QueueUrl=self.queue_url, VisibilityTimeout=0).get("Messages"):
            raise RuntimeError("the ingest queue was not drained")
        return invocations


def _events(batches: list[dict[str, Any]]) -> int:
    return sum(len(batch["events"]) for batch in batches)


def _event_ids(batches: list[dict[str, Any]]) -> Counter[str]:
    """What each event's Conversions API event_id is (forwarder/mapping.py: its source_message_id)."""
    return Counter(event["data"]["source_message_id"] for batch in batches for event in batch["events"])


def count_requests(function: Function, batches: int = BATCHES) -> dict[str, Any]:
    """Measurement 7: the same batches through each mode, against the checking Graph stand-in."""
    bodies = workload.webhook_batches(batches)
    events = [workload.api_event(body) for body in bodies]
    expected = _event_ids(bodies)
    result: dict[str, Any] = {"batches": batches, "events": _events(bodies)}
    with GraphStub() as graph:
        stack = Stack(function, graph.url)
        for event in events:
            stack.webhook("direct", event)
        result["direct_requests"] = len(graph.received)
        result["direct_exact"] = Counter(item["event_id"] for item in graph.events) == expected
        graph.received.clear()
        for event in events:
            stack.webhook("buffered", event)
        webhook_requests = len(graph.received)
        invocations = stack.drain()
        result["buffered_requests"] = len(graph.received)
        result["buffered_exact"] = (
            webhook_requests == 0 and Counter(item["event_id"] for item in graph.events) == expected
        )
        result["sender_records"] = [invocation.records for invocation in invocations]
        result["largest_request"] = max(len(request.data) for request in graph.received)
        result["largest_sender_event"] = max(stack.sender_events)
    return result


def time_invocations(function: Function, graph_url: str, batches: int = BATCHES) -> dict[str, Any]:
    """Measurements 8 and 9, against a Graph answering in GRAPH_SECONDS (`graph_url`): every webhook
    invocation timed, buffered and direct interleaved (one direct per DIRECT_EVERY buffered), then the
    sender's invocations that send what was queued."""
    buffered_bodies = workload.webhook_batches(batches)
    first = _events(buffered_bodies)
    direct_bodies = workload.webhook_batches(batches // DIRECT_EVERY, first=first)
    warm_up = workload.webhook_batches(2, first=first + _events(direct_bodies))
    stack = Stack(function, graph_url)
    stack.webhook("direct", workload.api_event(warm_up[0]))  # secret cached, connections open, imports done
    stack.webhook("buffered", workload.api_event(warm_up[1]))
    stack.drain()
    buffered, direct = [workload.api_event(body) for body in buffered_bodies], iter(direct_bodies)
    gc.collect()
    gc.freeze()  # imports and prepared events: the collection before each timed call then walks only what is new
    times: dict[str, list[float]] = {"buffered": [], "direct": [], "sender": []}
    for number, event in enumerate(buffered):
        times["buffered"].append(timed(lambda event=event: stack.webhook("buffered", event)))
        if number % DIRECT_EVERY == DIRECT_EVERY - 1:
            event = workload.api_event(next(direct))
            times["direct"].append(timed(lambda event=event: stack.webhook("direct", event)))
    stack.sender_events.clear()
    invocations = stack.drain(times["sender"])
    if sum(invocation.records for invocation in invocations) != batches:  # one message per batch of this size
        raise RuntimeError("the sender did not receive one message per buffered batch")
    return {
        "times": times,
        "events": {"buffered": _events(buffered_bodies), "direct": _events(direct_bodies)},
        "sender_records": [invocation.records for invocation in invocations],
        "largest_sender_event": max(stack.sender_events),
    }


def requests_row(result: dict[str, Any]) -> Row:
    direct, buffered = result["direct_requests"], result["buffered_requests"]
    ratio = direct / buffered
    exact = result["direct_exact"] and result["buffered_exact"]
    records = result["sender_records"]
    return Row(
        metric=f"7. Graph requests, {result['batches']} webhook batches of 1-5 events ({result['events']} events), "
        "buffered vs direct",
        measured=f"buffered {buffered} requests ({len(records)} sender invocation(s))",
        reference=f"direct {direct} requests",
        ratio=f"{ratio:.0f}x fewer" + ("" if exact else "; NOT every event_id exactly once"),
        target=f">= {REQUESTS_TARGET}x fewer, every event_id once",
        met=ratio >= REQUESTS_TARGET and exact,
        notes=[
            f"Row 7: the event-source stand-in invokes the sender with the stack's batch size ({SENDER_BATCH_SIZE}): "
            f"{', '.join(map(str, records))} message(s) per invocation, requests of up to "
            f"{result['largest_request']} events, the largest sender event "
            f"{result['largest_sender_event'] / 2**20:.2f} MiB (Lambda delivers at most "
            f"{INVOKE_PAYLOAD_LIMIT / 2**20:.0f} MiB). Every event_id arrived exactly once: "
            f"direct {_yes(result['direct_exact'])}, buffered {_yes(result['buffered_exact'])}.",
            "Row 7 is steady traffic that fills the sender's batch within its 60 s window (about 17 batches/s or "
            "more). At N batches a window the sender's requests hold about 3N events, so the ratio is about N "
            "up to N = 333: 100x fewer needs 100 batches a minute, if Lambda's pollers gather them into one batch.",
        ],
    )


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def _summary(result: dict[str, Any]) -> dict[str, float]:
    times, events = result["times"], result["events"]
    return {
        "buffered_p50": percentile_ms(times["buffered"], 50),
        "buffered_p99": percentile_ms(times["buffered"], 99),
        "direct_p50": percentile_ms(times["direct"], 50),
        "direct_p99": percentile_ms(times["direct"], 99),
        "webhook_per_1000": sum(times["buffered"]) * 1000 / events["buffered"] * 1000,
        "sender_per_1000": sum(times["sender"]) * 1000 / events["buffered"] * 1000,
        "direct_per_1000": sum(times["direct"]) * 1000 / events["direct"] * 1000,
    }


def answer_row(result: dict[str, Any]) -> Row:
    figures = _summary(result)
    ratio = figures["direct_p99"] / figures["buffered_p99"]
    graph_ms = GRAPH_SECONDS * 1000
    return Row(
        metric=f"8. Webhook answer time, batches of 1-5 events, Graph answering in {graph_ms:.0f} ms "
        f"({len(result['times']['buffered'])} buffered, {len(result['times']['direct'])} direct invocations)",
        measured=f"buffered p50 {figures['buffered_p50']:.1f} ms, p99 {figures['buffered_p99']:.1f} ms",
        reference=f"direct p50 {figures['direct_p50']:.1f} ms, p99 {figures['direct_p99']:.1f} ms",
        ratio=f"p99 1/{ratio:.1f} of direct",
        target=f"p99 <= 1/{ANSWER_TARGET} of direct",
        met=ratio >= ANSWER_TARGET,
    )


def lambda_row(result: dict[str, Any]) -> Row:
    figures = _summary(result)
    buffered = figures["webhook_per_1000"] + figures["sender_per_1000"]
    ratio = figures["direct_per_1000"] / buffered
    records = result["sender_records"]
    return Row(
        metric=f"9. Lambda time per 1000 events (webhook + sender handler time), Graph answering in "
        f"{GRAPH_SECONDS * 1000:.0f} ms",
        measured=f"buffered {buffered:,.0f} ms (webhook {figures['webhook_per_1000']:,.0f} + sender "
        f"{figures['sender_per_1000']:,.0f})",
        reference=f"direct {figures['direct_per_1000']:,.0f} ms",
        ratio=f"1/{ratio:.0f} of direct",
        target=f"<= 1/{LAMBDA_TARGET}",
        met=ratio >= LAMBDA_TARGET,
        notes=[
            f"Rows 8 and 9: {result['events']['buffered']} events in {len(result['times']['buffered'])} buffered "
            f"batches, {result['events']['direct']} in {len(result['times']['direct'])} direct ones, interleaved "
            f"in one fresh interpreter (moto and the Graph responder in the parent); the sender ran "
            f"{len(records)} time(s) ({', '.join(map(str, records))} messages, "
            f"{math.fsum(result['times']['sender']) * 1000:,.0f} ms in all).",
            "Rows 8 and 9: the buffered webhook's time is its map and render and its SQS write to moto, whose "
            "SendMessage counts every queued message (its ApproximateNumberOfMessages), so it slows as the queue "
            f"fills: buffered p50 {_p50_ms(result['times']['buffered'][:100])} ms over the first 100 batches, "
            f"{_p50_ms(result['times']['buffered'][-100:])} ms over the last 100 (SQS itself does not slow down "
            "with depth).",
        ],
    )


def _p50_ms(seconds: list[float]) -> str:
    return f"{percentile_ms(seconds, 50):.1f}"
