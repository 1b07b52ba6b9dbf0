"""`python -m bench` (`make bench`): the six measurements of direct delivery, three of buffered delivery and
the backfill's (measurement 10), one table, bench/RESULTS.md.

Servers are local: moto for Secrets Manager and `bench.responder` for Facebook. Progress goes to
stderr, the table to stdout. `--quick` cuts the repetitions (a smoke run, not numbers to publish);
`--only 4` runs measurement 4 alone (peak memory) and prints its row without writing RESULTS.md.
Targets are reported; only `--strict` turns a missed one into a failing exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.harness import LAMBDA_ENV, QUIET_ENV, Row

ROOT = Path(__file__).resolve().parent.parent


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench ARGS=...", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; do not write RESULTS.md")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the 2000-event handler run")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        choices=range(1, 11),
        metavar="N",
        help="run only measurement N (repeatable; 4 = peak memory); the partial table is printed, not written",
    )
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _in_child(kind: str, repeat: int, aws_env: dict[str, str], telemetry: dict[str, str], api: str = "") -> dict:
    """One timed measurement in a clean interpreter (`bench.child`); the responder stays here. Buffered
    delivery's is against a responder that counts events and answers in `buffered.GRAPH_SECONDS`."""
    from bench import buffered, latency, throughput
    from bench.responder import Responder

    api = api or "offline_conversions"
    if kind == "buffered":
        responder = Responder(delay=buffered.GRAPH_SECONDS)
    else:
        responder = Responder(throughput.answer(api, latency.EVENTS if kind == "latency" else throughput.EVENTS))
    with tempfile.TemporaryDirectory() as scratch, responder as server:
        out = Path(scratch) / "result.json"
        env = {**os.environ, **aws_env, **telemetry, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "bench.child", kind, str(out), str(repeat), api, server.url],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,  # EMF metrics and log lines, as they would go to CloudWatch
        )
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    os.environ.update(QUIET_ENV)  # before anything imports Powertools (it reads the log level at import)

    from bench import backfill, buffered, coldstart, latency, memory, profiling, report, sdk_compare, throughput, wire
    from bench.harness import Function
    from localdev.aws import local_aws

    repeat, runs, invocations = (5, 3, 50) if args.quick else (30, 9, 300)
    batches = 100 if args.quick else buffered.BATCHES
    notes: list[str] = []
    buffered_times: dict[str, dict] = {}  # rows 8 and 9 share one run

    def buffered_timed(aws_env: dict[str, str]) -> dict:
        if not buffered_times:  # always on the Conversions API, the one a queue may feed
            buffered_times["result"] = _in_child("buffered", batches, aws_env, QUIET_ENV)
        return buffered_times["result"]

    def throughput_row(aws_env: dict[str, str]) -> Row:
        offline = _in_child("throughput", repeat, aws_env, QUIET_ENV)
        capi = _in_child("throughput", repeat, aws_env, QUIET_ENV, "conversions_api")
        telemetry = _in_child("throughput", repeat, aws_env, LAMBDA_ENV)
        row = throughput.row(offline)
        row.notes += [
            f"Throughput with Conversions API rendering (2 requests of 1000): {capi['handler_ms']:.1f} ms = "
            f"{capi['events'] / capi['handler_ms'] * 1000:,.0f} events/s, {capi['handler_ms'] / capi['floor_ms']:.2f}x "
            f"its floor ({capi['floor_ms']:.1f} ms, one POST of the 2000 events).",
            f"Throughput with Lambda's telemetry settings (metrics on, log level INFO, stdout to /dev/null): "
            f"{telemetry['handler_ms']:.1f} ms = {telemetry['events'] / telemetry['handler_ms'] * 1000:,.0f} "
            f"events/s, {telemetry['handler_ms'] / telemetry['floor_ms']:.2f}x the floor "
            f"({telemetry['floor_ms']:.1f} ms); one EMF blob and one summary line per invocation.",
        ]
        return row

    steps: dict[int, tuple[str, Callable[[dict[str, str]], Row]]] = {
        1: ("throughput (Offline Conversions, Conversions API, then with Lambda's telemetry)", throughput_row),
        2: (
            "Conversions API events: ours vs Meta's SDK",
            lambda aws_env: sdk_compare.row(_in_child("sdk", max(5, repeat // 2), aws_env, QUIET_ENV)),
        ),
        3: ("cold start (fresh interpreters)", lambda aws_env: coldstart.row(coldstart.measure(aws_env, runs))),
        4: (
            "peak memory (fresh processes, worst bodies inside the limits)",
            lambda aws_env: memory.row(memory.measure(aws_env)),
        ),
        5: ("wire efficiency", lambda aws_env: wire.row(wire.measure(Function(aws_env)))),
        6: (
            "warm latency",
            lambda aws_env: latency.row(_in_child("latency", invocations, aws_env, QUIET_ENV)),
        ),
        7: (
            "buffered vs direct: Graph requests",
            lambda aws_env: buffered.requests_row(buffered.count_requests(Function(aws_env), batches)),
        ),
        8: (
            "buffered vs direct: webhook answer time (with 9: one run)",
            lambda aws_env: buffered.answer_row(buffered_timed(aws_env)),
        ),
        9: ("buffered vs direct: Lambda time", lambda aws_env: buffered.lambda_row(buffered_timed(aws_env))),
        10: (
            "backfill: a 1,000,000-row CSV, and peak memory at 100,000 (a few minutes)",
            lambda aws_env: backfill.row(
                backfill.measure(
                    aws_env, lambda: _in_child("throughput", repeat, aws_env, QUIET_ENV, "conversions_api")
                )
            ),
        ),
    }
    chosen = sorted(set(args.only)) if args.only else sorted(steps)
    # Powertools prints the cold-start metric, and a full metric buffer, even with metrics disabled.
    with local_aws() as aws_env, contextlib.redirect_stdout(io.StringIO()):
        rows = []
        for number in chosen:
            title, step = steps[number]
            _progress(f"{number}/{len(steps)} {title}")
            rows.append(step(aws_env))
        profile = profiling.profile(Function(aws_env)) if args.profile else None

    notes.append(
        "Logs at WARNING and metrics off unless said otherwise (as `make run`); tracing is off outside Lambda. "
        "Measurements 1, 2, 6, 8 and 9 run in a fresh child interpreter (moto and the responder stay in the "
        "parent process); times are medians of interleaved runs (handler, floor, handler, ...) after one warm-up call."
    )
    text = report.markdown(rows, notes, "python -m bench")
    print(text)
    if profile:
        print(profile)
    if not (args.quick or args.no_write or args.only):
        report.RESULTS.write_text(text)
        _progress(f"wrote {report.RESULTS.relative_to(ROOT)}")
    missed = [row.metric for row in rows if row.met is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
