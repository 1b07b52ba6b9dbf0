"""The backfill's parts that need no server: JSON Lines reading, the checkpoint document, the local report and
the progress line (with an injected clock: no test waits)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from forwarder.backfill import readers
from forwarder.backfill.checkpoint import Checkpoint, CheckpointMismatch
from forwarder.backfill.files import InputError, Kind, Location, open_input
from forwarder.backfill.progress import Progress
from forwarder.backfill.readers import BATCH_TOO_LARGE, MALFORMED_LINE, Row, RowFilter, jsonl_rows
from forwarder.backfill.report import LocalReport, Tally, line


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
    with pytest.raises(CheckpointMismatch, match=message):
        checkpoint(tmp_path, fingerprint, destination)


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
