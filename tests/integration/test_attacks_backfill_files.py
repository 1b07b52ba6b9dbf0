"""The backfill command (`python -m forwarder.backfill`) attacked as a new user and an attacker would run it:
odd files, reruns named differently, two runs at once. Found by a fresh tester, each kept as a regression test
of what docs/backfill.md says should happen; the real moto server and Graph stand-in.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forwarder.backfill import __main__ as backfill_main
from forwarder.backfill.progress import Progress
from localdev.graph_stub import GraphStub
from tests.integration.test_backfill import (
    NOW,
    Interrupted,
    acknowledged,
    backfill,
    forwarded_orders,
    killed_after_gatherings,
    report_lines,
    write_csv,
)

HEADER = "event_name,event_time,value,currency,order_id,email,fn"


def purchase_rows(count: int, start: int = 0) -> list[str]:
    """`count` good CSV rows, order ids o-<start>... and emails user<n>@example.com (acknowledged() knows them)."""
    return [f"Purchase,{NOW - 60},10,USD,o-{n},user{n}@example.com,Ann" for n in range(start, start + count)]


def received_first_names(graph: GraphStub) -> list[Any]:
    return [(event.get("user_data") or event.get("match_keys") or {}).get("fn") for event in graph.events]


# ---- a row that cannot be read --------------------------------------------------------------------------------


def test_an_unterminated_quote_in_one_row_loses_no_other_row(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    """A first name written `"Bob` (a quote opened, never closed: a truncated or hand-edited export) makes the
    csv module read every following line into that one field, up to its 131,072-character limit: the rows it
    swallows are neither sent, nor skipped, nor reported, and the exit status is 0. docs/backfill.md: "a
    malformed line or row is reported with its line number and never stops the rest"."""
    function_env(FACEBOOK_API="conversions_api")
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    lines = [HEADER, f'Purchase,{NOW - 60},10,USD,o-bad,bad@example.com,"Bob', *purchase_rows(3000)]
    source.write_text("\n".join(lines) + "\n")

    status, summary = backfill("--report", report, source)

    reported = {line["row"] for line in report_lines(report)}
    good_rows = set(range(3, len(lines) + 1))  # line 1 is the header, line 2 the bad row
    unaccounted = sorted(good_rows - reported)
    assert unaccounted == [], (
        f"{len(unaccounted)} rows (lines {unaccounted[0]}..{unaccounted[-1]}) have no report line; exit {status}; "
        f"{summary['rows']} rows reported for {len(lines) - 1}"
    )
    assert acknowledged(graph) == forwarded_orders({n + 2: None for n in range(3000)})  # rows o-0..o-2999


