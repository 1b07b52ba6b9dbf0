"""Reading an input row by row, streamed: JSON Lines of mParticle batches, or CSV rows (forwarder/backfill/
csv_rows.py). Each row is numbered by the line of the file it is on (a CSV's header is line 1), so a report
names a place an editor opens straight to.

A CSV row is one line: a quoted field never runs on to the next line. Meta's offline event upload files
have no line breaks in a field, and reading a quote on past the end of its line is what lets one stray
quote (a truncated or hand-edited export) swallow the rows after it; here it makes only its own row
`malformed_row`. Every line is read with a length limit, so one huge line costs no memory: it is read past
in chunks and reported. The columns are separated by commas, semicolons (Excel's CSV where the decimal mark
is a comma) or tabs: whichever makes the header name the columns.

A row that cannot be read (not JSON, not a batch, not UTF-8, not CSV, a line over the limit) is a `Row` with
the reason and what is wrong, never its content, and the rows after it are read as usual. A file that cannot
be read on (cut short, damaged, the connection lost) raises `CutShort` naming the line: the rows before it
were yielded.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, AnyStr

from botocore.exceptions import BotoCoreError

from forwarder.backfill.csv_rows import CsvMapping, HeaderError, Layout
from forwarder.batch import Batch, BatchError, BatchTooLarge, parse_batch
from forwarder.settings import Settings

MALFORMED_LINE = "malformed_line"  # a JSON Lines line that is not an mParticle batch
MALFORMED_ROW = "malformed_row"  # a CSV row that cannot be read
BATCH_TOO_LARGE = "batch_too_large"  # a line over the webhook's limits (forwarder/batch.py)
# The webhook's body limit (handler/app.py, 6 MiB) and some room: a longer line is no batch it would take.
MAX_LINE_BYTES = 8 * 1024 * 1024
# A CSV row of Meta's columns, each key with its ten values, takes a few kilobytes; the csv module's own
# field limit is 131,072 characters.
MAX_CSV_LINE_CHARS = 64 * 1024
DELIMITERS = (",", ";", "\t")
UTF8_BOM = b"\xef\xbb\xbf"
# What reading a stream raises when the file is cut short or damaged (gzip's EOFError and zlib.error) or the
# connection is lost (OSError, botocore's errors for S3's streaming body).
READ_ERRORS = (OSError, EOFError, zlib.error, BotoCoreError)


class CutShort(Exception):
    """The input cannot be read from line `line` on; every row before it was read."""

    def __init__(self, line: int, cause: BaseException) -> None:
        self.line = line
        super().__init__(
            f"reading line {line} failed ({type(cause).__name__}): the file ends in the middle or is damaged"
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its batch, or why it is skipped before mapping (and, for a malformed one, what is wrong)."""

    number: int
    batch: Batch | None = None
    skip: str | None = None
    problem: str | None = None
    settings: Settings | None = None  # what to map it with, when not the connection's own (a CSV row)


def _lines(stream: IO[AnyStr], limit: int, newline: AnyStr) -> Iterator[tuple[int, AnyStr | None]]:
    """(line number, line) for every line; None for a line over `limit` (read past in chunks, never held whole).
    Raises CutShort when the stream cannot be read on."""
    number = 0
    try:
        while True:
            line = stream.readline(limit + 1)
            if not line:
                return
            number += 1
            if len(line) > limit:
                while line and not line.endswith(newline):
                    line = stream.readline(limit)
                yield number, None
                continue
            yield number, line
    except READ_ERRORS as error:
        raise CutShort(number + 1, error) from None


def jsonl_rows(stream: IO[bytes], wanted: RowFilter) -> Iterator[Row | int]:
    """Each non-blank line as a Row, or as its number alone when `wanted` says it is not to be read."""
    for number, line in _lines(stream, MAX_LINE_BYTES, b"\n"):
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
        except BatchError as error:  # the webhook's words for its request body: here it is a line
            yield Row(number, skip=MALFORMED_LINE, problem=str(error).replace("the body", "the line"))


def csv_rows(stream: IO[bytes], wanted: RowFilter, settings: Settings) -> tuple[Layout, Iterator[Row | int]]:
    """The file's layout (from its header) and its rows; raises HeaderError (or CutShort) before reading any row."""
    # Bad UTF-8 is kept as surrogates and refused per row, so one bad byte never stops the file; any line
    # ending (\n, \r\n, a spreadsheet's lone \r) ends a line.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    lines = _lines(text, MAX_CSV_LINE_CHARS, "\n")
    for number, line in lines:
        if line is None:
            raise HeaderError(f"the first row (line {number}) is longer than {MAX_CSV_LINE_CHARS} characters")
        if line.strip():
            layout, delimiter = _header(line)
            return layout, _records(lines, _LineReader(delimiter), CsvMapping(layout, settings), wanted)
    raise HeaderError("the file is empty: the first row must name the columns")


def _header(line: str) -> tuple[Layout, str]:
    """The layout the header names and the separator that makes it name the required columns."""
    refused: HeaderError | None = None
    for delimiter in DELIMITERS:
        fields = _LineReader(delimiter).fields(line)
        if isinstance(fields, str):
            raise HeaderError(f"the first row cannot be read: {fields}")
        try:
            return Layout.from_header(fields), delimiter
        except HeaderError as error:
            refused = refused or error
    raise HeaderError(f"{refused}, with the columns separated by commas, semicolons or tabs")


class _LineReader:
    """The csv module's reader, fed one line at a time: a record it cannot end within the line (an unclosed
    quote) is an error, not a reason to read the next line."""

    def __init__(self, delimiter: str) -> None:
        self._line: str | None = None
        self._reader = csv.reader(self, delimiter=delimiter, strict=True)

    def __iter__(self) -> _LineReader:
        return self

    def __next__(self) -> str:
        line, self._line = self._line, None
        if line is None:
            raise StopIteration
        return line

    def fields(self, line: str) -> list[str] | str:
        """The line's fields, or what makes it no CSV record."""
        self._line = line
        try:
            return next(self._reader, [])
        except csv.Error as error:
            if str(error) == "unexpected end of data":
                return "a quoted field is not closed on its line (no field may hold a line break)"
            return f"the row cannot be read as CSV ({error})"


def _records(
    lines: Iterator[tuple[int, str | None]], reader: _LineReader, mapping: CsvMapping, wanted: RowFilter
) -> Iterator[Row | int]:
    for number, line in lines:
        fields = reader.fields(line) if line is not None else f"the line is longer than {MAX_CSV_LINE_CHARS} characters"
        if isinstance(fields, list) and not any(fields):
            continue  # a blank line
        if not wanted(number):
            yield number
            continue
        if isinstance(fields, str):
            yield Row(number, skip=MALFORMED_ROW, problem=fields)
            continue
        if not all(field.isascii() or _utf8(field) for field in fields):
            yield Row(number, skip=MALFORMED_ROW, problem="the row is not valid UTF-8")
            continue
        made = mapping.batch_of(fields)
        yield Row(number, skip=made) if isinstance(made, str) else Row(number, made[0], settings=made[1])


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
