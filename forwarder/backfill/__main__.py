"""`python -m forwarder.backfill [--connection NAME] [--dry-run] [--report FILE] PATH...` (`make backfill`).

Sends historic conversions from files (local, or `s3://bucket/key`; `.jsonl`, `.csv`, either gzipped)
through the webhook's mapping and delivery core (docs/backfill.md). It uses the function's own environment
(SECRET_ID, OFFLINE_EVENT_SET_ID, PARKING_QUEUE_URL, AWS_ENDPOINT_URL...). The summary goes to stdout as
JSON, progress and log lines to stderr. Exit status: 0 when every row was forwarded, skipped with a reason
or parked; 1 when a row failed (the run stopped there: rerun to go on, nothing settled is sent again) or an
earlier run reported rows of the file failed for good; 2 when the configuration, an argument or an input is
unusable, an input cannot be read to its end, or another run is sending it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

import orjson

from forwarder.backfill.connection import connection_settings
from forwarder.backfill.files import InputError, Location
from forwarder.backfill.progress import for_terminal_or_log
from forwarder.backfill.report import FAILED, check_place, open_report
from forwarder.backfill.run import Options, RunResult, State, Target, run
from forwarder.destination import DEFAULT_CONNECTION
from forwarder.graph_client import GraphClient
from forwarder.posting import Poster, Tokens
from forwarder.settings import SettingsError
from forwarder.telemetry import logger


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m forwarder.backfill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="a .jsonl, .jsonl.gz, .csv or .csv.gz file or s3:// object"
    )
    parser.add_argument(
        "--connection", default=DEFAULT_CONNECTION, help="the connection to send to (default: %(default)s)"
    )
    parser.add_argument("--dry-run", action="store_true", help="send nothing: report what would happen")
    parser.add_argument("--report", metavar="FILE", help="write one JSON line per input row here (a path or s3://)")
    parser.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="keep the checkpoints here instead of beside each input (an input in a place you cannot write)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """The function's log lines (Powertools writes them to stdout) on stderr: stdout is the summary alone."""
    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    before = handler.setStream(sys.stderr)
    try:
        yield
    finally:
        if before is not None:
            handler.setStream(before)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    with _logs_to_stderr():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        settings = connection_settings(args.connection)
        inputs = [Location.parse(path) for path in args.paths]
        for location in inputs:
            location.kind  # noqa: B018 (refuses an unsupported name before anything is sent)
        report = None
        if args.report:
            check_place(Location.parse(args.report), inputs)  # before anything is read or written
            report = open_report(Location.parse(args.report))
    except (SettingsError, InputError) as error:
        print(f"backfill: {error}", file=sys.stderr)
        return 2
    poster = (
        None
        if args.dry_run
        else Poster(GraphClient(), settings.graph_url, Tokens({settings.connection: settings.secret_id}))
    )
    target = Target(args.connection, settings, poster)
    options = Options(checkpoint_dir=args.checkpoint_dir, progress=for_terminal_or_log())
    try:
        result = run(inputs, target, report, options)
    except InputError as error:
        if report is not None:
            report.close(complete=False)
        print(f"backfill stopped: {error}", file=sys.stderr)
        return 2
    if report is not None:
        report.close(complete=result.state is State.FINISHED)
    summary = {"dry_run": args.dry_run, "connection": args.connection, **result.summary()}
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return _status(result)


def _status(result: RunResult) -> int:
    """The exit status, and on stderr what the operator does next."""
    if result.state is State.UNREADABLE:
        print(
            f"backfill stopped: {result.stopped}. The rows before it were sent and reported; a rerun stops at the "
            "same place. Send the rows after it from a whole copy of the export, as a file of their own",
            file=sys.stderr,
        )
        return 2
    if result.state is State.STOPPED:
        print(f"backfill stopped at {result.stopped}; rerun the same command to go on from there", file=sys.stderr)
        return 1
    if result.tally.failed_earlier:
        print(
            f"backfill: {result.tally.failed_earlier} rows were reported failed by an earlier run (cut off while "
            "being sent, never sent again: see the report and check Events Manager)",
            file=sys.stderr,
        )
    return 1 if result.state is not State.FINISHED or result.tally.rows[FAILED] or result.tally.failed_earlier else 0


if __name__ == "__main__":
    sys.exit(main())
