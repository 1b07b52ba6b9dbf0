"""`make run`: the real handler, end to end, on sample events from events/.

By default everything is local: a moto server plays Secrets Manager (and SQS), and a Graph API
stand-in on loopback checks each request as Facebook would and shows what it received. With `--live`
nothing is started: the function's environment (SECRET_ID, OFFLINE_EVENT_SET_ID, AWS credentials,
FACEBOOK_GRAPH_URL...) must point at real AWS and Facebook.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from localdev.aws import environment, local_aws
from localdev.event_source import drain
from localdev.graph_stub import Fault, GraphStub
from localdev.lambda_context import LocalContext
from localdev.samples import EVENTS_DIR, load_api_event

DEFAULT_EVENTS = ["purchase.json", "multi_event_batch.json"]
BUFFERED_EVENTS = ["purchase.json", "add_to_cart.json", "view_detail.json", "multi_event_batch.json"]
LOCAL_EVENT_SET_ID = "1234567890"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make run ARGS=...", description=__doc__)
    parser.add_argument("events", nargs="*", help=f"files in {EVENTS_DIR.name}/ (default: {DEFAULT_EVENTS})")
    parser.add_argument("--api", choices=["offline_conversions", "conversions_api"], default="conversions_api")
    parser.add_argument("--ldu", choices=["never", "always", "opted_out"], default="never")
    parser.add_argument("--live", action="store_true", help="use the real AWS and Facebook from the environment")
    parser.add_argument("--quiet", action="store_true", help="print the responses only")
    parser.add_argument(
        "--park-demo",
        action="store_true",
        help="make the stand-in reject the first request (code 100), then replay the parked events",
    )
    parser.add_argument(
        "--buffered",
        action="store_true",
        help="DELIVERY_MODE=buffered: the webhook queues each batch; then the sender function (a local loop stands "
        "in for the SQS event source) sends them to the stand-in as one request",
    )
    parser.add_argument(
        "--connections",
        action="store_true",
        help="two mParticle connections beside the default one, each with its own secret and datasets: the "
        "samples go in turn to POST /events/callcentre and POST /events/stores (fanned out to two datasets, "
        "purchases to a third)",
    )
    parser.add_argument(
        "--backfill",
        nargs="?",
        const=SAMPLE_SALES,
        metavar="FILE",
        help="send a file through `python -m forwarder.backfill` instead of the samples (without FILE: a CSV of "
        "recent store sales written for the run, a row too old and a row without a match key among them); "
        "prints its summary and report",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also print the JSON logs and EMF metrics (otherwise only error log lines)",
    )
    return parser.parse_args(argv)


def _print(title: str, payload: Any) -> None:
    print(f"\n== {title}")
    print(json.dumps(payload, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    names = args.events or (BUFFERED_EVENTS if args.buffered else DEFAULT_EVENTS)
    if args.buffered and (args.live or args.api != "conversions_api"):
        raise SystemExit("--buffered runs locally, on the Conversions API (the only API a queue may feed)")
    with ExitStack() as stack:
        stub = None
        if not args.live:
            aws_env = stack.enter_context(local_aws())
            stub = stack.enter_context(GraphStub())
            local_env = {
                **aws_env,
                "OFFLINE_EVENT_SET_ID": LOCAL_EVENT_SET_ID,
                "FACEBOOK_GRAPH_URL": stub.url,
                "FACEBOOK_API": args.api,
                "SEND_CCPA_LIMITED_DATA_USE": args.ldu,
                "POWERTOOLS_SERVICE_NAME": "facebook-offline-forwarder",
                "POWERTOOLS_METRICS_NAMESPACE": "MParticleFacebookForwarder",
                "POWERTOOLS_TRACE_DISABLED": "1",
                "POWERTOOLS_METRICS_DISABLED": "false" if args.verbose else "true",
                "POWERTOOLS_LOG_LEVEL": "INFO" if args.verbose else "ERROR",
                "DELIVERY_MODE": "buffered" if args.buffered else "direct",
            }
            if args.connections:
                local_env["CONNECTIONS"] = json.dumps(_connections(aws_env, stub))
            stack.enter_context(environment(local_env))
        from handler.app import lambda_handler  # after the environment is in place

        if args.park_demo and stub is None:
            raise SystemExit("--park-demo scripts the local stand-in; it cannot be combined with --live")
        if stub and args.park_demo:
            stub.script(Fault.graph_error(100, error_subcode=33, message="Invalid parameter (scripted by --park-demo)"))

        if args.backfill is not None:
            return _backfill(args.backfill, stub, args.quiet)
        worst = 200
        routes = [None] * len(names) if not args.connections else [LOCAL_CONNECTIONS[i % 2] for i in range(len(names))]
        for name, connection in zip(names, routes, strict=True):
            seen = len(stub.received) if stub else 0
            event = load_api_event(name)
            if connection is not None:
                _to_connection(event, connection)
            with contextlib.redirect_stdout(io.StringIO()) if not args.verbose else contextlib.nullcontext():
                # Powertools prints the ColdStart EMF blob even with metrics disabled.
                response = lambda_handler(event, LocalContext())
            worst = max(worst, response["statusCode"])
            body = json.loads(response["body"]) if response.get("body") else None
            _print(f"{name}: POST {event['path']}: HTTP {response['statusCode']} (what mParticle gets back)", body)
            if stub and not args.quiet:
                for request in stub.received[seen:]:
                    shown = {k: v for k, v in request.body.items() if k not in ("access_token", "appsecret_proof")}
                    _print(f"{name}: POST {request.path} as the Graph API stand-in received it", shown)
        if args.buffered and stub is not None:
            _send_buffered(stub, args.quiet, args.verbose)
        if args.park_demo:
            from forwarder.replay import replay
            from forwarder.settings import load_settings

            _print("replay of the parking queue (python -m forwarder.replay)", replay(load_settings()).as_dict())
    return 0 if worst < 500 else 1


SAMPLE_SALES = "sample"  # --backfill without a file
DAY = 86_400


def _sample_sales(folder: Path, now: int) -> Path:
    """A CSV in the columns of Meta's offline event uploads: four recent sales, one 70 days old (Meta takes 62),
    one with no key to match its customer by."""
    rows: list[list[object]] = [
        ["event_name", "event_time", "value", "currency", "order_id", "email", "phone", "fn", "ln", "zip", "country"],
        ["Purchase", now - 3600, "54.90", "EUR", "R-1001", "Anna.Muller@example.com", "+49 30 901820", "Anna",
         "Müller", "10115", "DE"],
        ["Purchase", now - 2 * DAY, "12.00", "USD", "R-1002", "j.smith@example.com", "(650) 555-1212", "John",
         "Smith", "94025", "US"],
        ["AddToCart", now - 3 * DAY, "8.50", "USD", "R-1003", "", "+1 212 555 0100", "", "", "", "US"],
        ["Lead", now - 5 * DAY, "", "", "L-1004", "lead@example.com", "", "", "", "", "US"],
        ["Purchase", now - 70 * DAY, "99.00", "USD", "R-0999", "old@example.com", "", "", "", "", "US"],
        ["Purchase", now - DAY, "20.00", "USD", "R-1005", "", "", "", "", "", ""],
    ]  # fmt: skip
    path = folder / "sales.csv"
    with path.open("w", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


def _backfill(source: str, stub: GraphStub | None, quiet: bool) -> int:
    """The backfill command over `source` (or the sample), its summary and report printed; its exit status."""
    from forwarder.backfill.__main__ import main as backfill

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = str(_sample_sales(folder, int(time.time()))) if source == SAMPLE_SALES else source
        report = folder / "report.jsonl"
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            status = backfill([path, "--report", str(report), "--checkpoint-dir", str(folder)])
        _print(
            f"python -m forwarder.backfill {Path(path).name}: exit {status}, its summary",
            json.loads(output.getvalue() or "null"),
        )
        if report.exists():
            _print("its report, a line per row", [json.loads(line) for line in report.read_text().splitlines()])
    if stub and not quiet:
        events = [event for request in stub.received for event in request.data]
        _print(f"the Graph API stand-in received {len(stub.received)} request(s), {len(events)} event(s)", events)
    return status


# Two connections beside the default one (docs/configuration.md, "Connections"): their names, secrets, datasets.
LOCAL_CONNECTIONS = ["callcentre", "stores"]
LOCAL_TOKENS = {"stores": "local-token-stores", "callcentre": "local-token-callcentre"}
LOCAL_AUTHORIZATIONS = {"stores": "Basic c3RvcmVzOmxvY2Fs", "callcentre": "Basic Y2FsbGNlbnRyZTpsb2NhbA=="}


def _connections(aws_env: dict[str, str], stub: GraphStub) -> dict[str, Any]:
    """The two connections' secrets put into the local Secrets Manager, the stand-in told each dataset's token,
    and the CONNECTIONS document naming them."""
    import boto3

    client = boto3.client(
        "secretsmanager",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    for name in LOCAL_CONNECTIONS:
        secret = {"access_token": LOCAL_TOKENS[name], "webhook_authorization": LOCAL_AUTHORIZATIONS[name]}
        client.create_secret(Name=f"forwarder/connections/{name}", SecretString=json.dumps(secret))
    stub.tokens = {dataset: LOCAL_TOKENS["stores"] for dataset in ("111", "222", "333")}
    stub.tokens["444"] = LOCAL_TOKENS["callcentre"]
    return {
        "stores": {
            "secret_id": "forwarder/connections/stores",
            "offline_event_set_id": ["111", "222"],
            "event_datasets": {"Purchase": ["333"]},
        },
        "callcentre": {
            "secret_id": "forwarder/connections/callcentre",
            "offline_event_set_id": "444",
            "send_ccpa_limited_data_use": "always",
            "default_action_source": "phone_call",
        },
    }


def _to_connection(event: dict[str, Any], connection: str) -> None:
    """The sample as mParticle posts it to a connection's own URL, with that connection's Authorization."""
    event["resource"], event["path"] = "/events/{connection}", f"/events/{connection}"
    event["pathParameters"] = {"connection": connection}
    event["headers"]["Authorization"] = LOCAL_AUTHORIZATIONS[connection]
    event["multiValueHeaders"]["Authorization"] = [LOCAL_AUTHORIZATIONS[connection]]


def _send_buffered(stub: GraphStub, quiet: bool, verbose: bool) -> None:
    """The sender function over the ingest queue, as the SQS event source would invoke it."""
    import boto3

    from handler.sender import lambda_handler as sender

    sqs = boto3.client("sqs")
    queue = os.environ["INGEST_QUEUE_URL"]
    seen = len(stub.received)
    with contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext():
        invocations = drain(sqs, queue, sender)
    for number, invocation in enumerate(invocations, 1):
        _print(
            f"sender function, invocation {number}: {invocation.records} messages from the ingest queue",
            {"batchItemFailures": invocation.failures},
        )
    requests = stub.received[seen:]
    print(f"\n== the Graph API stand-in received {len(requests)} request(s) for {len(invocations)} invocation(s)")
    if not quiet:
        for request in requests:
            shown = {k: v for k, v in request.body.items() if k not in ("access_token", "appsecret_proof")}
            _print(f"POST {request.path} ({len(request.data)} events) as the stand-in received it", shown)


if __name__ == "__main__":
    sys.exit(main())
