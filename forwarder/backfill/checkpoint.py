"""The checkpoint: which rows of one input an earlier run settled, so that a rerun sends none of them again.

Meta's de-duplication is not enough: the Offline Conversions API has none, and the Conversions API's lasts
48 hours. One small JSON document per input and connection, beside the input (`<input>.<connection>.
checkpoint.json`, an object beside it for `s3://`) or in `--checkpoint-dir` (named after the input's
resolved path, so `sales.csv` and `/data/sales.csv` share it), written after each gathering of rows is
settled (`format` 1):

- `fingerprint`, `destination`: the version of the input (its content's digest) and where its rows went; a
  checkpoint of another version or another dataset is refused rather than guessed at.
- `next_row`: every row before this line was settled (forwarded, skipped or parked) and reported.
- `held`: rows after `next_row` that were settled in the gathering where the run stopped (it stops at the
  first row it could not settle), with their report lines, written again as they were.
- `sending`: the rows of a gathering being sent when the run was cut off. On an API that de-duplicates they
  are sent again (Meta counts each once); on the Offline Conversions API they are reported failed and
  never sent again, since nobody can know whether Facebook took them.
- `failed_rows`: rows reported failed for good (cut off mid-send on the Offline Conversions API): a file
  with any is never said to be sent whole.
- `report`: the report these rows were written to (its resolved place) and how much of it they fill (its
  `mark`), so a rerun into the same report goes on from there and the report has one line per row.
- `finished`: every row was read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.backfill.files import InputError, Location, read_document, write_document
from forwarder.backfill.gathering import INTERRUPTED
from forwarder.backfill.readers import RowFilter
from forwarder.backfill.report import FAILED

FORMAT_VERSION = 1
SUFFIX = ".checkpoint.json"
MAX_NAME = 200  # a checkpoint's file name in --checkpoint-dir, within every file system's 255 bytes
ANOTHER_VERSION = (
    "{checkpoint} was written for another version of the input (another size or content). To send only the rows "
    "this version adds, put them in a file of their own and send that. Removing the checkpoint sends this version "
    "whole: rows both versions hold are sent again (the Offline Conversions API counts them twice; the Conversions "
    "API once, within 48 hours of their first sending)"
)


class CheckpointMismatch(InputError):
    """The checkpoint belongs to another version of the input or another destination."""


@dataclass(slots=True)
class Checkpoint:
    location: Location
    fingerprint: dict[str, Any]
    destination: dict[str, Any]
    next_row: int = 1
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    sending: tuple[int, int] | None = None
    report: dict[str, Any] | None = None  # {"location": str, "mark": int}
    finished: bool = False
    failed_rows: int = 0

    @classmethod
    def place(cls, source: Location, connection: str, directory: str | None) -> Location:
        """Where the checkpoint of `source` for `connection` is kept: beside it, or in `directory` under a name
        made of its resolved place (however the input was named, one checkpoint)."""
        if directory is None:
            return source.beside(f".{connection}{SUFFIX}")
        name = source.identity.replace("://", "_").replace("/", "_")
        if len(name) > MAX_NAME:
            name = f"{hashlib.sha256(source.identity.encode()).hexdigest()[:16]}_{name[-MAX_NAME // 2 :]}"
        return Location(f"{directory.rstrip('/')}/{name}.{connection}{SUFFIX}")

    @classmethod
    def load(cls, location: Location, fingerprint: dict[str, Any], destination: dict[str, Any]) -> Checkpoint:
        """The checkpoint kept at `location`, or a fresh one. Raises CheckpointMismatch or InputError."""
        raw = read_document(location)
        fresh = cls(location, fingerprint, destination)
        if raw is None:
            return fresh
        try:
            stored = orjson.loads(raw)
            if stored.get("format") != FORMAT_VERSION:
                raise ValueError("format")
            kept = cls(
                location,
                stored["fingerprint"],
                stored["destination"],
                int(stored["next_row"]),
                {int(row): line for row, line in stored["held"].items()},
                tuple(stored["sending"]) if stored.get("sending") else None,
                stored.get("report"),
                bool(stored.get("finished")),
                int(stored.get("failed_rows") or 0),
            )
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointMismatch(f"{location}: not a checkpoint of this version: remove it to start over") from None
        if kept.fingerprint != fingerprint:
            raise CheckpointMismatch(ANOTHER_VERSION.format(checkpoint=location))
        if kept.destination != destination:
            raise CheckpointMismatch(
                f"{location} was written for another dataset or API: remove it (or keep checkpoints elsewhere, "
                "--checkpoint-dir) to send the input to this one"
            )
        return kept

    def rows_to_read(self) -> RowFilter:
        return RowFilter(self.next_row, frozenset(self.held))

    def report_mark(self, report: Location | None) -> int | None:
        """How much of `report` the settled rows fill, when it is the report they were written to (the same
        place, however it is named now)."""
        if report is None or self.report is None:
            return None
        written_to = Location.parse(str(self.report.get("location")))
        mark = self.report.get("mark")
        return mark if isinstance(mark, int) and written_to.identity == report.identity else None

    def settle(self, lines: list[dict[str, Any]], fresh: list[bool], stop: int, last_row: int) -> None:
        """Record a gathering reported (`lines`, `fresh`: not written by an earlier run): what comes before `stop`
        is settled, and so is what comes after it that a rerun must not send (`held`); a rerun reads again from
        the row at `stop`. Rows failed for good are counted once, when first reported."""
        self.sending = None
        self.failed_rows += sum(
            new and entry["status"] == FAILED and str(entry["reason"]).startswith(INTERRUPTED)
            for entry, new in zip(lines, fresh, strict=True)
        )
        if stop < len(lines):
            self.next_row = lines[stop]["row"]
            self.held = {entry["row"]: entry for entry in lines[stop:] if not stops_the_run(entry)}
        else:
            self.next_row, self.held = last_row + 1, {}

    def save(self) -> None:
        document = {
            "format": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "destination": self.destination,
            "next_row": self.next_row,
            "held": {str(row): line for row, line in self.held.items()},
            "sending": list(self.sending) if self.sending else None,
            "report": self.report,
            "finished": self.finished,
            "failed_rows": self.failed_rows,
        }
        write_document(self.location, orjson.dumps(document))


def stops_the_run(entry: dict[str, Any]) -> bool:
    """A failed row stops the run, but one failed for good (cut off mid-send on an API without de-duplication)."""
    return entry["status"] == FAILED and not str(entry["reason"]).startswith(INTERRUPTED)
