"""The backfill's report: one JSON line per input row, and the run's summary by status and reason.

A line is `{"row": N, "status": "forwarded"|"skipped"|"parked"|"failed", "reason": ...}` (docs/backfill.md),
with `problem` for a row that could not be read, `skipped` for the events of a several-event batch that were
skipped while others were sent, and `file` when a run reads several files. No line holds a value of the row.

Lines are written a gathering at a time and committed (made durable) before the checkpoint says so; the
checkpoint keeps the report's `mark` after them, so a rerun cuts off what came after it (the lines of the
gathering that stopped the run) and goes on. A local report is one file. An S3 report (the stack's
`<key>.report.jsonl`) is written as one small object per gathering beside it and joined into the report
when the run ends or stops, since S3 has no append; its parts are deleted once the whole report is joined,
so parts still there after the input was finished say the join failed, and the next run joins them.

A report never overwrites what it did not write: `check_place` refuses an input, or an existing file whose
first line is not a report line, before anything is read or written.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from forwarder.backfill.files import InputError, Location, delete_documents, read_document, s3_client, write_document

FORWARDED, SKIPPED, PARKED, FAILED = "forwarded", "skipped", "parked", "failed"
STATUSES = (FORWARDED, SKIPPED, PARKED, FAILED)
MAX_REASONS = 50  # distinct parked and failed reasons kept in a summary; the rest are counted as "other"
_JOIN_PART_BYTES = 8 * 1024 * 1024  # S3's multipart parts are at least 5 MiB, but the last
_FIRST_LINE_BYTES = 64 * 1024  # read of an existing report to tell whether this backfill wrote it


def line(row: int, status: str, reason: str | None, **extra: Any) -> dict[str, Any]:
    return {"row": row, "status": status, "reason": reason, **{key: value for key, value in extra.items() if value}}


def check_place(report: Location, inputs: list[Location]) -> None:
    """Refuse (InputError) a report that is one of the inputs, however named, or an existing file or object that
    is not a report this backfill wrote (its first line is not a report line): writing it would destroy it."""
    if any(report.identity == source.identity for source in inputs):
        raise InputError(f"{report}: the report would overwrite an input; name another file for --report")
    start = read_document(report, _FIRST_LINE_BYTES)
    if start is None or not start.strip():
        return
    try:
        first = orjson.loads(start.split(b"\n", 1)[0])
    except orjson.JSONDecodeError:
        first = None
    if not (isinstance(first, dict) and isinstance(first.get("row"), int) and first.get("status") in STATUSES):
        raise InputError(
            f"{report}: it exists and is not a backfill report (its first line is no report line), so it is left "
            "as it is; name another file for --report, or move this one away"
        )


class ReportSink(Protocol):
    location: Location

    def resume(self, mark: int | None) -> None:
        """Go on after `mark` (None: start afresh); only before anything is written in this run."""

    def write(self, lines: list[dict[str, Any]]) -> None: ...

    def commit(self) -> int:
        """Make what was written durable; returns the mark after it."""
        ...

    def close(self, complete: bool) -> None:
        """The report as it stands, readable at `location`; `complete`: every row of every input is in it."""

    def finished_earlier(self, mark: int) -> None:
        """An earlier run finished the input, its rows filling the report up to `mark`: make sure `close` leaves
        the whole of it readable (only before anything is written in this run)."""


@dataclass
class LocalReport:
    location: Location
    _file: IO[bytes] | None = None

    def resume(self, mark: int | None) -> None:
        if self._file is not None:
            return
        try:
            if mark is not None and os.path.exists(self.location.path):
                self._file = open(self.location.path, "r+b")  # noqa: SIM115 (closed by close())
                self._file.truncate(mark)
                self._file.seek(mark)
            else:
                self._file = open(self.location.path, "wb")  # noqa: SIM115
        except OSError as error:
            raise InputError(f"{self.location}: {error.strerror or type(error).__name__}") from None

    def write(self, lines: list[dict[str, Any]]) -> None:
        self.resume(None)
        assert self._file is not None
        self._file.write(b"".join(orjson.dumps(entry) + b"\n" for entry in lines))

    def commit(self) -> int:
        self.resume(None)
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self, complete: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finished_earlier(self, mark: int) -> None:
        """Every line was written to the file itself as it went."""


@dataclass
class S3Report:
    """The report as numbered part objects (`<report>.parts/000001.part`...), joined into `location` by close."""

    location: Location
    parts: int = 0  # committed and uncommitted parts written so far
    _pending: list[bytes] = field(default_factory=list)
    _resumed: bool = False
    _written: bool = False  # anything written in this run: else the report stays as an earlier run left it
    _join_pending: bool = False  # an earlier run finished the input: join its parts if they are still there

    def _part(self, number: int) -> Location:
        return self.location.beside(f".parts/{number:06d}.part")

    def resume(self, mark: int | None) -> None:
        if not self._resumed:
            self._resumed, self.parts = True, mark or 0

    def finished_earlier(self, mark: int) -> None:
        self.resume(mark)
        self._join_pending = mark > 0 and read_document(self._part(mark), 1) is not None

    def write(self, lines: list[dict[str, Any]]) -> None:
        self._resumed = True
        self._written |= bool(lines)
        self._pending += [orjson.dumps(entry) + b"\n" for entry in lines]

    def commit(self) -> int:
        self._resumed = True
        if self._pending:
            self.parts += 1
            write_document(self._part(self.parts), b"".join(self._pending))
            self._pending = []
        return self.parts

    def close(self, complete: bool) -> None:
        """Join the parts into the report (a multipart upload, in parts of 8 MiB); once complete, delete them."""
        if not self._written and not self._join_pending:
            return
        self.commit()
        client, bucket, key = s3_client(), self.location.bucket, self.location.path
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-ndjson")
        try:
            uploaded = self._upload_parts(upload["UploadId"])
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": uploaded}
            )
        except BaseException:
            # The parts stay, and the next run joins them; an upload left open costs storage until aborted.
            with contextlib.suppress(ClientError, BotoCoreError):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            raise
        self._join_pending = False
        if complete:
            delete_documents([self._part(number) for number in range(1, self.parts + 1)])

    def _upload_parts(self, upload_id: str) -> list[dict[str, Any]]:
        client, bucket, key = s3_client(), self.location.bucket, self.location.path
        uploaded: list[dict[str, Any]] = []
        buffer = bytearray()

        def send() -> None:
            number = len(uploaded) + 1
            answer = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(buffer)
            )
            uploaded.append({"PartNumber": number, "ETag": answer["ETag"]})
            buffer.clear()

        for number in range(1, self.parts + 1):
            buffer += read_document(self._part(number)) or b""
            if len(buffer) >= _JOIN_PART_BYTES:
                send()
        if buffer or not uploaded:
            send()
        return uploaded


def open_report(location: Location) -> ReportSink:
    return LocalReport(location) if location.bucket is None else S3Report(location)


@dataclass
class Tally:
    """What a run did: rows by status and reason, events, and Graph requests."""

    rows: Counter[str] = field(default_factory=Counter)  # status -> rows
    reasons: dict[str, Counter[str]] = field(default_factory=lambda: {status: Counter() for status in STATUSES})
    events: Counter[str] = field(default_factory=Counter)  # received, forwarded, parked, duplicates
    skipped_events: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    isolation_requests: int = 0
    settled_earlier: int = 0  # rows an earlier run settled: neither read nor reported again
    failed_earlier: int = 0  # rows an earlier run reported failed for good (checkpoint.py, `failed_rows`)
    inputs_sent_earlier: list[str] = field(default_factory=list)  # inputs an earlier run sent whole
    ignored_columns: set[str] = field(default_factory=set)

    def count(self, entry: dict[str, Any]) -> None:
        status, reason = entry["status"], entry["reason"]
        self.rows[status] += 1
        if reason is not None:
            reasons = self.reasons[status]
            reasons[reason if reason in reasons or len(reasons) < MAX_REASONS else "other"] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "rows": sum(self.rows.values()),
            **{status: self.rows[status] for status in STATUSES},
            "by_reason": {status: dict(self.reasons[status]) for status in (SKIPPED, PARKED, FAILED)},
            "settled_earlier": self.settled_earlier,
            "failed_earlier": self.failed_earlier,
            **({"inputs_sent_earlier": self.inputs_sent_earlier} if self.inputs_sent_earlier else {}),
            "events": {**{name: self.events[name] for name in ("received", "forwarded", "parked", "duplicates")},
                       "skipped": dict(self.skipped_events)},
            "requests": self.requests,
            "retries": self.retries,
            "isolation_requests": self.isolation_requests,
            **({"ignored_columns": sorted(self.ignored_columns)} if self.ignored_columns else {}),
        }  # fmt: skip
