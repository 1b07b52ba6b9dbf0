"""A backfill run: each input read row by row, in gatherings sent through the delivery core, reported and
checkpointed after each one.

The run stops at the first gathering with a row it could not settle (Facebook unavailable after its
retries, a token or permission refused, parking failed): what follows would fail the same way, and a
rerun goes on from that row. With `stop_by` (the Lambda function) it pauses, between gatherings, before
the invocation's time runs out; the next invocation goes on from the checkpoint.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from botocore.exceptions import BotoCoreError

from forwarder.backfill.checkpoint import Checkpoint
from forwarder.backfill.connection import destinations_record
from forwarder.backfill.csv_rows import HeaderError
from forwarder.backfill.files import CountingReader, InputError, Kind, Location, fingerprint, open_input
from forwarder.backfill.gathering import INTERRUPTED, Gathering, row_lines
from forwarder.backfill.progress import Progress
from forwarder.backfill.readers import Row, RowFilter, csv_rows, jsonl_rows
from forwarder.backfill.report import FAILED, ReportSink, Tally
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


class State(StrEnum):
    FINISHED = "finished"  # every row of every input was read and settled or reported failed
    PAUSED = "paused"  # `stop_by` came: the checkpoint says where to go on
    STOPPED = "stopped"  # a row could not be settled: rerun once the cause is fixed


@dataclass(frozen=True, slots=True)
class Target:
    connection: str
    settings: Settings
    poster: Poster | None  # None: a dry run, which sends nothing and keeps no checkpoint


@dataclass
class Options:
    checkpoint_dir: str | None = None
    stop_by: Deadline | None = None
    clock: Callable[[], float] = time.time  # Unix time, for Meta's windows (too_old)
    progress: Progress | None = None


@dataclass
class RunResult:
    state: State
    tally: Tally = field(default_factory=Tally)
    stopped: str | None = None  # why the run stopped, or what the failed rows say

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
    interrupted: tuple[int, int] | None = None  # rows never to send again (forwarder/backfill/checkpoint.py)

    def send(self) -> State:
        settings, location = self.target.settings, self.location
        kind = location.kind
        if self.target.poster is not None:
            place = Checkpoint.place(location, self.target.connection, self.options.checkpoint_dir)
            self.checkpoint = Checkpoint.load(place, fingerprint(location), destinations_record(settings))
            if self.checkpoint.finished:
                self.result.tally.inputs_sent_earlier.append(str(location))
                return State.FINISHED
            if self.checkpoint.sending and not settings.profile.deduplicates:
                self.interrupted = self.checkpoint.sending
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
        except (OSError, EOFError, zlib.error, BotoCoreError) as error:
            raise InputError(f"{location}: reading it failed ({type(error).__name__}); rerun to go on") from None

    def _rows(self, kind: Kind, stream: IO[bytes], wanted: RowFilter) -> Iterator[Row | int]:
        if kind is Kind.JSONL:
            return jsonl_rows(stream, wanted)
        layout, rows = csv_rows(stream, wanted, self.target.settings)
        self.result.tally.ignored_columns.update(layout.ignored)
        return rows

    def _gather(self, rows: Iterator[Row | int], counter: CountingReader) -> State:
        settings, tally = self.target.settings, self.result.tally
        limit = settings.profile.max_events_per_request
        gathering = Gathering()
        for row in rows:
            if isinstance(row, int):
                held = self.checkpoint.held.get(row) if self.checkpoint else None
                if held is None:
                    tally.settled_earlier += 1
                else:
                    gathering.add_decided(row, held, held=True)
            else:
                cut = self.interrupted is not None and self.interrupted[0] <= row.number <= self.interrupted[1]
                gathering.add(row, settings, self.options.clock(), tally, withheld=WITHHELD if cut else None)
            if gathering.events >= limit or len(gathering.rows) >= GATHER_ROWS:
                if (state := self._settle(gathering, counter)) is not None:
                    return state
                gathering = Gathering()
        if gathering.rows and (state := self._settle(gathering, counter)) is not None:
            return state
        if self.checkpoint is not None:
            self.checkpoint.finished, self.checkpoint.held = True, {}
            self.checkpoint.save()
        return State.FINISHED

    def _settle(self, gathering: Gathering, counter: CountingReader) -> State | None:
        """Send, report and checkpoint one gathering; the state the run ends in, or None to go on."""
        stop_by = self.options.stop_by
        requests = math.ceil(gathering.events / self.target.settings.profile.max_events_per_request)
        if stop_by is not None and stop_by.left() < MIN_GATHERING_SECONDS:
            return State.PAUSED
        delivery = self._deliver(gathering, requests)
        lines = row_lines(gathering, delivery, self.result.tally)
        if self.label:
            for entry in lines:
                entry["file"] = str(self.location)
        stop = next((index for index, entry in enumerate(lines) if _stops(entry)), len(lines))
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
        """Report the lines, then checkpoint: what comes before `stop` is settled, and so is what comes after
        it but failed (`held`); a rerun reads again from the row at `stop`."""
        mark = None
        if self.report is not None:
            self.report.write(lines[:stop])
            mark = self.report.commit()
            self.report.write(lines[stop:])
        checkpoint = self.checkpoint
        if checkpoint is None:
            return
        checkpoint.sending = None
        if stop < len(lines):
            checkpoint.next_row = lines[stop]["row"]
            checkpoint.held = {entry["row"]: entry for entry in lines[stop:] if entry["status"] != FAILED}
        else:
            checkpoint.next_row, checkpoint.held = gathering.rows[-1].number + 1, {}
        if self.report is not None:
            checkpoint.report = {"location": str(self.report.location), "mark": mark}
        checkpoint.save()


def _stops(entry: dict[str, Any]) -> bool:
    """A failed row stops the run, but one failed for good (cut off mid-send on an API without de-duplication)."""
    return entry["status"] == FAILED and not str(entry["reason"]).startswith(INTERRUPTED)


def _size(checkpoint: Checkpoint | None, location: Location) -> int | None:
    if checkpoint is not None:
        return int(checkpoint.fingerprint["size"])
    try:
        return int(fingerprint(location)["size"])
    except InputError:
        return None
