"""The backfill's parts that need no server: JSON Lines reading, the checkpoint document, the local report and
its place, the local lock and the progress line (with an injected clock: no test waits)."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from forwarder.backfill import lock, readers
from forwarder.backfill.checkpoint import SUFFIX, Checkpoint, CheckpointMismatch
from forwarder.backfill.files import InputError, Kind, Location, fingerprint, open_input
from forwarder.backfill.gathering import INTERRUPTED
from forwarder.backfill.progress import Progress
from forwarder.backfill.readers import BATCH_TOO_LARGE, MALFORMED_LINE, Row, RowFilter, jsonl_rows
from forwarder.backfill.report import LocalReport, Tally, check_place, line


def lines_of(text: bytes, wanted: RowFilter | None = None) -> list[Row | int]:
    return list(jsonl_rows(io.BytesIO(text), wanted or RowFilter()))


def test_json_lines_are_numbered_by_line_blank_ones_skipped_bad_ones_reported_with_what_is_wrong() -> None:
    batch = b'{"events": [], "user_identities": [{"identity_type": "email", "identity": "jane@example.com"}]}'
    rows = lines_of(batch + b"\n\n   \n" + b'{"events": [{"jane@example.com"\n' + b"[1, 2]\n" + batch)
    assert [(row.number, row.skip) for row in rows if isinstance(row, Row)] == [
        (1, None), (4, MALFORMED_LINE), (5, MALFORMED_LINE), (6, None),
    ]  # fmt: skip
    problems = [row.problem for row in rows if isinstance(row, Row) and row.problem]
    assert all(problem and "jane" not in problem for problem in problems)
    assert all("the body" not in problem for problem in problems)  # the webhook's word: here it is a line


def test_a_byte_order_mark_before_the_first_line_is_not_part_of_its_json() -> None:
    [row] = lines_of(b'\xef\xbb\xbf{"events": []}\n')
    assert isinstance(row, Row) and row.batch is not None


def test_a_line_longer_than_any_batch_is_read_past_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 100)
    rows = lines_of(b'{"events": []}\n' + b"x" * 1000 + b"\n" + b'{"events": []}\n')
    assert [(row.number, row.skip) for row in rows if isinstance(row, Row)] == [
        (1, None),
        (2, BATCH_TOO_LARGE),
        (3, None),
    ]


def test_rows_an_earlier_run_settled_are_not_read() -> None:
    rows = lines_of(b'{"events": []}\n' * 6, RowFilter(first=3, settled=frozenset({4})))
    assert [row if isinstance(row, int) else row.number for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row.number for row in rows if isinstance(row, Row)] == [3, 5, 6]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("sales.csv", Kind.CSV), ("SALES.CSV.GZ", Kind.CSV), ("batches.jsonl", Kind.JSONL), ("b.jsonl.gz", Kind.JSONL)],
)
def test_the_kind_of_an_input_comes_from_its_name(name: str, kind: Kind) -> None:
    assert Location.parse(f"s3://bucket/dir/{name}").kind is kind and Location.parse(name).kind is kind


@pytest.mark.parametrize("name", ["sales.txt", "sales.json", "sales.csv.zip", "sales"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="must end in"):
        Location.parse(name).kind  # noqa: B018


def test_a_gzipped_input_is_read_decompressed_and_its_compressed_bytes_counted(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl.gz"
    content = b'{"events": []}\n' * 1000
    path.write_bytes(gzip.compress(content))
    with open_input(Location(str(path))) as (stream, counter):
        assert stream.read() == content
    assert counter.bytes_read == path.stat().st_size


def checkpoint(tmp_path: Path, fingerprint: dict[str, int] | None = None, destination: str = "1") -> Checkpoint:
    place = Checkpoint.place(Location(str(tmp_path / "sales.csv")), "default", None)
    return Checkpoint.load(place, fingerprint or {"size": 10}, {"dataset_id": destination})


def test_a_checkpoint_is_kept_beside_its_input_per_connection_or_in_a_directory_of_checkpoints() -> None:
    assert str(Checkpoint.place(Location.parse("s3://b/k/sales.csv"), "default", None)) == (
        "s3://b/k/sales.csv.default.checkpoint.json"
    )
    assert str(Checkpoint.place(Location.parse("s3://b/k/sales.csv"), "eu", "/tmp/state")) == (
        "/tmp/state/s3_b_k_sales.csv.eu.checkpoint.json"
    )


def test_a_checkpoint_in_a_directory_is_named_after_the_input_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path / "data")
    names = {
        str(Checkpoint.place(Location(path), "default", "/state"))
        for path in ("sales.csv", "./sales.csv", str(tmp_path / "data" / "sales.csv"), "../link/sales.csv")
    }
    assert len(names) == 1
    [name] = names
    assert name.startswith("/state/") and name.endswith("sales.csv.default.checkpoint.json") and len(name) < 255


def test_a_local_inputs_version_is_its_content_not_its_copy(tmp_path: Path) -> None:
    source = tmp_path / "sales.csv"
    source.write_bytes(b"event_name,event_time\n")
    first = fingerprint(Location(str(source)))
    source.write_bytes(source.read_bytes())  # copied again: a new modification time, the same bytes
    os.utime(source, ns=(0, 10**18))
    assert fingerprint(Location(str(source))) == first
    source.write_bytes(b"event_name,event_tim3\n")  # the same size, another content
    assert fingerprint(Location(str(source))) != first


def test_a_checkpoint_written_is_read_back(tmp_path: Path) -> None:
    first = checkpoint(tmp_path)
    first.next_row, first.held, first.sending = 42, {45: line(45, "skipped", "too_old")}, (42, 50)
    first.report = {"location": str(tmp_path / "r.jsonl"), "mark": 1234}
    first.save()
    again = checkpoint(tmp_path)
    assert (again.next_row, again.held, again.sending) == (42, {45: line(45, "skipped", "too_old")}, (42, 50))
    assert again.report_mark(Location(str(tmp_path / "r.jsonl"))) == 1234
    assert again.report_mark(Location(str(tmp_path / "other.jsonl"))) is None
    assert again.rows_to_read()(44) and not again.rows_to_read()(45) and not again.rows_to_read()(41)


@pytest.mark.parametrize(
    ("fingerprint", "destination", "message"),
    [({"size": 11}, "1", "another version"), ({"size": 10}, "2", "another dataset")],
)
def test_a_checkpoint_of_another_version_or_destination_is_refused(
    tmp_path: Path, fingerprint: dict[str, int], destination: str, message: str
) -> None:
    checkpoint(tmp_path).save()
    with pytest.raises(CheckpointMismatch, match=message) as refused:
        checkpoint(tmp_path, fingerprint, destination)
    if message == "another version":  # removing it resends what was delivered: the message says so
        assert "file of their own" in str(refused.value) and "sent again" in str(refused.value)


def test_a_report_written_as_relative_then_absolute_path_is_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = checkpoint(tmp_path)
    first.report = {"location": Location(str(tmp_path / "r.jsonl")).identity, "mark": 99}
    first.save()
    assert checkpoint(tmp_path).report_mark(Location("./r.jsonl")) == 99


WITHHELD = f"{INTERRUPTED}: not sent again"


@pytest.mark.parametrize(
    ("statuses", "fresh", "stop", "next_row", "held", "failed_rows"),
    [
        # every row settled: the next run reads on after the last
        (["forwarded", "skipped"], [True, True], 2, 12, [], 0),
        # a row failed (Facebook unavailable): read again from it; what follows and was settled is held
        (["forwarded", "failed", "skipped"], [True, True, True], 1, 11, [12], 0),
        # rows cut off mid-send on the Offline Conversions API: failed for good, counted once, never read again
        ([WITHHELD, "forwarded", WITHHELD], [True, True, True], 3, 13, [], 2),
        ([WITHHELD, "failed", WITHHELD], [True, True, True], 1, 11, [12], 2),
        ([WITHHELD, "forwarded"], [False, True], 2, 12, [], 0),  # written by an earlier run: counted then
    ],
)
def test_a_gathering_settles_what_a_rerun_must_not_send_and_counts_rows_failed_for_good(
    tmp_path: Path, statuses: list[str], fresh: list[bool], stop: int, next_row: int, held: list[int],
    failed_rows: int,
) -> None:  # fmt: skip
    lines = [
        line(10 + n, "failed", status)
        if status == WITHHELD
        else line(10 + n, status, "x" if status != "forwarded" else None)
        for n, status in enumerate(statuses)
    ]
    kept = checkpoint(tmp_path)
    kept.settle(lines, fresh, stop, last_row=lines[-1]["row"])
    kept.save()
    again = checkpoint(tmp_path)
    assert (again.next_row, sorted(again.held), again.failed_rows) == (next_row, held, failed_rows)


@pytest.mark.parametrize(
    ("existing", "refused"),
    [
        (None, False),  # a new file
        (b"", False),  # an empty one
        (b'{"row": 2, "status": "forwarded", "reason": null}\n', False),  # a report this backfill wrote
        (b"event_name,event_time\nPurchase,1\n", True),  # an export
        (b'{"format": 1, "next_row": 2}', True),  # a checkpoint
        (b'{"row": "2", "status": "sent"}\n', True),
        (b"\x89PNG\r\n", True),
    ],
)
def test_a_report_never_overwrites_a_file_it_did_not_write(
    tmp_path: Path, existing: bytes | None, refused: bool
) -> None:
    report = tmp_path / "report.jsonl"
    if existing is not None:
        report.write_bytes(existing)
    if refused:
        with pytest.raises(InputError, match="not a backfill report"):
            check_place(Location(str(report)), [])
    else:
        check_place(Location(str(report)), [])


def test_a_report_never_overwrites_an_input_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.jsonl").write_text("")  # empty, so only its being an input refuses it
    with pytest.raises(InputError, match="overwrite an input"):
        check_place(Location("./sales.jsonl"), [Location(str(tmp_path / "sales.jsonl"))])


def test_a_second_run_of_a_local_input_is_refused_until_the_first_releases_its_lock(tmp_path: Path) -> None:
    place = lock.place(Checkpoint.place(Location(str(tmp_path / "sales.csv")), "default", None), SUFFIX)
    assert place.path == str(tmp_path / "sales.csv.default.lock")
    held = lock.acquire(place, "sales.csv")
    with pytest.raises(lock.Locked, match="another backfill run is sending it now"):
        lock.acquire(place, "sales.csv")
    held.renew(3600.0)  # the kernel holds it: nothing to renew
    held.release()
    assert not os.path.exists(place.path)
    lock.acquire(place, "sales.csv").release()


def test_a_local_lock_left_by_a_run_that_died_is_not_held(tmp_path: Path) -> None:
    """flock(2) is released with its process, however it ends: a lock file left behind holds nothing."""
    place = Location(str(tmp_path / "sales.csv.default.lock"))
    Path(place.path).write_text("")
    lock.acquire(place, "sales.csv").release()


def test_a_local_report_goes_on_after_its_mark_and_drops_what_came_after(tmp_path: Path) -> None:
    location = Location(str(tmp_path / "r.jsonl"))
    report = LocalReport(location)
    report.write([line(2, "forwarded", None)])
    mark = report.commit()
    report.write([line(3, "failed", "transient: retries ran out of time")])
    report.close(complete=False)
    again = LocalReport(location)
    again.resume(mark)
    again.write([line(3, "forwarded", None)])
    again.close(complete=True)
    assert [json.loads(text) for text in Path(location.path).read_text().splitlines()] == [
        {"row": 2, "status": "forwarded", "reason": None},
        {"row": 3, "status": "forwarded", "reason": None},
    ]


def test_the_summary_counts_rows_by_status_and_reason_and_caps_the_reasons() -> None:
    tally = Tally()
    for number in range(60):
        tally.count(line(number, "parked", f"rejected by Facebook (code 100, subcode {number})"))
    tally.count(line(61, "skipped", "too_old"))
    summary = tally.summary()
    assert (summary["rows"], summary["parked"], summary["skipped"]) == (61, 60, 1)
    assert len(summary["by_reason"]["parked"]) == 51 and summary["by_reason"]["parked"]["other"] == 10


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_says_rows_rate_share_and_time_left_at_most_once_an_interval() -> None:
    clock, said = Clock(), []
    progress = Progress(lambda text, final: said.append(text), interval=10.0, bar=True, clock=clock)
    progress.start("sales.csv", size=1000)
    clock.now += 20
    progress.update(2000, 250)  # 100 rows/s; a quarter read in 20 s: a minute left
    clock.now += 5
    progress.update(2500, 300)  # within the interval: nothing
    progress.update(3000, 1000, final=True)
    assert said == [
        "[######------------------] 2,000 rows, 100 rows/s, 25% of sales.csv, about 1m00s left",
        "[########################] 3,000 rows, 120 rows/s, 100% of sales.csv",
    ]


@pytest.mark.parametrize(("bar", "lines"), [(False, 1), (True, 2)])
def test_the_last_line_is_not_written_again_when_the_line_before_said_as_many_rows(bar: bool, lines: int) -> None:
    """Off a terminal each update is a line of its own; on one the last update ends the bar's line."""
    said: list[Any] = []
    progress = Progress(lambda text, final: said.append((text, final)), interval=0.0, bar=bar, clock=Clock())
    progress.start("sales.csv", size=100)
    progress.update(300, 100)
    progress.update(300, 100, final=True)
    assert len(said) == lines
