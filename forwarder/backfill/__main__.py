"""`python -m forwarder.backfill [--connection NAME] [--dry-run] [--report FILE] PATH...` (`make backfill`).

Sends historic conversions from files (local, or `s3://bucket/key`; `.jsonl`, `.csv`, either gzipped)
through the webhook's mapping and delivery core (docs/backfill.md). It uses the function's own environment
(SECRET_ID, OFFLINE_EVENT_SET_ID, PARKING_QUEUE_URL, AWS_ENDPOINT_URL...). The summary goes to stdout as
JSON, progress to stderr. Exit status: 0 when every row was forwarded, skipped with a reason or parked; 1
when a row failed (the run stopped there: rerun to go on, nothing settled is sent again); 2 when the
configuration or an input is unusable.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from forwarder.backfill.connection import connection_settings
from forwarder.backfill.files import InputError, Location
from forwarder.backfill.progress import for_terminal_or_log
from forwarder.backfill.report import FAILED, open_report
from forwarder.backfill.run import Options, State, Target, run
from forwarder.destination import DEFAULT_CONNECTION
from forwarder.graph_client import GraphClient
from forwarder.posting import Poster, Tokens
from forwarder.settings import SettingsError


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


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        settings = connection_settings(args.connection)
        inputs = [Location.parse(path) for path in args.paths]
        for location in inputs:
            location.kind  # noqa: B018 (refuses an unsupported name before anything is sent)
        report = open_report(Location.parse(args.report)) if args.report else None
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
    if result.state is State.STOPPED:
        print(f"backfill stopped at {result.stopped}; rerun the same command to go on from there", file=sys.stderr)
    return 1 if result.state is not State.FINISHED or result.tally.rows[FAILED] else 0


if __name__ == "__main__":
    sys.exit(main())
