"""Reading an input row by row, streamed: JSON Lines of mParticle batches, or CSV rows (forwarder/backfill/
csv_rows.py). Each row is numbered by the line of the file it starts on (a CSV's header is line 1), so a
report names a place an editor opens straight to.

A row that cannot be read (not JSON, not a batch, not UTF-8, a CSV field over the csv module's limit, a line
longer than any batch the webhook takes) is a `Row` with the reason and what is wrong, never its content,
and the rows after it are read as usual.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from forwarder.backfill.csv_rows import CsvMapping, HeaderError, Layout
from forwarder.batch import Batch, BatchError, BatchTooLarge, parse_batch
from forwarder.settings import Settings

if TYPE_CHECKING:
    from _csv import Reader

MALFORMED_LINE = "malformed_line"  # a JSON Lines line that is not an mParticle batch
MALFORMED_ROW = "malformed_row"  # a CSV row that cannot be read
BATCH_TOO_LARGE = "batch_too_large"  # a line over the webhook's limits (forwarder/batch.py)
# The webhook's body limit (handler/app.py, 6 MiB) and some room: a longer line is no batch it would take.
MAX_LINE_BYTES = 8 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its batch, or why it is skipped before mapping (and, for a malformed one, what is wrong)."""

    number: int
    batch: Batch | None = None
    skip: str | None = None
    problem: str | None = None
    settings: Settings | None = None  # what to map it with, when not the connection's own (a CSV row)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) for every line; None for a line over MAX_LINE_BYTES (read past in chunks)."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
            yield number, None
            continue
        yield number, line


def jsonl_rows(stream: IO[bytes], wanted: RowFilter) -> Iterator[Row | int]:
    """Each non-blank line as a Row, or as its number alone when `wanted` says it is not to be read."""
    for number, line in _lines(stream):
        if line is not None and not line.strip():
            continue
        if not wanted(number):
            yield number
            continue
        if line is None:
            yield Row(number, skip=BATCH_TOO_LARGE, problem=f"the line is longer than {MAX_LINE_BYTES} bytes")
            continue
        if number == 1:
            line = line.removeprefix(UTF8_BOM)  # Windows tools start a UTF-8 file with one; JSON has none
        try:
            yield Row(number, parse_batch(line))
        except BatchTooLarge as error:
            yield Row(number, skip=BATCH_TOO_LARGE, problem=str(error))
        except BatchError as error:
            yield Row(number, skip=MALFORMED_LINE, problem=str(error))


def csv_rows(stream: IO[bytes], wanted: RowFilter, settings: Settings) -> tuple[Layout, Iterator[Row | int]]:
    """The file's layout (from its header) and its rows; raises HeaderError before reading any row."""
    # newline="" as the csv module requires (quoted fields may hold line breaks); bad UTF-8 is kept as
    # surrogates and refused per row, so one bad byte never stops the file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header: list[str] = []
    while not header:
        try:
            header = next(reader)
        except StopIteration:
            raise HeaderError("the file is empty: the first row must name the columns") from None
        except csv.Error as error:
            raise HeaderError(f"the first row cannot be read ({error})") from None
    layout = Layout.from_header(header)
    return layout, _records(reader, CsvMapping(layout, settings), wanted)


def _records(reader: Reader, mapping: CsvMapping, wanted: RowFilter) -> Iterator[Row | int]:
    line_num = reader.line_num
    while True:
        start = line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line_num = reader.line_num
            yield Row(start, skip=MALFORMED_ROW, problem=f"the row cannot be read as CSV ({error})")
            continue
        line_num = reader.line_num
        if not fields or not any(fields):
            continue
        if not wanted(start):
            yield start
            continue
        if not all(field.isascii() or _utf8(field) for field in fields):
            yield Row(start, skip=MALFORMED_ROW, problem="the row is not valid UTF-8")
            continue
        made = mapping.batch_of(fields)
        yield Row(start, skip=made) if isinstance(made, str) else Row(start, made[0], settings=made[1])


def _utf8(field: str) -> bool:
    try:
        field.encode()
    except UnicodeEncodeError:  # a byte that was not UTF-8, kept as a surrogate
        return False
    return True


class RowFilter:
    """Which rows to read into batches: all but those an earlier run settled (forwarder/backfill/checkpoint.py)."""

    def __init__(self, first: int = 1, settled: frozenset[int] = frozenset()) -> None:
        self.first = first
        self.settled = settled

    def __call__(self, number: int) -> bool:
        return number >= self.first and number not in self.settled
