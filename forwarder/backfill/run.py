"""A backfill run: each input read row by row, in gatherings sent through the delivery core, reported and
checkpointed after each one.

The run stops at the first gathering with a row it could not settle (Facebook unavailable after its
retries, a token or permission refused, parking failed): what follows would fail the same way, and a
rerun goes on from that row. With `stop_by` (the Lambda function) it pauses, between gatherings, before
the invocation's time runs out; the next invocation goes on from the checkpoint. An input that cannot be
read to its end (cut short, damaged) has the rows read before it sent and reported, and the line where
reading failed reported. While it sends, a run holds the input's lock (lock.py): a second run of the same
input and connection is refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from forwarder.backfill import lock
from forwarder.backfill.checkpoint import SUFFIX, Checkpoint, stops_the_run
from forwarder.backfill.connection import destinations_record
from forwarder.backfill.csv_rows import HeaderError
from forwarder.backfill.files import CountingReader, InputError, Kind, Location, fingerprint, open_input, size_of
from forwarder.backfill.gathering import INTERRUPTED, Gathering, row_lines
from forwarder.backfill.progress import Progress
from forwarder.backfill.readers import READ_ERRORS, CutShort, Row, RowFilter, csv_rows, jsonl_rows
from forwarder.backfill.report import FAILED, ReportSink, Tally, line
from forwarder.deadline import Deadline
from forwarder.delivery import deliver
from forwarder.outcome import Delivery
from forwarder.posting import Poster
from forwarder.settings import Settings

GATHER_ROWS = 5000  # a gathering of rows that send little (skipped ones) still ends, and is checkpointed
SEND_SECONDS_PER_REQUEST = 60.0  # a request's retries and the isolation of its rejected events (as replay)
PARK_SECONDS = 15.0
# With `stop_by`: the least time a gathering is started with (its requests, parking, checkpoint, report).
MIN_GATHERING_SECONDS = SEND_SECONDS_PER_REQUEST + PARK_SECONDS + 15.0
WITHHELD = f"{INTERRUPTED}: Facebook may have taken it; not sent again (check Events Manager)"
READ_FAILED = "read_failed"  # the report line of the place where an input could not be read on


class State(StrEnum):
    FINISHED = "finished"  # every row of every input was read and settled or reported failed
    PAUSED = "paused"  # `stop_by` came: the checkpoint says where to go on
    STOPPED = "stopped"  # a row could not be settled: rerun once the cause is fixed
    UNREADABLE = "unreadable"  # an input could not be read to its end: the rows before were sent and reported


@dataclass(frozen=True, slots=True)
class Target:
    connection: str
    settings: Settings
    poster: Poster | None  # None: a dry run, which sends nothing and keeps no checkpoint


@dataclass
class Options:
    checkpoint_dir: str | None = None
    stop_by: Deadline | None = None
    clock: Callable[[], float] = time.time  # Unix time, for Meta's windows (too_old) and S3 locks' leases
    progress: Progress | None = None


@dataclass
class RunResult:
    state: State
    tally: Tally = field(default_factory=Tally)
    stopped: str | None = None  # why the run stopped or could not read on

    def summary(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            **({"stopped": self.stopped} if self.stopped else {}),
            **self.tally.summary(),
        }


def run(inputs: list[Location], target: Target, report: ReportSink | None, options: Options) -> RunResult:
    """Send every input; raises InputError (or its subclasses) for an input that cannot be read at all."""
    result = RunResult(State.FINISHED)
    for location in inputs:
        sender = _FileRun(location, target, report, options, result, label=len(inputs) > 1)
        state = sender.send()
        if state is not State.FINISHED:
            result.state = state
            break
    if target.poster is not None:
        result.tally.retries = target.poster.retries
    return result


@dataclass
class _FileRun:
    location: Location
    target: Target
    report: ReportSink | None
    options: Options
    result: RunResult
    label: bool  # several inputs: lines name their file
    checkpoint: Checkpoint | None = None
    file_lock: lock.Lock | None = None  # held while the input is sent (not in a dry run)
    interrupted: tuple[int, int] | None = None  # rows never to send again (forwarder/backfill/checkpoint.py)

    def send(self) -> State:
        """Send the input, holding its lock when not a dry run; raises InputError (lock.Locked: another run)."""
        kind = self.location.kind
        if self.target.poster is None:
            return self._read(kind)
        place = Checkpoint.place(self.location, self.target.connection, self.options.checkpoint_dir)
        self.file_lock = lock.acquire(lock.place(place, SUFFIX), str(self.location), self.options.clock)
        try:
            self.checkpoint = Checkpoint.load(
                place, fingerprint(self.location), destinations_record(self.target.settings)
            )
            self.result.tally.failed_earlier += self.checkpoint.failed_rows
            if self.checkpoint.finished:
                return self._finished_earlier(self.checkpoint)
            if self.checkpoint.sending and not self.target.settings.profile.deduplicates:
                self.interrupted = self.checkpoint.sending
            return self._read(kind)
        finally:
            self.file_lock.release()

    def _finished_earlier(self, checkpoint: Checkpoint) -> State:
        if not checkpoint.failed_rows:
            self.result.tally.inputs_sent_earlier.append(str(self.location))
        if self.report is not None and (mark := checkpoint.report_mark(self.report.location)) is not None:
            self.report.finished_earlier(mark)  # its report may not have been joined
        return State.FINISHED

    def _read(self, kind: Kind) -> State:
        location = self.location
        if self.report is not None:
            self.report.resume(self.checkpoint.report_mark(self.report.location) if self.checkpoint else None)
        wanted = self.checkpoint.rows_to_read() if self.checkpoint else RowFilter()
        try:
            with open_input(location) as (stream, counter):
                progress = self.options.progress
                if progress is not None:
                    progress.start(str(location), _size(self.checkpoint, location))
                state = self._gather(self._rows(kind, stream, wanted), counter)
                if progress is not None:
                    progress.update(progress.rows, counter.bytes_read, final=True)
                return state
        except HeaderError as error:
            raise InputError(f"{location}: {error}") from None
        except CutShort as error:  # before the first row
            raise InputError(f"{location}: {error}") from None
        except READ_ERRORS as error:
            raise InputError(f"{location}: reading it failed ({type(error).__name__})") from None

    def _rows(self, kind: Kind, stream: IO[bytes], wanted: RowFilter) -> Iterator[Row | int]:
        if kind is Kind.JSONL:
            return jsonl_rows(stream, wanted)
        layout, rows = csv_rows(stream, wanted, self.target.settings)
        self.result.tally.ignored_columns.update(layout.ignored)
        return rows

    def _gather(self, rows: Iterator[Row | int], counter: CountingReader) -> State:
        settings, tally = self.target.settings, self.result.tally
        limit = settings.profile.max_events_per_request
        gathering, cut = Gathering(), None
        try:
            for row in rows:
                if isinstance(row, int):
                    held = self.checkpoint.held.get(row) if self.checkpoint else None
                    if held is None:
                        tally.settled_earlier += 1
                    else:
                        gathering.add_decided(row, held, held=True)
                else:
                    cut_off = self.interrupted is not None and self.interrupted[0] <= row.number <= self.interrupted[1]
                    withheld = WITHHELD if cut_off else None
                    gathering.add(row, settings, self.options.clock(), tally, withheld=withheld)
                if gathering.events >= limit or len(gathering.rows) >= GATHER_ROWS:
                    if (state := self._settle(gathering, counter)) is not None:
                        return state
                    gathering = Gathering()
        except CutShort as error:
            cut = error  # the rows read before it are sent and reported as usual
        if gathering.rows and (state := self._settle(gathering, counter)) is not None:
            return state
        if cut is not None:
            return self._cut_short(cut)
        if self.checkpoint is not None:
            self.checkpoint.finished, self.checkpoint.held = True, {}
            self.checkpoint.save()
        return State.FINISHED

    def _cut_short(self, cut: CutShort) -> State:
        """Report where reading failed, after the report's last mark: a rerun writes it again if it fails again."""
        if self.report is not None:
            entry = line(cut.line, FAILED, READ_FAILED, problem=str(cut))
            self.report.write([{**entry, "file": str(self.location)} if self.label else entry])
        self.result.stopped = f"{self.location}: {cut}"
        return State.UNREADABLE

    def _settle(self, gathering: Gathering, counter: CountingReader) -> State | None:
        """Send, report and checkpoint one gathering; the state the run ends in, or None to go on."""
        stop_by = self.options.stop_by
        requests = math.ceil(gathering.events / self.target.settings.profile.max_events_per_request)
        if stop_by is not None and stop_by.left() < MIN_GATHERING_SECONDS:
            return State.PAUSED
        delivery = self._deliver(gathering, requests)
        if self.file_lock is not None:
            self.file_lock.renew()  # still this run's, before anything is written: LockLost if another run took it
        lines = row_lines(gathering, delivery, self.result.tally)
        if self.label:
            for entry in lines:
                entry["file"] = str(self.location)
        stop = next((index for index, entry in enumerate(lines) if stops_the_run(entry)), len(lines))
        self._record(gathering, lines, stop)
        if self.options.progress is not None:
            self.options.progress.update(self.options.progress.rows + len(lines), counter.bytes_read)
        if stop < len(lines):
            self.result.stopped = f"row {lines[stop]['row']}: {lines[stop]['reason']}"
            return State.STOPPED
        return None

    def _deliver(self, gathering: Gathering, requests: int) -> Delivery | None:
        poster = self.target.poster
        if poster is None or not gathering.items:
            return None
        stop_by = self.options.stop_by
        send_by = Deadline.after(SEND_SECONDS_PER_REQUEST * requests, *(() if stop_by is None else (stop_by.clock,)))
        if stop_by is not None and stop_by.at - PARK_SECONDS < send_by.at:
            send_by = stop_by.earlier(PARK_SECONDS)
        if self.file_lock is not None:
            self.file_lock.renew(SEND_SECONDS_PER_REQUEST * requests + PARK_SECONDS)  # held while it is sent
        if self.checkpoint is not None:
            self.checkpoint.sending = (gathering.rows[0].number, gathering.rows[-1].number)
            self.checkpoint.save()
        settings = self.target.settings
        return deliver(
            gathering.items,
            poster,
            send_by,
            Deadline(send_by.at + PARK_SECONDS, send_by.clock),
            settings.parking_queue_url,
            settled=settings.settled_events,
        )

    def _record(self, gathering: Gathering, lines: list[dict[str, Any]], stop: int) -> None:
        """Report the lines, committing those before `stop`, then checkpoint (`Checkpoint.settle`)."""
        mark = None
        if self.report is not None:
            self.report.write(lines[:stop])
            mark = self.report.commit()
            self.report.write(lines[stop:])
        checkpoint = self.checkpoint
        if checkpoint is None:
            return
        checkpoint.settle(lines, [not pending.held for pending in gathering.rows], stop, gathering.rows[-1].number)
        if self.report is not None:
            checkpoint.report = {"location": self.report.location.identity, "mark": mark}
        checkpoint.save()


def _size(checkpoint: Checkpoint | None, location: Location) -> int | None:
    return int(checkpoint.fingerprint["size"]) if checkpoint is not None else size_of(location)
