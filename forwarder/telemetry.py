"""Logs, metrics and traces: created once per container, fed only counts, reasons and codes.

Powertools Logger/Metrics/Tracer read POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE. No
function here receives personal data or secrets, so none can leak them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

F = TypeVar("F", bound=Callable[..., Any])


def _tracing_enabled() -> bool:
    """Powertools' own rule (only inside Lambda, not under SAM local, not when disabled), decided
    without creating a Tracer: that imports the X-Ray SDK, about 200 ms of cold start for nothing."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return False
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ and "AWS_SAM_LOCAL" not in os.environ


logger = Logger()
# A default namespace: without one Powertools raises at flush, after Facebook already took the events.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "MParticleFacebookForwarder")
_tracer = Tracer() if _tracing_enabled() else None


def trace_handler(handler: F) -> F:
    """X-Ray segment for the whole invocation (cold start annotated), when tracing is on."""
    return _tracer.capture_lambda_handler(capture_response=False)(handler) if _tracer else handler


@contextmanager
def traced(name: str) -> Iterator[Any]:
    """An X-Ray subsegment around a call (the Graph API, Secrets Manager), or nothing when tracing is off.

    A subsegment rather than `capture_method`, which logs a traceback for every expected error."""
    if _tracer is None:
        yield None
        return
    with _tracer.provider.in_subsegment(f"## {name}") as subsegment:
        yield subsegment


def _service() -> dict[str, str]:
    return {"service": os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")}


def _by_dimension(name: str, dimension: str, counts: Mapping[str, int]) -> None:
    """One EMF blob per dimension value: Metrics' own dimensions apply to the whole invocation."""
    if is_metrics_disabled():  # single_metric flushes on its own and ignores the switch
        return
    for value, count in counts.items():
        if count:
            with single_metric(name=name, unit=MetricUnit.Count, value=count, default_dimensions=_service()) as metric:
                metric.add_dimension(name=dimension, value=value)


def record_summary(summary: Mapping[str, Any], status: int) -> None:
    """The webhook's per-invocation metrics and its one summary log line (docs/observability.md)."""
    _record_events(summary)
    failed = status >= 500 or status == 422
    if "queued" in summary:  # buffered: the events are in the ingest queue
        metrics.add_metric(name="EventsQueued", unit=MetricUnit.Count, value=summary["queued"])
    if failed:
        metrics.add_metric(name="DeliveryFailures", unit=MetricUnit.Count, value=1)
    if connection := summary.get("connection"):
        # Buffered, the webhook only queues: what is forwarded is counted by the sender, per destination.
        skipped = sum(summary.get("skipped", {}).values())
        _by_connection(connection, _now(summary, "forwarded"), skipped, _now(summary, "parked"))
        _by_dimension("DeliveryFailuresByConnection", "connection", {connection: int(failed)})
    logger.info("batch processed", extra={"status": status, "summary": summary})


def _by_connection(connection: str, forwarded: int, skipped: int, parked: int) -> None:
    """One connection's events, with the connection as a dimension: four metrics per connection (a custom
    metric each, docs/deploy.md "Cost"), enough for its dashboard row and alarms."""
    for name, count in (("EventsForwarded", forwarded), ("EventsSkipped", skipped), ("EventsParked", parked)):
        _by_dimension(f"{name}ByConnection", "connection", {connection: count})


def record_queued(summary: Mapping[str, Any]) -> None:
    """The buffered sender's per-invocation metrics and its one summary log line. EventsReceived is the
    webhook's alone: the sender receives queued events, again after every retry."""
    _record_events(summary, received=False)
    metrics.add_metric(name="IngestMessagesReceived", unit=MetricUnit.Count, value=summary.get("messages", 0))
    metrics.add_metric(name="IngestMessagesRetried", unit=MetricUnit.Count, value=summary.get("messages_failed", 0))
    metrics.add_metric(name="IngestMessagesParked", unit=MetricUnit.Count, value=summary.get("messages_parked", 0))
    by_connection: dict[str, Counter[str]] = {}
    for destination in summary.get("destinations", []):
        by_connection.setdefault(destination["connection"], Counter()).update(destination)
    for connection, counts in by_connection.items():
        _by_connection(connection, counts["forwarded"], 0, counts["parked"])
    logger.info("messages processed", extra={"summary": summary})


def _now(summary: Mapping[str, Any], name: str) -> int:
    """`forwarded` or `parked` of this invocation alone: an earlier attempt's were counted when they happened."""
    return int(summary.get(name, 0)) - int(summary.get("settled_earlier", {}).get(name, 0))


def _record_events(summary: Mapping[str, Any], received: bool = True) -> None:
    if received:
        metrics.add_metric(name="EventsReceived", unit=MetricUnit.Count, value=summary.get("received", 0))
    metrics.add_metric(name="EventsForwarded", unit=MetricUnit.Count, value=_now(summary, "forwarded"))
    skipped: Mapping[str, int] = summary.get("skipped", {})
    metrics.add_metric(name="EventsSkipped", unit=MetricUnit.Count, value=sum(skipped.values()))
    _by_dimension("EventsSkippedByReason", "reason", skipped)
    _by_dimension("EventsAdjustedByReason", "reason", summary.get("adjusted", {}))
    _by_dimension("EventsWithMatchKey", "key", summary.get("match_keys", {}))  # forwarded events per key carried
    requests = summary.get("requests", [])
    metrics.add_metric(name="FacebookRequests", unit=MetricUnit.Count, value=len(requests))
    errors: dict[str, int] = {}
    rejected: dict[str, int] = {}  # events Facebook rejected, by Meta's subcode
    for request in requests:
        if request.get("error_class") == "invalid":
            subcode = str(request.get("subcode", "none"))
            rejected[subcode] = rejected.get(subcode, 0) + request["events"]
        if request.get("error_class"):
            errors[request["error_class"]] = errors.get(request["error_class"], 0) + 1
        if request.get("latency_ms") is not None:
            metrics.add_metric(name="FacebookLatency", unit=MetricUnit.Milliseconds, value=request["latency_ms"])
    metrics.add_metric(name="FacebookErrors", unit=MetricUnit.Count, value=sum(errors.values()))
    _by_dimension("FacebookErrorsByClass", "error_class", errors)
    metrics.add_metric(name="FacebookRetries", unit=MetricUnit.Count, value=summary.get("retries", 0))
    metrics.add_metric(
        name="FacebookIsolationRequests", unit=MetricUnit.Count, value=summary.get("isolation_requests", 0)
    )
    _by_dimension("EventsRejectedBySubcode", "subcode", rejected)
    metrics.add_metric(name="EventsParked", unit=MetricUnit.Count, value=_now(summary, "parked"))


def record_parking_failure() -> None:
    """Undeliverable events could not be parked (the batch was answered 503 so mParticle retries)."""
    metrics.add_metric(name="ParkingFailures", unit=MetricUnit.Count, value=1)