def test_an_unterminated_quote_in_a_small_file_never_sends_other_rows_as_a_first_name(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    """The same in a file under the csv module's limit: the row with the open quote is forwarded with the two
    rows after it (their emails, names, order ids) as its first name, hashed, and those rows are lost."""
    function_env(FACEBOOK_API="conversions_api")
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    lines = [HEADER, f'Purchase,{NOW - 60},10,USD,o-bad,bad@example.com,"Bob', *purchase_rows(2)]
    source.write_text("\n".join(lines) + "\n")

    backfill("--report", report, source)

    assert [line["row"] for line in report_lines(report)] == [2, 3, 4]
    assert len(graph.events) == 2, f"{len(graph.events)} events received for 2 good rows"


def test_a_unix_time_beyond_a_floats_range_skips_its_row_instead_of_ending_the_run(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    """`event_time` of 400 digits passes the "Unix seconds" test (all digits) and `int(float(text) * 1000)`
    raises OverflowError: a traceback, exit 1, nothing after it read, and every rerun stops on the same row.
    An unreadable time is `invalid_event_time` (docs/backfill.md)."""
    function_env(FACEBOOK_API="conversions_api")
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    lines = [HEADER, *purchase_rows(1), f"Purchase,{'9' * 400},10,USD,o-x,x@example.com,Ann", *purchase_rows(1, 1)]
    source.write_text("\n".join(lines) + "\n")

    status, _ = backfill("--report", report, source)

    assert status == 0
    assert [(line["row"], line["status"], line["reason"]) for line in report_lines(report)] == [
        (2, "forwarded", None),
        (3, "skipped", "invalid_event_time"),
        (4, "forwarded", None),
    ]


def test_a_truncated_gzip_reports_the_rows_it_could_read_and_promises_no_rerun_that_cannot_help(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A .csv.gz cut short (an interrupted download or upload): the rows decompressed before the cut are in the
    gathering when EOFError comes, and are dropped: nothing sent, no report line, exit 2, "rerun to go on" -
    and every rerun stops at the same byte, so a file under one gathering is never sent at all."""
    function_env(FACEBOOK_API="conversions_api")
    source, report = tmp_path / "sales.csv.gz", tmp_path / "report.jsonl"
    data = gzip.compress(("\n".join([HEADER, *purchase_rows(300)]) + "\n").encode())
    source.write_bytes(data[: len(data) * 2 // 3])

    first, _ = backfill("--report", report, source)
    message = capsys.readouterr().err
    second, _ = backfill("--report", report, source)

    assert first == 2 and second == 2
    assert "rerun to go on" not in message, message
    reported = {line["row"] for line in report_lines(report)}
    assert set(range(2, 102)) <= reported, f"{len(reported)} of the first 100 rows reported"


# ---- memory ---------------------------------------------------------------------------------------------------

_PEAK = """
import resource, sys
from forwarder.backfill.__main__ import main
status = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=open(sys.argv[-1] + ".peak", "w"))
sys.exit(status)
"""


def peak_kib_of_a_dry_run(path: Path, env: dict[str, str]) -> int:
    subprocess.run(  # noqa: S603 - this interpreter, our module, a file the test wrote
        [sys.executable, "-c", _PEAK, "--dry-run", str(path)],
        env={**os.environ, **env, "OFFLINE_EVENT_SET_ID": "1234567890", "FACEBOOK_API": "conversions_api"},
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        capture_output=True,
    )
    return int(Path(f"{path}.peak").read_text())


def test_a_csv_line_of_hundreds_of_megabytes_does_not_grow_memory(tmp_path: Path, aws: dict[str, str]) -> None:
    """JSON Lines read past a line over 8 MiB in chunks; CSV hands the whole line to the csv module first (its
    field limit applies only after the line is read): a 250 KB .csv.gz holding one 256 MB line takes about
    half a gigabyte, a 1.5 MB one would end the 1769 MB backfill function on every invocation."""
    normal, long = tmp_path / "normal.csv.gz", tmp_path / "long.csv.gz"
    normal.write_bytes(gzip.compress(("\n".join([HEADER, *purchase_rows(3)]) + "\n").encode()))
    with gzip.open(long, "wb", compresslevel=1) as out:
        out.write(("\n".join([HEADER, *purchase_rows(1)]) + "\n").encode())
        chunk = b"x" * (1 << 20)
        for _ in range(256):
            out.write(chunk)
        out.write(("\n" + purchase_rows(1, 1)[0] + "\n").encode())

    grown_mib = (peak_kib_of_a_dry_run(long, aws) - peak_kib_of_a_dry_run(normal, aws)) / 1024
    assert grown_mib < 50, f"a 256 MB line raised peak memory by {grown_mib:.0f} MiB"


# ---- reruns -----------------------------------------------------------------------------------------------------


def test_a_rerun_naming_the_same_report_by_another_path_keeps_the_lines_already_written(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The checkpoint keeps the report's path as written (`str(location)`); a rerun that names the same file
    another way (relative after an absolute path, `./r.jsonl`, another working directory) does not match it,
    so the report is opened for writing and emptied: the lines of every row the first run settled are gone,
    and the report no longer has one line per row."""
    function_env(FACEBOOK_API="conversions_api")
    source, report = tmp_path / "sales.csv", tmp_path / "report.jsonl"
    expected = write_csv(source, 5000)
    quiet = backfill_main.for_terminal_or_log
    monkeypatch.setattr(backfill_main, "for_terminal_or_log", killed_after_gatherings(2))
    with pytest.raises(Interrupted):
        backfill("--report", report, source)
    monkeypatch.setattr(backfill_main, "for_terminal_or_log", quiet)
    monkeypatch.chdir(tmp_path)

    status, _ = backfill("--report", "./report.jsonl", source)

    assert status == 0
    assert [line["row"] for line in report_lines(report)] == sorted(expected)


def test_a_rerun_with_a_checkpoint_dir_naming_the_input_another_way_sends_nothing_twice(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With --checkpoint-dir (for an input where the user cannot write), the checkpoint's name is the input's
    path as typed: `/data/sales.csv` and `sales.csv` (from /data) are two checkpoints of one file, so the
    rerun sends the whole file again. The Offline Conversions API counts every row twice."""
    function_env(FACEBOOK_API="offline_conversions")
    graph.reject_marked = "BAD"  # the rows write_csv expects parked
    data, checkpoints = tmp_path / "data", tmp_path / "checkpoints"
    data.mkdir()
    checkpoints.mkdir()
    source = data / "sales.csv"
    expected = write_csv(source, 300, api="offline_conversions")
    assert backfill("--checkpoint-dir", checkpoints, source)[0] == 0
    monkeypatch.chdir(data)

    backfill("--checkpoint-dir", checkpoints, "sales.csv")

    assert acknowledged(graph) == forwarded_orders(expected), "rows acknowledged twice"


def test_two_runs_of_one_file_at_once_send_no_row_twice_on_the_offline_conversions_api(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Nothing stops a second run of a file while one is running: S3 event notifications (and so the backfill
    bucket's EventBridge rule) are delivered at least once, and an operator may put the file again or start
    `make backfill` in a second terminal. Each run reads the checkpoint the other one writes and sends the
    rows after it: here the second starts after the first's first gathering, and both send the rest."""
    function_env(FACEBOOK_API="offline_conversions")
    graph.reject_marked = "BAD"  # the rows write_csv expects parked
    source = tmp_path / "sales.csv"
    expected = write_csv(source, 5000, api="offline_conversions")
    quiet = backfill_main.for_terminal_or_log
    started = {"second": False}

    def progress() -> Progress:
        def emit(text: str, final: bool) -> None:
            if not started["second"]:
                started["second"] = True
                monkeypatch.setattr(backfill_main, "for_terminal_or_log", quiet)
                with contextlib.redirect_stdout(io.StringIO()):
                    backfill_main.main([str(source)])

        return Progress(emit, interval=0.0)

    monkeypatch.setattr(backfill_main, "for_terminal_or_log", progress)
    backfill(source)

    assert started["second"]
    twice = {order: count for order, count in acknowledged(graph).items() if count > 1}
    assert twice == {}, f"{len(twice)} rows acknowledged twice"
    assert acknowledged(graph) == forwarded_orders(expected)


def test_a_file_whose_interrupted_rows_were_reported_failed_never_exits_0_as_sent_whole(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Offline Conversions API, a run killed mid-request: the rerun reports that gathering's rows `failed`
    (`interrupted_while_sending`) and exits 1, as docs/backfill.md says. Run it once more, as an operator or a
    script does until the exit status is 0: "sent whole", 0 rows, exit 0, though rows of the file were never
    known to be sent (the contract: 0 only when every row was forwarded, skipped or parked). In the stack the
    same: putting the file again, as the failed execution's cause says, ends it AllSent."""
    from forwarder.posting import Poster

    function_env(FACEBOOK_API="offline_conversions")
    source = tmp_path / "sales.csv"
    write_csv(source, 4500, api="offline_conversions")
    original = Poster.post

    def killed_after_sending(self: Poster, *args: Any) -> Any:
        outcome = original(self, *args)
        if len(graph.received) == 2:
            raise Interrupted
        return outcome

    monkeypatch.setattr(Poster, "post", killed_after_sending)
    with pytest.raises(Interrupted):
        backfill(source)
    monkeypatch.setattr(Poster, "post", original)
    second, summary = backfill(source)
    assert second == 1 and summary["failed"] > 0

    third, summary = backfill(source)

    assert third != 0, f"exit 0 with {json.dumps(summary)[:200]}"


# ---- what the operator reads --------------------------------------------------------------------------------------


def test_a_semicolon_separated_file_is_read_or_refused_naming_its_separator(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Excel saves "CSV" with `;` wherever the decimal mark is a comma (most of Europe). The header then is one
    column, and the error says "event_name, event_time is missing" of a first row that holds both: the
    operator is told to add columns they have."""
    function_env(FACEBOOK_API="conversions_api")
    source = tmp_path / "ventes.csv"
    source.write_text(f"event_name;event_time;value;currency;email\nPurchase;{NOW - 60};10;USD;jane@example.com\n")

    status, _ = backfill(source)

    message = capsys.readouterr().err.replace(str(source), "FILE")  # the path holds this test's name
    read = status == 0 and len(graph.events) == 1
    named = any(word in message for word in ("separat", "delimit", "';'", '";"', "semicolon"))
    assert read or named, f"exit {status}: {message.strip()}"


def test_the_summary_on_stdout_is_json_even_when_a_batch_warns(
    tmp_path: Path, aws: dict[str, str], graph: GraphStub
) -> None:
    """docs/backfill.md: "The summary (stdout, JSON)". Powertools' logger writes to stdout too, so a warning
    while reading a batch (an id over 128 characters, user entries past the limit, the settled-events table
    unreadable) lands in front of the summary and `make backfill ... > summary.json` is not JSON."""
    source = tmp_path / "batches.jsonl"
    batch = {
        "batch_id": "b" * 200,
        "user_identities": {"email": "jane@example.com"},
        "events": [
            {
                "event_type": "commerce_event",
                "data": {
                    "timestamp_unixtime_ms": (NOW - 60) * 1000,
                    "currency_code": "USD",
                    "product_action": {"action": "purchase", "total_amount": 10, "transaction_id": "T-1"},
                },
            }
        ],
    }
    source.write_text(json.dumps(batch) + "\n")

    done = subprocess.run(  # noqa: S603 - this interpreter, our module, a file the test wrote
        [sys.executable, "-m", "forwarder.backfill", str(source)],
        env={**os.environ, **aws, "OFFLINE_EVENT_SET_ID": "1234567890", "FACEBOOK_API": "conversions_api",
             "FACEBOOK_GRAPH_URL": graph.url},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert len(graph.events) == 1
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document; it begins {done.stdout.splitlines()[0][:160]}")
    assert summary["forwarded"] == 1


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_report_option_naming_an_export_never_overwrites_it(
    dry_run: bool, tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    """`--report jan.csv feb.csv` (two exports meant as inputs, the report's name forgotten) is read as a report
    named jan.csv: the January export is emptied and replaced by February's report lines, even by a dry run.
    `--report sales.csv sales.csv` empties the input before it is read."""
    function_env(FACEBOOK_API="conversions_api")
    january, february = tmp_path / "jan.csv", tmp_path / "feb.csv"
    january.write_text("\n".join([HEADER, *purchase_rows(2)]) + "\n")
    february.write_text("\n".join([HEADER, *purchase_rows(2, 2)]) + "\n")
    kept = january.read_bytes()

    backfill(*(["--dry-run"] if dry_run else []), "--report", january, february)

    assert january.read_bytes() == kept, f"jan.csv now holds {january.read_text()[:120]!r}"


def test_a_report_naming_the_input_itself_leaves_the_input_whole(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    function_env(FACEBOOK_API="conversions_api")
    source = tmp_path / "sales.csv"
    source.write_text("\n".join([HEADER, *purchase_rows(2)]) + "\n")
    kept = source.read_bytes()

    backfill("--dry-run", "--report", source, source)

    assert source.read_bytes() == kept, f"the input now holds {len(source.read_bytes())} bytes"


def test_an_export_copied_again_with_the_same_bytes_goes_on_where_the_run_stopped(
    tmp_path: Path, aws: dict[str, str], function_env: Callable[..., None], graph: GraphStub
) -> None:
    """A local input's checkpoint is tied to its size and modification time. The run stops (a permission Meta
    refused); before the rerun the export is copied or downloaded again, byte for byte (`cp` without -p, a sync
    tool): the rerun refuses the checkpoint as "another version of the input: remove it to send this one from
    the start", and doing so sends again every row the first run delivered (the Offline Conversions API counts
    them twice)."""
    from localdev.graph_stub import Fault

    function_env(FACEBOOK_API="offline_conversions")
    graph.reject_marked = "BAD"  # the rows write_csv expects parked
    source = tmp_path / "sales.csv"
    expected = write_csv(source, 4500, api="offline_conversions")
    graph.script(Fault(), Fault.graph_error(200, message="Permissions error"))  # the second request
    first, _ = backfill(source)
    assert first == 1
    status = os.stat(source)
    source.write_bytes(source.read_bytes())  # the same bytes, copied again
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns + 60_000_000_000))

    second, _ = backfill(source)

    assert second == 0, f"exit {second}: the same bytes are refused as another version"
    assert acknowledged(graph) == forwarded_orders(expected)
